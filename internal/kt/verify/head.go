package verify

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/primitives/vrf"
	"github.com/parleyim/parley/internal/wire"
)

// WitnessPolicy is a k-of-n witness requirement: at least Threshold of
// Witnesses (distinct keys) must have cosigned a checkpoint. Witnesses are
// note verifiers, typically kt.CosignatureVerifier (cosignature/v1).
type WitnessPolicy struct {
	Witnesses []note.Verifier
	Threshold int
}

// Default freshness bounds.
const (
	// DefaultMaxAge is how old the newest epoch may be when a response is
	// verified. The sequencer publishes an epoch, empty if need be, well
	// within it.
	DefaultMaxAge = 24 * time.Hour
	// DefaultMaxAhead is how far in the future the newest epoch's
	// timestamp may be, for clock skew.
	DefaultMaxAhead = 10 * time.Minute
)

// Config is what a client knows about the log before it talks to it.
type Config struct {
	// Origin is the log's checkpoint origin and key name.
	Origin string
	// Ed25519 verifies the log's standard note signature.
	Ed25519 note.Verifier
	// Hybrid verifies the log's hybrid signature.
	Hybrid *kt.HybridVerifier
	// VRF is the log's VRF public key.
	VRF *vrf.PublicKey
	// Witnesses is the witness policy; Threshold 0 requires none.
	Witnesses WitnessPolicy
	// MaxAge and MaxAhead bound the newest epoch's timestamp against the
	// client's clock (zero: the defaults).
	MaxAge, MaxAhead time.Duration
}

// NewConfig builds a Config from the log's published keys: the Ed25519
// vkey (as note.NewVerifier takes it), the hybrid vkey and the 32-byte VRF
// public key. Both vkeys must name the same origin.
func NewConfig(ed25519VKey, hybridVKey string, vrfKey []byte, w WitnessPolicy) (*Config, error) {
	ev, err := note.NewVerifier(ed25519VKey)
	if err != nil {
		return nil, fmt.Errorf("verify: log Ed25519 key: %w", err)
	}
	hv, err := kt.ParseHybridVerifier(hybridVKey)
	if err != nil {
		return nil, fmt.Errorf("verify: log hybrid key: %w", err)
	}
	if ev.Name() != hv.Name() {
		return nil, fmt.Errorf("verify: the log's keys name %q and %q", ev.Name(), hv.Name())
	}
	if err := kt.CheckOrigin(ev.Name()); err != nil {
		return nil, err
	}
	vk, err := vrf.NewPublicKey(vrfKey)
	if err != nil {
		return nil, fmt.Errorf("verify: log VRF key: %w", err)
	}
	if w.Threshold < 0 || w.Threshold > len(w.Witnesses) {
		return nil, fmt.Errorf("verify: witness threshold %d of %d", w.Threshold, len(w.Witnesses))
	}
	return &Config{Origin: ev.Name(), Ed25519: ev, Hybrid: hv, VRF: vk, Witnesses: w}, nil
}

// Trusted is what a client keeps between responses: the newest checkpoint
// it verified, the signed note it came in (with cosignatures, to hand to
// peers) and the newest epoch's entry.
type Trusted struct {
	Checkpoint kt.Checkpoint
	Note       []byte
	Entry      kt.LogEntry
}

// Marshal encodes the state for the client's store: version || u16
// length || note || log entry. The checkpoint is re-parsed from the note.
func (t *Trusted) Marshal() []byte {
	b := []byte{wire.Version, byte(len(t.Note) >> 8), byte(len(t.Note))}
	b = append(b, t.Note...)
	return append(b, t.Entry.Marshal()...)
}

// UnmarshalTrusted decodes a Trusted. It re-parses the checkpoint from the
// note but verifies no signature: the client wrote it after verifying.
func UnmarshalTrusted(b []byte) (*Trusted, error) {
	const typ = "kt trusted state"
	if len(b) < 3 {
		return nil, wire.Malformed(typ, "truncated")
	}
	if err := wire.CheckVersion(typ, b[0]); err != nil {
		return nil, err
	}
	n := int(b[1])<<8 | int(b[2])
	if len(b) != 3+n+kt.LogEntrySize {
		return nil, wire.Malformed(typ, "length")
	}
	t := &Trusted{Note: bytes.Clone(b[3 : 3+n])}
	text, _, ok := bytes.Cut(t.Note, []byte("\n\n"))
	if !ok {
		return nil, wire.Malformed(typ, "note")
	}
	c, err := kt.ParseCheckpoint(string(text) + "\n")
	if err != nil {
		return nil, wire.Malformed(typ, err.Error())
	}
	t.Checkpoint = c
	e, err := kt.UnmarshalLogEntry(b[3+n:])
	if err != nil {
		return nil, err
	}
	t.Entry = *e
	return t, nil
}

