package verify

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/vectortest"
	"github.com/parleyim/parley/internal/wire"
)

// The seed corpora in testdata/fuzz/ are written by
// internal/cmd/vectorgen/kt.go from the fixture's proofs. Each verifier
// fuzzer checks, beyond "no panic and a typed error", that whatever it
// accepts is the truth of the fixture's log: only the fixture's keys sign,
// so an accepted answer that differs from the log would be a forgery.

func TestFuzzCorporaNonEmpty(t *testing.T) {
	for _, target := range []string{"FuzzVerifySearch", "FuzzVerifyMonitor", "FuzzVerifyHead", "FuzzVerifyCheckpoint", "FuzzUnmarshalTrusted", "FuzzAuditorApply"} {
		if n := vectortest.Corpus(t, target); n < 5 {
			t.Errorf("%s has only %d seeds", target, n)
		}
	}
}

func securityOrMalformed(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if errors.As(err, &e) || errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrUnsupportedVersion) || errors.Is(err, ErrNotFound) || errors.Is(err, kt.ErrLabel) {
		return
	}
	t.Fatalf("unclassified error %v", err)
}

func (l *loaded) label(selector byte) string { return l.f.Labels[int(selector)%len(l.f.Labels)].Label }

// FuzzVerifySearch reads a label selector byte and a search proof. An
// accepted greatest-version search returns the label's real greatest
// version and value; an accepted absence is only for a label the log does
// not hold; an accepted fixed-version search returns a real version's
// value.
func FuzzVerifySearch(f *testing.F) {
	l := loadFixture(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		label := l.label(data[0])
		p, err := kt.UnmarshalSearchProof(data[1:])
		if err != nil {
			return
		}
		vs := l.values[label]
		// The proof as a fixed-version search can only give a real
		// version's value.
		if fx, err := l.cfg.VerifyFixed(l.trusted, label, p.Target, p); err != nil {
			securityOrMalformed(t, err)
		} else if int(fx.Version) >= len(vs) || !bytes.Equal(fx.Value, vs[fx.Version]) {
			t.Fatalf("%q: fixed search accepted version %d %q", label, fx.Version, fx.Value)
		}
		found, err := l.cfg.VerifySearch(l.trusted, label, p)
		if err != nil {
			securityOrMalformed(t, err)
			if errors.Is(err, ErrNotFound) {
				t.Fatalf("absence of %q accepted", label)
			}
			return
		}
		if found.Version != uint32(len(vs)-1) || !bytes.Equal(found.Value, vs[len(vs)-1]) {
			t.Fatalf("%q: accepted version %d %q", label, found.Version, found.Value)
		}
	})
}

// FuzzVerifyMonitor reads a label selector byte and a monitor proof, and
// monitors as the label's honest owner: an accepted proof reports the real
// greatest version and nothing unexpected; an UnexpectedVersion can only
// come with a proof that verified, so it must name a real version… of
// which there are none the owner did not make.
func FuzzVerifyMonitor(f *testing.F) {
	l := loadFixture(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		label := l.label(data[0])
		p, err := kt.UnmarshalMonitorProof(data[1:])
		if err != nil {
			return
		}
		r, err := l.cfg.VerifyMonitor(l.trusted, label, p.From, l.owner(label), p)
		if err != nil {
			securityOrMalformed(t, err)
			var e *Error
			if errors.As(err, &e) && (e.Kind == UnexpectedVersion || e.Kind == HiddenVersion) {
				t.Fatalf("%q: honest owner told %v", label, err)
			}
			return
		}
		if r.Greatest != uint32(len(l.values[label])-1) || len(r.Unexpected) != 0 {
			t.Fatalf("%q: accepted greatest %d", label, r.Greatest)
		}
	})
}

// FuzzVerifyHead: an accepted head is the fixture's checkpoint and newest
// entry.
func FuzzVerifyHead(f *testing.F) {
	l := loadFixture(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := kt.UnmarshalHead(data)
		if err != nil {
			return
		}
		tr, err := l.cfg.VerifyHead(nil, h, l.now)
		if err != nil {
			securityOrMalformed(t, err)
			return
		}
		if tr.Checkpoint != l.trusted.Checkpoint || tr.Entry != l.trusted.Entry {
			t.Fatalf("accepted checkpoint %+v entry %+v", tr.Checkpoint, tr.Entry)
		}
		if _, err := l.cfg.VerifyHead(l.trusted, h, l.now); err != nil {
			t.Fatalf("an accepted head is inconsistent with itself: %v", err)
		}
	})
}

// FuzzVerifyCheckpoint: an accepted note is a checkpoint of the fixture's
// log (its one checkpoint), and VerifyPeerCheckpoint never panics on it.
func FuzzVerifyCheckpoint(f *testing.F) {
	l := loadFixture(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, _, err := l.cfg.VerifyCheckpoint(data)
		if err != nil {
			securityOrMalformed(t, err)
		} else if c != l.trusted.Checkpoint {
			t.Fatalf("accepted checkpoint %+v", c)
		}
		if err := l.cfg.VerifyPeerCheckpoint(l.trusted, data, nil); err != nil {
			securityOrMalformed(t, err)
		}
	})
}

func FuzzUnmarshalTrusted(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := UnmarshalTrusted(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnsupportedVersion) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !bytes.Equal(tr.Marshal(), data) {
			t.Fatal("re-encoding differs")
		}
	})
}

// FuzzAuditorApply audits one more epoch after the fixture's log: never a
// panic, every refusal a typed error, and an accepted epoch is exactly the
// previous tree plus its leaves (each now found with its commitment) at
// the next position of the log.
func FuzzAuditorApply(f *testing.F) {
	l := loadFixture(f)
	var epochs []kt.Epoch
	var entries []kt.LogEntry
	for i := range l.f.Epochs {
		e, err := kt.UnmarshalEpoch(vectortest.Hex(f, l.f.Epochs[i]))
		if err != nil {
			f.Fatal(err)
		}
		epochs = append(epochs, *e)
		en, _ := kt.UnmarshalLogEntry(vectortest.Hex(f, l.f.Entries[i]))
		entries = append(entries, *en)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := kt.UnmarshalEpoch(data)
		if err != nil {
			return
		}
		st, err := kt.RebuildState(epochs, entries)
		if err != nil {
			t.Fatal(err)
		}
		a := ResumeAuditor(st)
		before := st.Tree()
		if err := a.Apply(e, nil); err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("untyped audit error %v", err)
			}
			if st.Tree() != before || a.Size() != uint64(len(epochs)) {
				t.Fatal("a refused epoch changed the audited state")
			}
			return
		}
		if a.Size() != uint64(len(epochs))+1 || st.Tree().Len() != before.Len()+len(e.Leaves) {
			t.Fatal("accepted epoch did not grow the log and tree by itself")
		}
		for _, leaf := range e.Leaves {
			if c, ok := st.Tree().Lookup(leaf.Index); !ok || c != leaf.Commitment {
				t.Fatal("an accepted leaf is not in the tree")
			}
		}
	})
}
