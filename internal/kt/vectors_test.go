package kt

import (
	"bytes"
	"encoding/hex"
	"slices"
	"testing"

	"github.com/parleyim/parley/internal/vectortest"
)

// The known-answer vectors in testdata/vectors/kt.json, written by
// internal/cmd/vectorgen/kt.go (whose types these mirror). The fixture's
// log is replayed by internal/kt/verify.

type ktVectors struct {
	Commitments []struct {
		Opening    string `json:"opening"`
		Label      string `json:"label"`
		Version    uint32 `json:"version"`
		Value      string `json:"value"`
		Commitment string `json:"commitment"`
	} `json:"commitments"`
	VRFInputs []struct {
		Label   string `json:"label"`
		Version uint32 `json:"version"`
		Alpha   string `json:"alpha"`
	} `json:"vrf_inputs"`
	LogEntries []struct {
		Epoch      uint64 `json:"epoch"`
		Timestamp  uint64 `json:"timestamp"`
		PrefixRoot string `json:"prefix_root"`
		Encoding   string `json:"encoding"`
	} `json:"log_entries"`
	Tree struct {
		EmptyRoot string `json:"empty_root"`
		Leaves    []struct {
			Index      string `json:"index"`
			Commitment string `json:"commitment"`
		} `json:"leaves"`
		Root   string `json:"root"`
		Proofs []struct {
			Indexes []string `json:"indexes"`
			Results []string `json:"results"`
			Proof   string   `json:"proof"`
		} `json:"proofs"`
	} `json:"tree"`
	Ladders []struct {
		Greatest uint32   `json:"greatest"`
		Versions []uint32 `json:"versions"`
	} `json:"ladders"`
	Fixture struct {
		Checkpoint string   `json:"checkpoint"`
		Epochs     []string `json:"epochs"`
		Entries    []string `json:"entries"`
	} `json:"fixture"`
}

func loadVectors(t testing.TB) *ktVectors {
	t.Helper()
	var v ktVectors
	vectortest.Load(t, "kt", &v)
	if len(v.Commitments) == 0 || len(v.VRFInputs) == 0 || len(v.LogEntries) == 0 || len(v.Tree.Leaves) == 0 ||
		len(v.Tree.Proofs) == 0 || len(v.Ladders) == 0 || len(v.Fixture.Epochs) == 0 {
		t.Fatal("kt.json is missing a section; regenerate with go run ./internal/cmd/vectorgen")
	}
	return &v
}

func (v *ktVectors) tree(t testing.TB) (*Tree, map[[IndexSize]byte][HashSize]byte) {
	var leaves []Leaf
	members := map[[IndexSize]byte][HashSize]byte{}
	for _, l := range v.Tree.Leaves {
		x := Leaf{Index: [IndexSize]byte(vectortest.Hex(t, l.Index)), Commitment: [HashSize]byte(vectortest.Hex(t, l.Commitment))}
		leaves = append(leaves, x)
		members[x.Index] = x.Commitment
	}
	tree, err := BuildTree(leaves)
	if err != nil {
		t.Fatal(err)
	}
	return tree, members
}

func TestVectorsCommitmentsAndVRFInputs(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.Commitments {
		got := Commit([OpeningSize]byte(vectortest.Hex(t, c.Opening)), c.Label, c.Version, vectortest.Hex(t, c.Value))
		if hex.EncodeToString(got[:]) != c.Commitment {
			t.Errorf("Commit(%q, %d) = %x, want %s", c.Label, c.Version, got, c.Commitment)
		}
	}
	for _, in := range v.VRFInputs {
		if got := hex.EncodeToString(VRFInput(in.Label, in.Version)); got != in.Alpha {
			t.Errorf("VRFInput(%q, %d) = %s, want %s", in.Label, in.Version, got, in.Alpha)
		}
	}
}

