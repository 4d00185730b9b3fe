package kt

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/wire"
)

// Epoch is what a server stores for one epoch and serves to auditors: the
// leaves it inserted into the prefix tree and its timestamp. The epochs
// from 0 rebuild the whole tree and log.
type Epoch struct {
	Number    uint64
	Timestamp uint64 // milliseconds since the Unix epoch
	Leaves    []Leaf
}

// Marshal encodes the epoch: version || u64 number || u64 timestamp || u32
// count || leaves (index 32 || commitment 32), in the order given.
func (e *Epoch) Marshal() ([]byte, error) {
	if len(e.Leaves) > MaxEpochLeaves {
		return nil, fmt.Errorf("kt: %d leaves in one epoch (at most %d)", len(e.Leaves), MaxEpochLeaves)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 21+len(e.Leaves)*2*HashSize))
	b.AddUint8(wire.Version)
	b.AddUint64(e.Number)
	b.AddUint64(e.Timestamp)
	b.AddUint32(uint32(len(e.Leaves)))
	for i := range e.Leaves {
		b.AddBytes(e.Leaves[i].Index[:])
		b.AddBytes(e.Leaves[i].Commitment[:])
	}
	return b.Bytes()
}

// UnmarshalEpoch decodes an Epoch.
func UnmarshalEpoch(data []byte) (*Epoch, error) {
	r := newReader("kt epoch", data)
	r.version()
	e := &Epoch{Number: r.u64("number"), Timestamp: r.u64("timestamp")}
	n := r.u32("leaf count")
	if r.err == nil && (n > MaxEpochLeaves || uint64(len(r.s)) < uint64(n)*2*HashSize) {
		r.fail("leaf count")
	}
	if r.err == nil {
		e.Leaves = make([]Leaf, n)
		for i := range e.Leaves {
			r.bytes(e.Leaves[i].Index[:], "index")
			r.bytes(e.Leaves[i].Commitment[:], "commitment")
		}
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return e, nil
}

// State is the server's (or an auditor's) whole key-transparency state:
// the prefix tree after the newest epoch and the log of epoch entries. It
// is what Apply builds epoch by epoch and RebuildState rebuilds from
// storage. It is safe for concurrent use; Tree returns an immutable
// snapshot. Lock order: State.mu, then Log.mu.
type State struct {
	mu   sync.RWMutex
	tree *Tree
	log  *Log
}

// NewState returns the state before epoch 0.
func NewState() *State { return &State{tree: NewTree(), log: NewLog()} }

// Tree returns the prefix tree of the newest epoch (immutable).
func (s *State) Tree() *Tree {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree
}

// Log returns the log.
func (s *State) Log() *Log { return s.log }

// Apply inserts the epoch's leaves and appends its log entry. The epoch's
// number must be the log's size and its timestamp not earlier than the
// last; any error leaves the state unchanged.
func (s *State) Apply(e *Epoch) (LogEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.log.Size(); e.Number != n {
		return LogEntry{}, fmt.Errorf("%w: epoch %d applied to a log of %d", ErrLogOrder, e.Number, n)
	}
	if last, err := s.log.Last(); err == nil && e.Timestamp < last.Timestamp {
		return LogEntry{}, fmt.Errorf("%w: epoch %d timestamp %d before %d", ErrLogOrder, e.Number, e.Timestamp, last.Timestamp)
	}
	if len(e.Leaves) > MaxEpochLeaves {
		return LogEntry{}, fmt.Errorf("kt: %d leaves in one epoch", len(e.Leaves))
	}
	t, err := s.tree.Insert(e.Leaves)
	if err != nil {
		return LogEntry{}, err
	}
	entry := LogEntry{Epoch: e.Number, Timestamp: e.Timestamp, PrefixRoot: t.Root()}
	if err := s.log.Append(entry); err != nil {
		return LogEntry{}, err
	}
	s.tree = t
	return entry, nil
}

// ErrRebuild reports stored epochs and entries that do not fit together.
var ErrRebuild = errors.New("kt: stored epochs do not rebuild the stored log")

// RebuildState rebuilds a state from the stored epochs and log entries,
// from epoch 0: the tree in one bottom-up pass over all leaves, checked
// against the newest entry's prefix root, and the log from the entries.
// Intermediate prefix roots are taken from the entries without being
// recomputed; verify.Auditor recomputes every one.
func RebuildState(epochs []Epoch, entries []LogEntry) (*State, error) {
	if len(epochs) != len(entries) {
		return nil, fmt.Errorf("%w: %d epochs, %d entries", ErrRebuild, len(epochs), len(entries))
	}
	n := 0
	for i := range epochs {
		if epochs[i].Number != uint64(i) || entries[i].Epoch != uint64(i) || entries[i].Timestamp != epochs[i].Timestamp {
			return nil, fmt.Errorf("%w: epoch %d", ErrRebuild, i)
		}
		n += len(epochs[i].Leaves)
	}
	all := make([]Leaf, 0, n)
	for i := range epochs {
		all = append(all, epochs[i].Leaves...)
	}
	t, err := BuildTree(all)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRebuild, err)
	}
	if len(entries) > 0 && t.Root() != entries[len(entries)-1].PrefixRoot {
		return nil, fmt.Errorf("%w: the leaves do not give the newest prefix root", ErrRebuild)
	}
	s := &State{tree: t, log: NewLog()}
	for i := range entries {
		if err := s.log.Append(entries[i]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRebuild, err)
		}
	}
	return s, nil
}

