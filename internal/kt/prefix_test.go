package kt

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

func randLeaves(r *rand.Rand, n int) []Leaf {
	out := make([]Leaf, n)
	for i := range out {
		for j := range out[i].Index {
			out[i].Index[j] = byte(r.Uint32())
		}
		for j := range out[i].Commitment {
			out[i].Commitment[j] = byte(r.Uint32())
		}
	}
	return out
}

// refRoot computes the root hash straight from the definition in
// draft-ietf-keytrans-protocol §3.3 and §10.9, independently of the tree
// code: the value of the position with prefix bits [0, d) holding the
// given leaves.
func refRoot(leaves []Leaf) [32]byte {
	var sub func(d int, ls []Leaf, root bool) [32]byte
	sub = func(d int, ls []Leaf, root bool) [32]byte {
		if len(ls) == 0 && !root {
			return [32]byte{}
		}
		if len(ls) == 1 && !root {
			var b []byte
			b = append(b, 1)
			b = append(b, ls[0].Index[:]...)
			b = append(b, ls[0].Commitment[:]...)
			return primitives.SHA256(b)
		}
		var l, r []Leaf
		for _, x := range ls {
			if x.Index[d/8]&(0x80>>(d%8)) == 0 {
				l = append(l, x)
			} else {
				r = append(r, x)
			}
		}
		lh, rh := sub(d+1, l, false), sub(d+1, r, false)
		return primitives.SHA256(append(append([]byte{2}, lh[:]...), rh[:]...))
	}
	return sub(0, leaves, true)
}

func TestTreeRootMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tree := NewTree()
	if got, want := tree.Root(), refRoot(nil); got != want {
		t.Fatalf("empty root %x, want %x", got, want)
	}
	var all []Leaf
	for _, batch := range []int{1, 1, 2, 5, 17, 100, 1, 300} {
		ls := randLeaves(r, batch)
		next, err := tree.Insert(ls)
		if err != nil {
			t.Fatal(err)
		}
		old := tree.Root()
		all = append(all, ls...)
		if got, want := next.Root(), refRoot(all); got != want {
			t.Fatalf("after %d leaves: root %x, want %x", len(all), got, want)
		}
		if tree.Root() != old || tree.Len() != len(all)-batch {
			t.Fatal("Insert changed the old tree")
		}
		tree = next
		built, err := BuildTree(all)
		if err != nil {
			t.Fatal(err)
		}
		if built.Root() != tree.Root() || built.Len() != tree.Len() {
			t.Fatal("BuildTree differs from incremental inserts")
		}
	}
	for _, l := range all {
		if c, ok := tree.Lookup(l.Index); !ok || c != l.Commitment {
			t.Fatalf("Lookup(%x) = %x, %v", l.Index, c, ok)
		}
	}
	if _, ok := tree.Lookup(randLeaves(r, 1)[0].Index); ok {
		t.Fatal("Lookup found an absent index")
	}
}

// TestTreeShape builds the five-key example of draft-ietf-keytrans-protocol
// Figure 5 (keys 00010, 00101, 10001, 10111, 11011) and checks that leaves
// sit where the draft puts them, through the depths proofs report.
func TestTreeShape(t *testing.T) {
	key := func(bits string) (k [32]byte) {
		for i, c := range bits {
			if c == '1' {
				k[i/8] |= 0x80 >> (i % 8)
			}
		}
		return k
	}
	keys := []string{"00010", "00101", "10001", "10111", "11011"}
	var ls []Leaf
	for _, k := range keys {
		ls = append(ls, Leaf{Index: key(k)})
	}
	tree, err := BuildTree(ls)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint8{"00010": 3, "00101": 3, "10001": 3, "10111": 3, "11011": 2}
	for _, k := range keys {
		p, err := tree.Prove([][32]byte{key(k)})
		if err != nil {
			t.Fatal(err)
		}
		if r := p.Results[0]; r.Type != Inclusion || r.Depth != want[k] {
			t.Errorf("%s: %v at depth %d, want inclusion at %d", k, r.Type, r.Depth, want[k])
		}
	}
	// 01101 (Figure 6's new key) is absent: the root's left child (0) has
	// no right child (01), so the search ends at that parent, depth 1.
	p, _ := tree.Prove([][32]byte{key("01101")})
	if r := p.Results[0]; r.Type != NonInclusionParent || r.Depth != 1 {
		t.Errorf("01101: %v at depth %d", r.Type, r.Depth)
	}
	// 11000 ends at the leaf 11011 (depth 2).
	p, _ = tree.Prove([][32]byte{key("11000")})
	if r := p.Results[0]; r.Type != NonInclusionLeaf || r.Depth != 2 || r.Leaf.Index != key("11011") {
		t.Errorf("11000: %v at depth %d", r.Type, r.Depth)
	}
	// Adding 01101 gives Figure 6: it becomes the right child of 0.
	tree2, err := tree.Insert([]Leaf{{Index: key("01101")}})
	if err != nil {
		t.Fatal(err)
	}
	p, _ = tree2.Prove([][32]byte{key("01101")})
	if r := p.Results[0]; r.Type != Inclusion || r.Depth != 2 {
		t.Errorf("01101 after insert: %v at depth %d", r.Type, r.Depth)
	}
}