// CheckpointSigs lists who signed a verified checkpoint.
type CheckpointSigs struct {
	// Witnesses are the names of the witnesses whose cosignatures
	// verified, with their cosignature times.
	Witnesses map[string]time.Time
}

// VerifyCheckpoint opens a signed checkpoint note: both of the log's
// signatures must verify, any signature by a known key must verify, the
// witness policy must be met, and the text must be a checkpoint of this
// log's origin.
func (c *Config) VerifyCheckpoint(signed []byte) (kt.Checkpoint, *CheckpointSigs, error) {
	if len(signed) > kt.MaxCheckpointSize {
		return kt.Checkpoint{}, nil, failf(BadProof, "checkpoint note of %d bytes", len(signed))
	}
	vs := []note.Verifier{c.Ed25519, c.Hybrid}
	vs = append(vs, c.Witnesses.Witnesses...)
	n, err := note.Open(signed, note.VerifierList(vs...))
	if err != nil {
		var ise *note.InvalidSignatureError
		var une *note.UnverifiedNoteError
		switch {
		case errors.As(err, &ise):
			return kt.Checkpoint{}, nil, fail(BadSignature, fmt.Sprintf("invalid signature by %s", ise.Name), err)
		case errors.As(err, &une):
			return kt.Checkpoint{}, nil, fail(BadSignature, "no known key signed the checkpoint", nil)
		}
		return kt.Checkpoint{}, nil, fail(BadProof, "checkpoint note", err)
	}
	if len(n.Sigs)+len(n.UnverifiedSigs) > kt.MaxCosignatures+2 {
		return kt.Checkpoint{}, nil, failf(BadProof, "%d signatures on a checkpoint", len(n.Sigs)+len(n.UnverifiedSigs))
	}
	var ed, hybrid bool
	witnesses := 0
	sigs := &CheckpointSigs{Witnesses: map[string]time.Time{}}
	for _, s := range n.Sigs {
		switch {
		case s.Name == c.Ed25519.Name() && s.Hash == c.Ed25519.KeyHash():
			ed = true
		case s.Name == c.Hybrid.Name() && s.Hash == c.Hybrid.KeyHash():
			hybrid = true
		default:
			// note.Open keeps one signature per known key, so each is a
			// distinct witness.
			witnesses++
			t, _ := kt.CosignatureTime(s) // zero for other signature types
			sigs.Witnesses[s.Name] = t
		}
	}
	if !ed || !hybrid {
		return kt.Checkpoint{}, nil, failf(BadSignature, "the checkpoint lacks the log's %s signature", map[bool]string{true: "hybrid", false: "Ed25519"}[ed])
	}
	if witnesses < c.Witnesses.Threshold {
		return kt.Checkpoint{}, nil, failf(MissingCosignatures, "%d of the required %d witnesses cosigned", witnesses, c.Witnesses.Threshold)
	}
	cp, err := kt.ParseCheckpoint(n.Text)
	if err != nil {
		return kt.Checkpoint{}, nil, fail(BadProof, "signed text", err)
	}
	if cp.Origin != c.Origin {
		return kt.Checkpoint{}, nil, failf(BadProof, "checkpoint of origin %q, want %q", cp.Origin, c.Origin)
	}
	if cp.Size == 0 {
		return kt.Checkpoint{}, nil, failf(BadProof, "empty log")
	}
	return cp, sigs, nil
}

func (c *Config) maxAge() time.Duration {
	if c.MaxAge > 0 {
		return c.MaxAge
	}
	return DefaultMaxAge
}

func (c *Config) maxAhead() time.Duration {
	if c.MaxAhead > 0 {
		return c.MaxAhead
	}
	return DefaultMaxAhead
}