// Snapshot returns the newest epoch's tree and the log size it belongs
// to, atomically: a response built from the tree (Prover) and from Head at
// that size is consistent even while Apply runs.
func (s *State) Snapshot() (*Tree, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree, s.log.Size()
}

// Head is the log state a response is verified against (§4, §10.4,
// simplified): the signed checkpoint with its cosignatures, the entry of
// the newest epoch with its inclusion proof, and a consistency proof from
// the checkpoint size the client last verified.
type Head struct {
	Checkpoint  []byte
	Entry       LogEntry
	Inclusion   [][HashSize]byte
	Consistency [][HashSize]byte
}

// Head returns the head for signed, the signed checkpoint of the log's
// first size entries, with a consistency proof from fromSize (0: none).
func (s *State) Head(size uint64, signed []byte, fromSize uint64) (*Head, error) {
	if size == 0 || size > s.log.Size() {
		return nil, fmt.Errorf("kt: no checkpoint of size %d", size)
	}
	entry, err := s.log.Entry(size - 1)
	if err != nil {
		return nil, err
	}
	inc, err := s.log.InclusionProof(size-1, size)
	if err != nil {
		return nil, err
	}
	h := &Head{Checkpoint: signed, Entry: entry, Inclusion: inc}
	if fromSize > 0 {
		if h.Consistency, err = s.log.ConsistencyProof(fromSize, size); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func addHashes(b *cryptobyte.Builder, hs [][HashSize]byte) {
	if len(hs) > MaxLogProofHashes {
		b.SetError(errors.New("kt: log proof too long"))
		return
	}
	b.AddUint8(uint8(len(hs)))
	for i := range hs {
		b.AddBytes(hs[i][:])
	}
}

func (r *reader) logProof(what string) [][HashSize]byte {
	n := int(r.u8(what + " length"))
	if n > MaxLogProofHashes {
		r.fail(what + " too long")
	}
	return r.hashes(n, what)
}

// Marshal encodes the head: version || u16 length || checkpoint note ||
// log entry (49) || u8 count || inclusion hashes || u8 count ||
// consistency hashes.
func (h *Head) Marshal() ([]byte, error) {
	if len(h.Checkpoint) > MaxCheckpointSize {
		return nil, errors.New("kt: checkpoint note too large")
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(wire.Version)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(h.Checkpoint) })
	b.AddBytes(h.Entry.Marshal())
	addHashes(b, h.Inclusion)
	addHashes(b, h.Consistency)
	return b.Bytes()
}

// UnmarshalHead decodes a Head. It does not verify anything.
func UnmarshalHead(data []byte) (*Head, error) {
	r := newReader("kt head", data)
	r.version()
	h := &Head{}
	var note cryptobyte.String
	if r.err == nil && !r.s.ReadUint16LengthPrefixed(&note) {
		r.fail("truncated checkpoint")
	}
	if len(note) > MaxCheckpointSize {
		r.fail("checkpoint too large")
	}
	h.Checkpoint = note
	var eb [LogEntrySize]byte
	r.bytes(eb[:], "log entry")
	if r.err == nil {
		e, err := UnmarshalLogEntry(eb[:])
		if err != nil {
			return nil, err
		}
		h.Entry = *e
	}
	h.Inclusion = r.logProof("inclusion proof")
	h.Consistency = r.logProof("consistency proof")
	if err := r.done(); err != nil {
		return nil, err
	}
	return h, nil
}