func TestVectorsLogEntries(t *testing.T) {
	v := loadVectors(t)
	l := NewLog()
	for _, e := range v.LogEntries {
		entry := LogEntry{Epoch: e.Epoch, Timestamp: e.Timestamp, PrefixRoot: [HashSize]byte(vectortest.Hex(t, e.PrefixRoot))}
		if got := hex.EncodeToString(entry.Marshal()); got != e.Encoding {
			t.Fatalf("entry %d encodes to %s, want %s", e.Epoch, got, e.Encoding)
		}
		if err := l.Append(entry); err != nil {
			t.Fatal(err)
		}
	}
	// The log of these entries is the one the fixture's checkpoint signs.
	text, _, _ := bytes.Cut([]byte(v.Fixture.Checkpoint), []byte("\n\n"))
	c, err := ParseCheckpoint(string(text) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	root, err := l.Root(c.Size)
	if err != nil || root != c.Root {
		t.Fatalf("log root %x, checkpoint %x (%v)", root, c.Root, err)
	}
}

func TestVectorsTree(t *testing.T) {
	v := loadVectors(t)
	if r := NewTree().Root(); hex.EncodeToString(r[:]) != v.Tree.EmptyRoot {
		t.Fatalf("empty root %x", r)
	}
	tree, members := v.tree(t)
	if r := tree.Root(); hex.EncodeToString(r[:]) != v.Tree.Root {
		t.Fatalf("root %x, want %s", r, v.Tree.Root)
	}
	names := map[ResultType]string{Inclusion: "inclusion", NonInclusionLeaf: "non-inclusion-leaf", NonInclusionParent: "non-inclusion-parent"}
	for i, pv := range v.Tree.Proofs {
		var idx [][IndexSize]byte
		for _, h := range pv.Indexes {
			idx = append(idx, [IndexSize]byte(vectortest.Hex(t, h)))
		}
		p, err := tree.Prove(idx)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(p.Marshal()); got != pv.Proof {
			t.Fatalf("proof %d = %s, want %s", i, got, pv.Proof)
		}
		cs := make([]*[HashSize]byte, len(idx))
		for j := range idx {
			if names[p.Results[j].Type] != pv.Results[j] {
				t.Fatalf("proof %d lookup %d: %v, want %s", i, j, p.Results[j].Type, pv.Results[j])
			}
			if c, ok := members[idx[j]]; ok {
				cs[j] = &c
			}
		}
		q, err := UnmarshalPrefixProof(vectortest.Hex(t, pv.Proof))
		if err != nil {
			t.Fatal(err)
		}
		if root, err := q.Evaluate(idx, cs); err != nil || root != tree.Root() {
			t.Fatalf("proof %d does not evaluate to the root: %v", i, err)
		}
	}
}

func TestVectorsLadders(t *testing.T) {
	for _, l := range loadVectors(t).Ladders {
		if got := BinaryLadder(l.Greatest); !slices.Equal(got, l.Versions) {
			t.Errorf("BinaryLadder(%d) = %v, want %v", l.Greatest, got, l.Versions)
		}
	}
}

// TestVectorsEpochsRebuild decodes the fixture's epochs and entries and
// rebuilds its state.
func TestVectorsEpochsRebuild(t *testing.T) {
	v := loadVectors(t)
	var epochs []Epoch
	var entries []LogEntry
	for i := range v.Fixture.Epochs {
		b := vectortest.Hex(t, v.Fixture.Epochs[i])
		e, err := UnmarshalEpoch(b)
		if err != nil {
			t.Fatal(err)
		}
		if re, _ := e.Marshal(); !bytes.Equal(re, b) {
			t.Fatal("epoch re-encodes differently")
		}
		epochs = append(epochs, *e)
		en, err := UnmarshalLogEntry(vectortest.Hex(t, v.Fixture.Entries[i]))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, *en)
	}
	s, err := RebuildState(epochs, entries)
	if err != nil {
		t.Fatal(err)
	}
	st := NewState()
	for i := range epochs {
		got, err := st.Apply(&epochs[i])
		if err != nil || got != entries[i] {
			t.Fatalf("epoch %d applies to %+v, want %+v (%v)", i, got, entries[i], err)
		}
	}
	if s.Tree().Root() != st.Tree().Root() {
		t.Fatal("RebuildState and Apply disagree")
	}
}
