package kt

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// The log of epochs: an RFC 6962 Merkle tree whose i'th leaf is the encoded
// LogEntry of epoch i. Hashing and proofs are golang.org/x/mod/sumdb/tlog's
// (RFC 6962 §2.1: leaf SHA-256(0x00 || entry), node SHA-256(0x01 || l ||
// r)); the hashes are kept in tlog's stored-hash order, so a log is rebuilt
// from its entries alone.

var (
	// ErrLogOrder reports an entry appended out of order: an epoch number
	// other than the log's size, or a timestamp earlier than the last.
	ErrLogOrder = errors.New("kt: log entry out of order")
	// ErrLogProof reports an inclusion or consistency proof that does not
	// verify.
	ErrLogProof = errors.New("kt: log proof does not verify")
)

// Log is an append-only RFC 6962 log of epoch entries, in memory. It is
// safe for concurrent use: appends exclude readers only while they add
// hashes.
type Log struct {
	mu      sync.RWMutex
	entries []LogEntry
	hashes  []tlog.Hash // tlog stored hashes of entries[0:len(entries)]
}

// NewLog returns an empty log.
func NewLog() *Log { return &Log{} }

// hashReader reads stored hashes; the caller holds l.mu.
type hashReader []tlog.Hash

func (h hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(h)) {
			return nil, fmt.Errorf("kt: log hash %d not stored", x)
		}
		out[i] = h[x]
	}
	return out, nil
}

// Append adds the entry for the next epoch. Its Epoch must equal the log's
// size and its Timestamp must not be earlier than the previous entry's
// (draft-ietf-keytrans-protocol §4: timestamps are monotonic).
func (l *Log) Append(e LogEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := uint64(len(l.entries))
	if e.Epoch != n {
		return fmt.Errorf("%w: epoch %d appended to a log of %d entries", ErrLogOrder, e.Epoch, n)
	}
	if n > 0 && e.Timestamp < l.entries[n-1].Timestamp {
		return fmt.Errorf("%w: timestamp %d before %d", ErrLogOrder, e.Timestamp, l.entries[n-1].Timestamp)
	}
	hs, err := tlog.StoredHashes(int64(n), e.Marshal(), hashReader(l.hashes))
	if err != nil {
		return fmt.Errorf("kt: log append: %w", err)
	}
	l.hashes = append(l.hashes, hs...)
	l.entries = append(l.entries, e)
	return nil
}

// Size returns the number of entries.
func (l *Log) Size() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return uint64(len(l.entries))
}

// Entry returns the entry of epoch i.
func (l *Log) Entry(i uint64) (LogEntry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if i >= uint64(len(l.entries)) {
		return LogEntry{}, fmt.Errorf("kt: no epoch %d in a log of %d", i, len(l.entries))
	}
	return l.entries[i], nil
}

// Last returns the newest entry.
func (l *Log) Last() (LogEntry, error) {
	l.mu.RLock()
	n := uint64(len(l.entries))
	l.mu.RUnlock()
	if n == 0 {
		return LogEntry{}, errors.New("kt: the log is empty")
	}
	return l.Entry(n - 1)
}

func (l *Log) checkSize(size uint64) error {
	if size == 0 || size > uint64(len(l.entries)) {
		return fmt.Errorf("kt: log size %d out of range 1..%d", size, len(l.entries))
	}
	return nil
}

// Root returns the root hash of the log's first size entries.
func (l *Log) Root(size uint64) ([HashSize]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkSize(size); err != nil {
		return [HashSize]byte{}, err
	}
	h, err := tlog.TreeHash(int64(size), hashReader(l.hashes))
	return h, err
}

// InclusionProof proves that entry index is in the log of the first size
// entries (RFC 6962 §2.1.1).
func (l *Log) InclusionProof(index, size uint64) ([][HashSize]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	if index >= size {
		return nil, fmt.Errorf("kt: entry %d not in a log of %d", index, size)
	}
	p, err := tlog.ProveRecord(int64(size), int64(index), hashReader(l.hashes))
	return fromTlog(p), err
}

// ConsistencyProof proves that the log of the first oldSize entries is a
// prefix of the log of the first size entries (RFC 6962 §2.1.2). It is
// empty when the sizes are equal.
func (l *Log) ConsistencyProof(oldSize, size uint64) ([][HashSize]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.checkSize(size); err != nil {
		return nil, err
	}
	if oldSize == 0 || oldSize > size {
		return nil, fmt.Errorf("kt: no consistency proof from %d to %d", oldSize, size)
	}
	p, err := tlog.ProveTree(int64(size), int64(oldSize), hashReader(l.hashes))
	return fromTlog(p), err
}

func fromTlog(p []tlog.Hash) [][HashSize]byte {
	out := make([][HashSize]byte, len(p))
	for i := range p {
		out[i] = p[i]
	}
	return out
}

func toTlog(p [][HashSize]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i := range p {
		out[i] = p[i]
	}
	return out
}

// VerifyInclusion checks that entry is the leaf at entry.Epoch of the log
// of size entries with the given root.
func VerifyInclusion(proof [][HashSize]byte, size uint64, root [HashSize]byte, entry *LogEntry) error {
	if size == 0 || entry.Epoch >= size || size > 1<<62 || len(proof) > MaxLogProofHashes {
		return fmt.Errorf("%w: entry %d in a log of %d", ErrLogProof, entry.Epoch, size)
	}
	if err := tlog.CheckRecord(toTlog(proof), int64(size), root, int64(entry.Epoch), tlog.RecordHash(entry.Marshal())); err != nil {
		return fmt.Errorf("%w: inclusion of epoch %d: %v", ErrLogProof, entry.Epoch, err)
	}
	return nil
}

// VerifyConsistency checks that the log of oldSize entries with oldRoot is
// a prefix of the log of size entries with root. Equal sizes need an empty
// proof and equal roots.
func VerifyConsistency(proof [][HashSize]byte, oldSize uint64, oldRoot [HashSize]byte, size uint64, root [HashSize]byte) error {
	if oldSize == 0 || oldSize > size || size > 1<<62 || len(proof) > MaxLogProofHashes {
		return fmt.Errorf("%w: consistency from %d to %d", ErrLogProof, oldSize, size)
	}
	if err := tlog.CheckTree(toTlog(proof), int64(size), root, int64(oldSize), oldRoot); err != nil {
		return fmt.Errorf("%w: consistency from %d to %d: %v", ErrLogProof, oldSize, size, err)
	}
	return nil
}
