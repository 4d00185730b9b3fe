package kt

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func testEpochs(t *testing.T, n int) ([]Epoch, []LogEntry) {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 12))
	st := NewState()
	var epochs []Epoch
	var entries []LogEntry
	for i := 0; i < n; i++ {
		e := Epoch{Number: uint64(i), Timestamp: uint64(1000 + i), Leaves: randLeaves(r, i%3*4)}
		entry, err := st.Apply(&e)
		if err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, e)
		entries = append(entries, entry)
	}
	return epochs, entries
}

func TestRebuildState(t *testing.T) {
	epochs, entries := testEpochs(t, 7)
	s, err := RebuildState(epochs, entries)
	if err != nil {
		t.Fatal(err)
	}
	tree, size := s.Snapshot()
	if size != 7 || tree.Root() != entries[6].PrefixRoot {
		t.Fatalf("rebuilt size %d root %x", size, tree.Root())
	}
	for _, bad := range []func() ([]Epoch, []LogEntry){
		func() ([]Epoch, []LogEntry) { return epochs[:6], entries },
		func() ([]Epoch, []LogEntry) {
			es := append([]LogEntry(nil), entries...)
			es[6].PrefixRoot[0] ^= 1
			return epochs, es
		},
		func() ([]Epoch, []LogEntry) {
			ep := append([]Epoch(nil), epochs...)
			ep[2].Leaves = ep[2].Leaves[1:] // a lost insertion
			return ep, entries
		},
		func() ([]Epoch, []LogEntry) {
			es := append([]LogEntry(nil), entries...)
			es[3].Timestamp++
			return epochs, es
		},
	} {
		ep, es := bad()
		if _, err := RebuildState(ep, es); !errors.Is(err, ErrRebuild) {
			t.Errorf("RebuildState accepted inconsistent storage: %v", err)
		}
	}
}

func TestStateApplyOrderAndHead(t *testing.T) {
	st := NewState()
	if _, err := st.Apply(&Epoch{Number: 1}); !errors.Is(err, ErrLogOrder) {
		t.Fatalf("epoch 1 first: %v", err)
	}
	if _, err := st.Apply(&Epoch{Number: 0, Timestamp: 50}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(&Epoch{Number: 1, Timestamp: 49}); !errors.Is(err, ErrLogOrder) {
		t.Fatalf("timestamp going back: %v", err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	ls := randLeaves(r, 3)
	if _, err := st.Apply(&Epoch{Number: 1, Timestamp: 60, Leaves: ls}); err != nil {
		t.Fatal(err)
	}
	// A failed epoch (a re-inserted index) leaves the state unchanged.
	before := st.Tree().Root()
	if _, err := st.Apply(&Epoch{Number: 2, Timestamp: 70, Leaves: ls[:1]}); !errors.Is(err, ErrDuplicateIndex) {
		t.Fatalf("re-insertion: %v", err)
	}
	if st.Tree().Root() != before || st.Log().Size() != 2 {
		t.Fatal("a failed Apply changed the state")
	}
	h, err := st.Head(2, []byte("note"), 1)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := st.Log().Root(2)
	old, _ := st.Log().Root(1)
	if err := VerifyInclusion(h.Inclusion, 2, root, &h.Entry); err != nil || h.Entry.Epoch != 1 {
		t.Fatalf("head entry: %v", err)
	}
	if err := VerifyConsistency(h.Consistency, 1, old, 2, root); err != nil {
		t.Fatalf("head consistency: %v", err)
	}
	if _, err := st.Head(3, nil, 0); err == nil {
		t.Fatal("head beyond the log")
	}
	b, _ := h.Marshal()
	if g, err := UnmarshalHead(b); err != nil || g.Entry != h.Entry || string(g.Checkpoint) != "note" {
		t.Fatalf("head round trip: %v", err)
	}
}
