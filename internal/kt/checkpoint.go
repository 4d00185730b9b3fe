package kt

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/parleyim/parley/internal/primitives"
)

// Checkpoints (c2sp.org/tlog-checkpoint) signed as notes
// (c2sp.org/signed-note). A Parley checkpoint carries two signatures by the
// log, both under the key name equal to the origin:
//
//   - a standard Ed25519 note signature (type 0x01), so that
//     golang.org/x/mod/sumdb/note, witnesses (c2sp.org/tlog-witness) and
//     any other tlog tool verify it as it is;
//   - a hybrid Ed25519 + ML-DSA-65 signature (docs/protocol.md §2.3) over
//     the same note text under label "Parley-v1 Sig KT Checkpoint", as a
//     signature of type 0xff followed by the identifier HybridSigType, as
//     c2sp.org/signed-note reserves 0xff for unregistered types. Tools that
//     do not know it ignore it, as the spec requires; Parley clients
//     require both.
//
// Witnesses add Ed25519 cosignatures (c2sp.org/tlog-cosignature,
// cosignature/v1, type 0x04), verified by CosignatureVerifier.

// Note signature types (c2sp.org/signed-note).
const (
	sigTypeEd25519     = 0x01
	sigTypeCosignature = 0x04
	sigTypeUnassigned  = 0xff
)

// HybridSigType follows 0xff in the key ID and vkey of the log's hybrid
// signature.
const HybridSigType = "parley-v1/hybrid-ed25519-mldsa65"

// ErrCheckpoint reports a checkpoint or note that is malformed.
var ErrCheckpoint = errors.New("kt: malformed checkpoint")

func checkpointErr(reason string) error { return fmt.Errorf("%w: %s", ErrCheckpoint, reason) }

// Checkpoint is a signed statement of the log's size and root hash.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   [HashSize]byte
}

