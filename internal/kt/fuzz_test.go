package kt

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/vectortest"
	"github.com/parleyim/parley/internal/wire"
)

// The seed corpora in testdata/fuzz/ are written by
// internal/cmd/vectorgen/kt.go from the known-answer vectors.

func TestFuzzCorporaNonEmpty(t *testing.T) {
	for _, target := range []string{"FuzzUnmarshalPrefixProof", "FuzzPrefixProofEvaluate", "FuzzUnmarshalSearchProof",
		"FuzzUnmarshalMonitorProof", "FuzzUnmarshalHead", "FuzzUnmarshalEpoch", "FuzzUnmarshalLogEntry", "FuzzParseCheckpoint"} {
		if n := vectortest.Corpus(t, target); n < 5 {
			t.Errorf("%s has only %d seeds", target, n)
		}
	}
}

func classified(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnsupportedVersion) {
		t.Fatalf("unclassified error %v", err)
	}
}

// roundTrip is the body of every decoder's fuzz target: decoding never
// panics, failures are classified, and what decodes re-encodes to the same
// bytes. It returns the decoded value, and false if data did not decode.
func roundTrip[T any](t *testing.T, data []byte, decode func([]byte) (T, error), encode func(T) ([]byte, error)) (T, bool) {
	t.Helper()
	v, err := decode(data)
	if err != nil {
		classified(t, err)
		return v, false
	}
	b, err := encode(v)
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	return v, true
}

// infallible adapts an encoder that cannot fail to roundTrip.
func infallible[T any](encode func(T) []byte) func(T) ([]byte, error) {
	return func(v T) ([]byte, error) { return encode(v), nil }
}

func FuzzUnmarshalPrefixProof(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, UnmarshalPrefixProof, infallible((*PrefixProof).Marshal))
	})
}

// FuzzPrefixProofEvaluate evaluates any decodable proof against lookups in
// the vectors' small tree: it never panics, and a proof that evaluates to
// the tree's root must report the truth for every lookup (soundness:
// inclusion exactly for members, with their real commitment).
func FuzzPrefixProofEvaluate(f *testing.F) {
	v := loadVectors(f)
	tree, members := v.tree(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := UnmarshalPrefixProof(data)
		if err != nil {
			return
		}
		// Lookups: the vectors' proofs with the same number of lookups
		// name the indexes; otherwise take members then non-members.
		var idx [][IndexSize]byte
		for _, pv := range v.Tree.Proofs {
			if len(pv.Indexes) == len(p.Results) {
				for _, h := range pv.Indexes {
					idx = append(idx, [IndexSize]byte(vectortest.Hex(t, h)))
				}
				break
			}
		}
		if idx == nil {
			return
		}
		cs := make([]*[HashSize]byte, len(idx))
		for i := range idx {
			if p.Results[i].Type == Inclusion {
				c := members[idx[i]] // zero for a non-member
				cs[i] = &c
			}
		}
		root, err := p.Evaluate(idx, cs)
		if err != nil {
			if !errors.Is(err, ErrProof) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if root != tree.Root() {
			return
		}
		for i := range idx {
			_, in := members[idx[i]]
			if p.Results[i].Included() != in {
				t.Fatalf("a proof for the real root claims lookup %d included=%v", i, !in)
			}
		}
	})
}

func FuzzUnmarshalSearchProof(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, ok := roundTrip(t, data, UnmarshalSearchProof, (*SearchProof).Marshal); ok {
			_ = p.Lookups()
		}
	})
}

func FuzzUnmarshalMonitorProof(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		p, ok := roundTrip(t, data, UnmarshalMonitorProof, (*MonitorProof).Marshal)
		if ok && p.Greatest <= MaxVersion && p.From <= p.Greatest+1 && p.Greatest-p.From < MaxMonitorVersions {
			_ = p.Lookups()
		}
	})
}

func FuzzUnmarshalHead(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, UnmarshalHead, (*Head).Marshal)
	})
}

func FuzzUnmarshalEpoch(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, UnmarshalEpoch, (*Epoch).Marshal)
	})
}

func FuzzUnmarshalLogEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, UnmarshalLogEntry, infallible((*LogEntry).Marshal))
	})
}

// FuzzParseCheckpoint: parsing never panics, failures are ErrCheckpoint,
// and a parsed checkpoint's Text is the input (one text per checkpoint).
func FuzzParseCheckpoint(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCheckpoint(string(data))
		if err != nil {
			if !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if c.Text() != string(data) {
			t.Fatalf("Text() = %q, input %q", c.Text(), data)
		}
	})
}
