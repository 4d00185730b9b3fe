package kt

import (
	"crypto/sha256"
	"errors"
	"testing"
)

// rfc6962MTH is the Merkle Tree Hash of RFC 6962 §2.1, written from the
// definition as an independent reference for the tlog-based log.
func rfc6962MTH(leaves [][]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := rfc6962MTH(leaves[:k]), rfc6962MTH(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func testEntries(n int) []LogEntry {
	out := make([]LogEntry, n)
	for i := range out {
		out[i] = LogEntry{Epoch: uint64(i), Timestamp: 1_700_000_000_000 + uint64(i)*1000}
		out[i].PrefixRoot[0] = byte(i)
		out[i].PrefixRoot[31] = byte(i >> 8)
	}
	return out
}

func TestLogRootsAndProofs(t *testing.T) {
	const n = 70
	es := testEntries(n)
	l := NewLog()
	var data [][]byte
	for i := range es {
		if err := l.Append(es[i]); err != nil {
			t.Fatal(err)
		}
		data = append(data, es[i].Marshal())
	}
	roots := make([][32]byte, n+1)
	for size := uint64(1); size <= n; size++ {
		root, err := l.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		if want := rfc6962MTH(data[:size]); root != want {
			t.Fatalf("root of %d = %x, want %x", size, root, want)
		}
		roots[size] = root
	}
	for size := uint64(1); size <= n; size++ {
		for i := uint64(0); i < size; i++ {
			p, err := l.InclusionProof(i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(p, size, roots[size], &es[i]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, size, err)
			}
			other := es[i]
			other.Timestamp++
			if err := VerifyInclusion(p, size, roots[size], &other); !errors.Is(err, ErrLogProof) {
				t.Fatalf("altered entry %d in %d verified: %v", i, size, err)
			}
			if len(p) > 0 {
				p[0][0] ^= 1
				if err := VerifyInclusion(p, size, roots[size], &es[i]); !errors.Is(err, ErrLogProof) {
					t.Fatal("altered inclusion proof verified")
				}
			}
		}
		for old := uint64(1); old <= size; old++ {
			p, err := l.ConsistencyProof(old, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistency(p, old, roots[old], size, roots[size]); err != nil {
				t.Fatalf("consistency %d→%d: %v", old, size, err)
			}
			if old < size {
				wrong := roots[size]
				wrong[0] ^= 1
				if err := VerifyConsistency(p, old, roots[old], size, wrong); !errors.Is(err, ErrLogProof) {
					t.Fatalf("consistency %d→%d verified against a forked new root", old, size)
				}
				bad := roots[old]
				bad[3] ^= 1
				if err := VerifyConsistency(p, old, bad, size, roots[size]); !errors.Is(err, ErrLogProof) {
					t.Fatalf("consistency %d→%d verified from a forked old root", old, size)
				}
			}
		}
	}
	// Size 0 and reversed sizes are refused, not panics.
	if err := VerifyConsistency(nil, 5, roots[5], 4, roots[4]); !errors.Is(err, ErrLogProof) {
		t.Fatal("shrinking consistency accepted")
	}
	if err := VerifyInclusion(nil, 0, roots[1], &es[0]); !errors.Is(err, ErrLogProof) {
		t.Fatal("inclusion in an empty log accepted")
	}
}

func TestLogAppendOrder(t *testing.T) {
	es := testEntries(3)
	l := NewLog()
	if err := l.Append(es[1]); !errors.Is(err, ErrLogOrder) {
		t.Fatalf("epoch 1 first: %v", err)
	}
	if err := l.Append(es[0]); err != nil {
		t.Fatal(err)
	}
	back := es[1]
	back.Timestamp = es[0].Timestamp - 1
	if err := l.Append(back); !errors.Is(err, ErrLogOrder) {
		t.Fatalf("timestamp going back: %v", err)
	}
	same := es[1]
	same.Timestamp = es[0].Timestamp
	if err := l.Append(same); err != nil {
		t.Fatalf("equal timestamp: %v", err)
	}
	if last, _ := l.Last(); last != same || l.Size() != 2 {
		t.Fatal("Last or Size wrong")
	}
}

func TestLogEntryEncoding(t *testing.T) {
	e := testEntries(5)[4]
	b := e.Marshal()
	if len(b) != LogEntrySize || b[0] != 1 {
		t.Fatalf("encoding %x", b)
	}
	got, err := UnmarshalLogEntry(b)
	if err != nil || *got != e {
		t.Fatalf("round trip: %v", err)
	}
	for i := 0; i < len(b); i++ {
		if _, err := UnmarshalLogEntry(b[:i]); err == nil {
			t.Fatalf("prefix of %d accepted", i)
		}
	}
	if _, err := UnmarshalLogEntry(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}