// Text returns the checkpoint body: origin, decimal size and base64 root,
// each ending in a newline. Parley writes no extension lines.
func (c Checkpoint) Text() string {
	return c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// validName reports whether name is a valid note key name: non-empty,
// valid UTF-8, no Unicode spaces and no '+'.
func validName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// CheckOrigin returns an error unless origin can be a checkpoint origin
// and note key name: at most MaxOriginSize bytes, a valid key name, no
// control characters.
func CheckOrigin(origin string) error {
	if len(origin) > MaxOriginSize || !validName(origin) || strings.ContainsFunc(origin, unicode.IsControl) {
		return checkpointErr(fmt.Sprintf("invalid origin %q", origin))
	}
	return nil
}

// ParseCheckpoint parses a checkpoint body strictly: exactly the three
// lines Text writes, the size in canonical decimal, the root in canonical
// padded base64 of 32 bytes. Extension lines are refused: Parley does not
// use them, and accepting them would let two different texts carry one
// checkpoint.
func ParseCheckpoint(text string) (Checkpoint, error) {
	if len(text) > MaxCheckpointSize || !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, checkpointErr("not newline-terminated")
	}
	lines := strings.Split(text[:len(text)-1], "\n")
	if len(lines) != 3 {
		return Checkpoint{}, checkpointErr(fmt.Sprintf("%d lines, want 3", len(lines)))
	}
	if err := CheckOrigin(lines[0]); err != nil {
		return Checkpoint{}, err
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || lines[1] != strconv.FormatUint(size, 10) {
		return Checkpoint{}, checkpointErr("bad size line")
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != HashSize || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return Checkpoint{}, checkpointErr("bad root hash line")
	}
	c := Checkpoint{Origin: lines[0], Size: size}
	copy(c.Root[:], root)
	return c, nil
}

// keyID is the C2SP key ID: SHA-256(name || 0x0A || type || key)[:4].
func keyID(name string, typeAndKey []byte) uint32 {
	b := make([]byte, 0, len(name)+1+len(typeAndKey))
	b = append(append(append(b, name...), '\n'), typeAndKey...)
	h := primitives.SHA256(b)
	return binary.BigEndian.Uint32(h[:4])
}

// vkey formats a verifier key: name+hash+base64(type || key).
func vkey(name string, typeAndKey []byte) string {
	return fmt.Sprintf("%s+%08x+%s", name, keyID(name, typeAndKey), base64.StdEncoding.EncodeToString(typeAndKey))
}

// parseVKey splits and checks a verifier key, returning the name and the
// type-and-key bytes.
func parseVKey(s string) (string, []byte, error) {
	name, rest, ok1 := strings.Cut(s, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	hash, err1 := strconv.ParseUint(hash16, 16, 32)
	key, err2 := base64.StdEncoding.Strict().DecodeString(key64)
	if !ok1 || !ok2 || len(hash16) != 8 || err1 != nil || err2 != nil || !validName(name) || len(key) == 0 {
		return "", nil, fmt.Errorf("kt: malformed verifier key")
	}
	if uint32(hash) != keyID(name, key) {
		return "", nil, fmt.Errorf("kt: verifier key %s: key ID does not match the key", name)
	}
	return name, key, nil
}

// hybridSigner signs note text with the log's hybrid key.
type hybridSigner struct {
	name string
	id   uint32
	key  *primitives.SigningKey
}

func (s *hybridSigner) Name() string    { return s.name }
func (s *hybridSigner) KeyHash() uint32 { return s.id }
func (s *hybridSigner) Sign(msg []byte) ([]byte, error) {
	return s.key.Sign(primitives.LabelSigKTCheckpoint, msg), nil
}

// ed25519Signer signs note text with a plain Ed25519 key (type 0x01).
type ed25519Signer struct {
	name string
	id   uint32
	key  *primitives.Ed25519Key
}

func (s *ed25519Signer) Name() string                    { return s.name }
func (s *ed25519Signer) KeyHash() uint32                 { return s.id }
func (s *ed25519Signer) Sign(msg []byte) ([]byte, error) { return s.key.Sign(msg), nil }

func hybridTypeAndKey(pub *primitives.SigningPublicKey) []byte {
	return append(append([]byte{sigTypeUnassigned}, HybridSigType...), pub.Bytes()...)
}

// HybridVerifier verifies the log's hybrid checkpoint signature; it is a
// note.Verifier.
type HybridVerifier struct {
	name string
	id   uint32
	key  *primitives.SigningPublicKey
}

var _ note.Verifier = (*HybridVerifier)(nil)

// NewHybridVerifier returns the verifier of name's hybrid key pub.
func NewHybridVerifier(name string, pub *primitives.SigningPublicKey) (*HybridVerifier, error) {
	if !validName(name) {
		return nil, fmt.Errorf("kt: invalid key name %q", name)
	}
	return &HybridVerifier{name: name, id: keyID(name, hybridTypeAndKey(pub)), key: pub}, nil
}

// ParseHybridVerifier parses the vkey String writes.
func ParseHybridVerifier(s string) (*HybridVerifier, error) {
	name, key, err := parseVKey(s)
	if err != nil {
		return nil, err
	}
	prefix := append([]byte{sigTypeUnassigned}, HybridSigType...)
	if !bytes.HasPrefix(key, prefix) {
		return nil, fmt.Errorf("kt: verifier key %s is not a Parley hybrid key", name)
	}
	pub, err := primitives.NewSigningPublicKey(key[len(prefix):])
	if err != nil {
		return nil, fmt.Errorf("kt: verifier key %s: %w", name, err)
	}
	return NewHybridVerifier(name, pub)
}

func (v *HybridVerifier) Name() string    { return v.name }
func (v *HybridVerifier) KeyHash() uint32 { return v.id }
func (v *HybridVerifier) Verify(msg, sig []byte) bool {
	return v.key.Verify(primitives.LabelSigKTCheckpoint, msg, sig) == nil
}

// PublicKey returns the hybrid public key.
func (v *HybridVerifier) PublicKey() *primitives.SigningPublicKey { return v.key }

// String returns the vkey: name+keyID+base64(0xff || HybridSigType ||
// public key).
func (v *HybridVerifier) String() string { return vkey(v.name, hybridTypeAndKey(v.key)) }

// CheckpointSigner signs checkpoints for one origin with both of the log's
// keys.
type CheckpointSigner struct {
	origin string
	ed     *ed25519Signer
	hybrid *hybridSigner
}

// NewCheckpointSigner returns the signer of origin's checkpoints. The key
// name of both signatures is the origin.
func NewCheckpointSigner(origin string, ed *primitives.Ed25519Key, hybrid *primitives.SigningKey) (*CheckpointSigner, error) {
	if err := CheckOrigin(origin); err != nil {
		return nil, err
	}
	return &CheckpointSigner{
		origin: origin,
		ed:     &ed25519Signer{name: origin, id: keyID(origin, append([]byte{sigTypeEd25519}, ed.Public()...)), key: ed},
		hybrid: &hybridSigner{name: origin, id: keyID(origin, hybridTypeAndKey(hybrid.Public())), key: hybrid},
	}, nil
}

// Origin returns the origin line.
func (s *CheckpointSigner) Origin() string { return s.origin }

// Sign returns the signed note of the log's checkpoint of size entries
// with the given root: the text, a blank line, the Ed25519 line and the
// hybrid line.
func (s *CheckpointSigner) Sign(size uint64, root [HashSize]byte) ([]byte, error) {
	c := Checkpoint{Origin: s.origin, Size: size, Root: root}
	return note.Sign(&note.Note{Text: c.Text()}, s.ed, s.hybrid)
}

// Ed25519VerifierKey returns the standard vkey of the Ed25519 key, as
// note.NewVerifier and witnesses take it.
func (s *CheckpointSigner) Ed25519VerifierKey() string {
	k, err := note.NewEd25519VerifierKey(s.origin, s.ed.key.Public())
	if err != nil {
		panic("parley: internal error: " + err.Error())
	}
	return k
}

// HybridVerifierKey returns the vkey of the hybrid key.
func (s *CheckpointSigner) HybridVerifierKey() string {
	v, _ := NewHybridVerifier(s.origin, s.hybrid.key.Public())
	return v.String()
}

// CosignatureVerifier verifies c2sp.org/tlog-cosignature cosignature/v1
// signatures (type 0x04): Ed25519 over "cosignature/v1\ntime T\n" || the
// checkpoint text, encoded as u64 T || signature. It is a note.Verifier;
// when it accepts a signature, Time gives the witness's timestamp.
type CosignatureVerifier struct {
	name string
	id   uint32
	key  []byte
}

var _ note.Verifier = (*CosignatureVerifier)(nil)

// NewCosignatureVerifier parses a witness vkey: name+keyID+base64(0x04 ||
// 32-byte Ed25519 public key).
func NewCosignatureVerifier(vkey string) (*CosignatureVerifier, error) {
	name, key, err := parseVKey(vkey)
	if err != nil {
		return nil, err
	}
	if len(key) != 1+primitives.Ed25519PublicKeySize || key[0] != sigTypeCosignature {
		return nil, fmt.Errorf("kt: verifier key %s is not a cosignature/v1 key", name)
	}
	return &CosignatureVerifier{name: name, id: keyID(name, key), key: key[1:]}, nil
}

func (v *CosignatureVerifier) Name() string    { return v.name }
func (v *CosignatureVerifier) KeyHash() uint32 { return v.id }

// String returns the vkey.
func (v *CosignatureVerifier) String() string {
	return vkey(v.name, append([]byte{sigTypeCosignature}, v.key...))
}

// CosignedMessage is what a cosignature/v1 signs at time t.
func CosignedMessage(t uint64, text []byte) []byte {
	return append([]byte("cosignature/v1\ntime "+strconv.FormatUint(t, 10)+"\n"), text...)
}

func (v *CosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+primitives.Ed25519SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > 1<<63-1 {
		return false
	}
	return primitives.VerifyEd25519(v.key, CosignedMessage(t, msg), sig[8:])
}

// CosignatureTime returns the timestamp of a cosignature/v1 signature as
// found in a note (note.Signature.Base64: key ID, then u64 seconds).
func CosignatureTime(sig note.Signature) (time.Time, error) {
	b, err := base64.StdEncoding.DecodeString(sig.Base64)
	if err != nil || len(b) != 4+8+primitives.Ed25519SignatureSize {
		return time.Time{}, checkpointErr("malformed cosignature")
	}
	t := binary.BigEndian.Uint64(b[4:])
	if t > 1<<63-1 {
		return time.Time{}, checkpointErr("cosignature time out of range")
	}
	return time.Unix(int64(t), 0), nil
}

// Cosigner produces cosignature/v1 signatures with an Ed25519 key. Parley
// does not run witnesses; this exists for tests and the known-answer
// vectors, where the time must be fixed, and it is interchangeable with
// any tlog-witness implementation.
type Cosigner struct {
	name string
	id   uint32
	key  *primitives.Ed25519Key
	now  func() time.Time
}

var _ note.Signer = (*Cosigner)(nil)

// NewCosigner returns a cosigner named name; now gives the signing time.
func NewCosigner(name string, key *primitives.Ed25519Key, now func() time.Time) (*Cosigner, error) {
	if !validName(name) {
		return nil, fmt.Errorf("kt: invalid key name %q", name)
	}
	return &Cosigner{name: name, id: keyID(name, append([]byte{sigTypeCosignature}, key.Public()...)), key: key, now: now}, nil
}

func (c *Cosigner) Name() string    { return c.name }
func (c *Cosigner) KeyHash() uint32 { return c.id }
func (c *Cosigner) Sign(msg []byte) ([]byte, error) {
	t := uint64(c.now().Unix())
	return append(binary.BigEndian.AppendUint64(nil, t), c.key.Sign(CosignedMessage(t, msg))...), nil
}

// VerifierKey returns the cosigner's vkey.
func (c *Cosigner) VerifierKey() string {
	return vkey(c.name, append([]byte{sigTypeCosignature}, c.key.Public()...))
}

// Cosign returns signed with the cosigner's signature line added.
func (c *Cosigner) Cosign(signed []byte) ([]byte, error) {
	n, err := openUnverified(signed)
	if err != nil {
		return nil, err
	}
	sig, _ := c.Sign([]byte(n.Text))
	return AddSignatures(signed, SignatureLine(c.name, c.id, sig))
}

// SignatureLine formats one note signature line: "— name base64(keyID ||
// sig)\n".
func SignatureLine(name string, id uint32, sig []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, id)
	return []byte("— " + name + " " + base64.StdEncoding.EncodeToString(append(b, sig...)) + "\n")
}

// openUnverified parses a signed note without checking any signature.
func openUnverified(signed []byte) (*note.Note, error) {
	if len(signed) > MaxCheckpointSize {
		return nil, checkpointErr("note too large")
	}
	_, err := note.Open(signed, note.VerifierList())
	var u *note.UnverifiedNoteError
	if !errors.As(err, &u) {
		return nil, checkpointErr(fmt.Sprintf("not a signed note: %v", err))
	}
	return u.Note, nil
}

// AddSignatures returns signed with the given signature lines (as a
// tlog-witness returns them) appended, dropping lines already present. It
// checks the syntax of the result, not the signatures.
func AddSignatures(signed []byte, lines ...[]byte) ([]byte, error) {
	if _, err := openUnverified(signed); err != nil {
		return nil, err
	}
	out := bytes.Clone(signed)
	for _, l := range lines {
		if !bytes.HasPrefix(l, []byte("— ")) || !bytes.HasSuffix(l, []byte("\n")) || bytes.Count(l, []byte("\n")) != 1 {
			return nil, checkpointErr("malformed signature line")
		}
		if bytes.Contains(out[bytes.LastIndex(out, []byte("\n\n")):], l) {
			continue
		}
		out = append(out, l...)
	}
	n, err := openUnverified(out)
	if err != nil {
		return nil, err
	}
	if len(n.UnverifiedSigs) > MaxCosignatures+2 {
		return nil, checkpointErr("too many signatures")
	}
	return out, nil
}