func TestTreeAppendOnly(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ls := randLeaves(r, 50)
	tree, err := BuildTree(ls)
	if err != nil {
		t.Fatal(err)
	}
	// The same index with another commitment: entries never change.
	again := ls[7]
	again.Commitment[0] ^= 1
	if _, err := tree.Insert([]Leaf{again}); !errors.Is(err, ErrDuplicateIndex) {
		t.Fatalf("re-inserting an index: %v", err)
	}
	fresh := randLeaves(r, 2)
	if _, err := tree.Insert([]Leaf{fresh[0], fresh[1], fresh[0]}); !errors.Is(err, ErrDuplicateIndex) {
		t.Fatalf("an index twice in one batch: %v", err)
	}
	if _, err := BuildTree(append(ls, ls[3])); !errors.Is(err, ErrDuplicateIndex) {
		t.Fatalf("BuildTree with a repeat: %v", err)
	}
	// Two indexes sharing 255 bits cannot both be stored (MaxDepth).
	a := fresh[0]
	b := a
	b.Index[31] ^= 1
	if _, err := tree.Insert([]Leaf{a, b}); !errors.Is(err, ErrIndexCollision) {
		t.Fatalf("indexes sharing 255 bits: %v", err)
	}
	c := a
	c.Index[31] ^= 2 // shares 254 bits: fine, leaves at depth 255
	t2, err := tree.Insert([]Leaf{a, c})
	if err != nil {
		t.Fatal(err)
	}
	p, err := t2.Prove([][32]byte{a.Index, b.Index})
	if err != nil {
		t.Fatal(err)
	}
	if p.Results[0].Depth != 255 || p.Results[1].Type != NonInclusionLeaf {
		t.Fatalf("deep results %+v", p.Results)
	}
	if root, err := p.Evaluate([][32]byte{a.Index, b.Index}, []*[32]byte{&a.Commitment, nil}); err != nil || root != t2.Root() {
		t.Fatalf("deep proof: %v", err)
	}
}

// checkProof proves the indexes in tree, checks the results against
// membership, re-encodes the proof and evaluates it to the root.
func checkProof(t *testing.T, tree *Tree, members map[[32]byte][32]byte, idx [][32]byte) *PrefixProof {
	t.Helper()
	p, err := tree.Prove(idx)
	if err != nil {
		t.Fatal(err)
	}
	enc := p.Marshal()
	p2, err := UnmarshalPrefixProof(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p2.Marshal(), enc) {
		t.Fatal("re-encoding differs")
	}
	cs := make([]*[32]byte, len(idx))
	for i, x := range idx {
		c, in := members[x]
		if in != p.Results[i].Included() {
			t.Fatalf("lookup %d: included=%v, result %v", i, in, p.Results[i].Type)
		}
		if in {
			cs[i] = &c
		}
	}
	root, err := p2.Evaluate(idx, cs)
	if err != nil {
		t.Fatal(err)
	}
	if root != tree.Root() {
		t.Fatalf("proof for %d lookups evaluates to %x, root %x", len(idx), root, tree.Root())
	}
	return p
}

func TestPrefixProofs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, 3, 10, 1000} {
		ls := randLeaves(r, n)
		tree, err := BuildTree(ls)
		if err != nil {
			t.Fatal(err)
		}
		members := map[[32]byte][32]byte{}
		for _, l := range ls {
			members[l.Index] = l.Commitment
		}
		for _, k := range []int{1, 2, 6, 20} {
			var idx [][32]byte
			for i := 0; i < k; i++ {
				if n > 0 && r.IntN(2) == 0 {
					idx = append(idx, ls[r.IntN(n)].Index)
				} else {
					idx = append(idx, randLeaves(r, 1)[0].Index)
				}
			}
			slices.SortFunc(idx, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
			idx = slices.Compact(idx)
			r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			checkProof(t, tree, members, idx)
		}
		// A lookup that ends at a leaf for another index: take a member
		// and change its last bit.
		if n > 0 {
			near := ls[0].Index
			near[31] ^= 1
			p := checkProof(t, tree, members, [][32]byte{near, ls[0].Index})
			if p.Results[0].Type != NonInclusionLeaf {
				t.Fatalf("neighbour of a member: %v", p.Results[0].Type)
			}
		}
	}
}