// VerifyHead verifies a head against the state the client kept (nil
// before its first response) and its clock, and returns the new state to
// keep. In order (the first failure is returned):
//
//  1. the checkpoint note (VerifyCheckpoint);
//  2. the entry is the newest epoch of the checkpoint (StaleLatest) and is
//     included in it (BadProof);
//  3. the newest epoch is at most MaxAge old and MaxAhead ahead
//     (StaleLatest, BadProof);
//  4. against prev: not smaller (Rollback); the same root at the same size
//     and a valid consistency proof to a larger one (Fork); timestamps not
//     going back (BadProof).
//
// The returned state must be stored only once the rest of the response
// has verified against it.
func (c *Config) VerifyHead(prev *Trusted, h *kt.Head, now time.Time) (*Trusted, error) {
	cp, _, err := c.VerifyCheckpoint(h.Checkpoint)
	if err != nil {
		return nil, err
	}
	if h.Entry.Epoch != cp.Size-1 {
		return nil, failf(StaleLatest, "entry of epoch %d served with a checkpoint of %d epochs", h.Entry.Epoch, cp.Size)
	}
	if err := kt.VerifyInclusion(h.Inclusion, cp.Size, cp.Root, &h.Entry); err != nil {
		return nil, fail(BadProof, "newest entry", err)
	}
	ts := time.UnixMilli(int64(min(h.Entry.Timestamp, 1<<62)))
	if age := now.Sub(ts); age > c.maxAge() {
		return nil, failf(StaleLatest, "the newest epoch is %v old (at most %v)", age.Round(time.Second), c.maxAge())
	}
	if ahead := ts.Sub(now); ahead > c.maxAhead() {
		return nil, failf(BadProof, "the newest epoch is %v in the future", ahead.Round(time.Second))
	}
	if prev != nil {
		if err := c.consistent(prev.Checkpoint, cp, h.Consistency); err != nil {
			return nil, err
		}
		if h.Entry.Timestamp < prev.Entry.Timestamp {
			return nil, failf(BadProof, "epoch %d is older than epoch %d", h.Entry.Epoch, prev.Entry.Epoch)
		}
	} else if len(h.Consistency) != 0 {
		return nil, failf(BadProof, "a consistency proof with no previous checkpoint")
	}
	return &Trusted{Checkpoint: cp, Note: bytes.Clone(h.Checkpoint), Entry: h.Entry}, nil
}

// consistent checks that newer extends old: Rollback if it is smaller,
// Fork if it diverges.
func (c *Config) consistent(old, newer kt.Checkpoint, proof [][kt.HashSize]byte) error {
	switch {
	case old.Origin != newer.Origin:
		return failf(BadProof, "checkpoints of origins %q and %q", old.Origin, newer.Origin)
	case newer.Size < old.Size:
		return failf(Rollback, "log of %d epochs after one of %d", newer.Size, old.Size)
	case newer.Size == old.Size:
		if newer.Root != old.Root || len(proof) != 0 {
			return failf(Fork, "two roots for %d epochs", newer.Size)
		}
		return nil
	}
	if err := kt.VerifyConsistency(proof, old.Size, old.Root, newer.Size, newer.Root); err != nil {
		return fail(Fork, fmt.Sprintf("log of %d epochs does not extend the one of %d", newer.Size, old.Size), err)
	}
	return nil
}

// VerifyPeerCheckpoint compares a checkpoint a contact sent (piggybacked in
// an end-to-end encrypted message) with the client's own: the note must be
// signed by the log (witnesses are not required: a peer's view is evidence,
// not a source of truth), and the two must be the same log: equal roots at
// equal sizes, otherwise the server's consistency proof from the smaller to
// the larger must verify. Any other outcome is Fork: the log showed two
// people different histories, and the two signed notes prove it.
func (c *Config) VerifyPeerCheckpoint(own *Trusted, peer []byte, proof [][kt.HashSize]byte) error {
	relaxed := *c
	relaxed.Witnesses.Threshold = 0
	pc, _, err := relaxed.VerifyCheckpoint(peer)
	if err != nil {
		return err
	}
	a, b := own.Checkpoint, pc
	if a.Size > b.Size {
		a, b = b, a
	}
	return c.consistent(a, b, proof)
}