// TestPrefixProofTampering: changing any element, any result, or the
// commitment supplied for an inclusion either fails to evaluate or gives
// another root.
func TestPrefixProofTampering(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	ls := randLeaves(r, 500)
	tree, _ := BuildTree(ls)
	absent := randLeaves(r, 3)
	idx := [][32]byte{ls[0].Index, absent[0].Index, ls[1].Index, absent[1].Index}
	cs := []*[32]byte{&ls[0].Commitment, nil, &ls[1].Commitment, nil}
	p, _ := tree.Prove(idx)
	enc := p.Marshal()
	bad := func(what string, q *PrefixProof, idx [][32]byte, cs []*[32]byte) {
		t.Helper()
		root, err := q.Evaluate(idx, cs)
		if err == nil && root == tree.Root() {
			t.Errorf("%s: still evaluates to the root", what)
		}
		if err != nil && !errors.Is(err, ErrProof) {
			t.Errorf("%s: unclassified error %v", what, err)
		}
	}
	for i := range p.Elements {
		q, _ := UnmarshalPrefixProof(enc)
		q.Elements[i][5] ^= 1
		bad("element", q, idx, cs)
	}
	for i := range p.Results {
		for _, typ := range []ResultType{Inclusion, NonInclusionLeaf, NonInclusionParent} {
			q, _ := UnmarshalPrefixProof(enc)
			if q.Results[i].Type == typ {
				continue
			}
			q.Results[i].Type = typ
			q.Results[i].Leaf = ls[2]
			c := slices.Clone(cs)
			if typ == Inclusion {
				c[i] = &ls[2].Commitment
			} else {
				c[i] = nil
			}
			bad("result type", q, idx, c)
		}
		for _, dd := range []int{-1, 1} {
			q, _ := UnmarshalPrefixProof(enc)
			q.Results[i].Depth = uint8(int(q.Results[i].Depth) + dd)
			bad("depth", q, idx, cs)
		}
	}
	other := ls[0].Commitment
	other[0] ^= 1
	bad("commitment", p, idx, []*[32]byte{&other, nil, &ls[1].Commitment, nil})
	// Another index in place of one looked up.
	bad("index", p, [][32]byte{ls[0].Index, absent[2].Index, ls[1].Index, absent[1].Index}, cs)
	// Dropped or extra elements.
	q, _ := UnmarshalPrefixProof(enc)
	q.Elements = q.Elements[:len(q.Elements)-1]
	bad("dropped element", q, idx, cs)
	q, _ = UnmarshalPrefixProof(enc)
	q.Elements = append(q.Elements, [32]byte{})
	bad("extra element", q, idx, cs)
	// A commitment where none belongs, none where one does.
	bad("commitment for absent", p, idx, []*[32]byte{&ls[0].Commitment, &ls[1].Commitment, &ls[1].Commitment, nil})
	bad("no commitment", p, idx, []*[32]byte{nil, nil, &ls[1].Commitment, nil})
	bad("repeated index", p, [][32]byte{ls[0].Index, ls[0].Index, ls[1].Index, absent[1].Index}, cs)
}

func TestPrefixProofEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	ls := randLeaves(r, 64)
	tree, _ := BuildTree(ls)
	near := ls[0].Index
	near[31] ^= 1
	p, _ := tree.Prove([][32]byte{ls[0].Index, near, randLeaves(r, 1)[0].Index})
	enc := p.Marshal()
	for i := 0; i < len(enc); i++ {
		if _, err := UnmarshalPrefixProof(enc[:i]); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
	if _, err := UnmarshalPrefixProof(append(enc, 0)); !errors.Is(err, wire.ErrMalformed) {
		t.Fatal("trailing byte accepted")
	}
	bad := slices.Clone(enc)
	bad[1] = 9 // result type
	if _, err := UnmarshalPrefixProof(bad); !errors.Is(err, wire.ErrMalformed) {
		t.Fatal("unknown result type accepted")
	}
}
