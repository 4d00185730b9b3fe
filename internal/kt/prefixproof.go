package kt

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// ResultType is the outcome of one lookup in a prefix proof
// (draft-ietf-keytrans-protocol §11.2 PrefixSearchResultType).
type ResultType uint8

const (
	// Inclusion: the search ended at the leaf for the index.
	Inclusion ResultType = 1
	// NonInclusionLeaf: the search ended at a leaf for another index,
	// which the result carries.
	NonInclusionLeaf ResultType = 2
	// NonInclusionParent: the search ended at a parent that lacks the
	// child the index would be under.
	NonInclusionParent ResultType = 3
)

func (t ResultType) String() string {
	switch t {
	case Inclusion:
		return "inclusion"
	case NonInclusionLeaf:
		return "non-inclusion (leaf)"
	case NonInclusionParent:
		return "non-inclusion (parent)"
	}
	return fmt.Sprintf("ResultType(%d)", uint8(t))
}

// Result is the outcome of one lookup (§11.2 PrefixSearchResult).
type Result struct {
	Type ResultType
	// Leaf is the leaf the search ended at, for NonInclusionLeaf only.
	Leaf Leaf
	// Depth is the depth of the node the search ended at: the leaf's for
	// Inclusion and NonInclusionLeaf, the parent's for NonInclusionParent.
	Depth uint8
}

// Included reports whether the lookup found its index.
func (r Result) Included() bool { return r.Type == Inclusion }

// PrefixProof is a batched proof for several lookups in one prefix tree
// (§11.2 PrefixProof): one result per lookup, in the order requested, and
// the fewest node values that, hashed with the leaves the results imply,
// give the root. Elements are in left-to-right tree order; a missing node
// is 32 zero bytes.
type PrefixProof struct {
	Results  []Result
	Elements [][HashSize]byte
}

// ErrProof reports a prefix proof that is inconsistent with its lookups
// (before any root is compared).
var ErrProof = errors.New("kt: invalid prefix proof")

func proofErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProof}, args...)...)
}

type lookup struct {
	index *[IndexSize]byte
	pos   int
}

func sortLookups(indexes [][IndexSize]byte) ([]lookup, error) {
	ls := make([]lookup, len(indexes))
	for i := range indexes {
		ls[i] = lookup{&indexes[i], i}
	}
	slices.SortFunc(ls, func(a, b lookup) int { return bytes.Compare(a.index[:], b.index[:]) })
	for i := 1; i < len(ls); i++ {
		if *ls[i].index == *ls[i-1].index {
			return nil, proofErr("index %x looked up twice", *ls[i].index)
		}
	}
	return ls, nil
}

func splitLookups(ls []lookup, d int) int {
	for i := range ls {
		if bit(ls[i].index, d) == 1 {
			return i
		}
	}
	return len(ls)
}

// Prove returns the batched proof for the given indexes (at most
// MaxLookups, no repeats), each proving inclusion or non-inclusion.
func (t *Tree) Prove(indexes [][IndexSize]byte) (*PrefixProof, error) {
	if len(indexes) == 0 || len(indexes) > MaxLookups {
		return nil, fmt.Errorf("kt: %d lookups in one proof (1..%d)", len(indexes), MaxLookups)
	}
	ls, err := sortLookups(indexes)
	if err != nil {
		return nil, err
	}
	p := &PrefixProof{Results: make([]Result, len(indexes))}
	p.prove(t.root, 0, ls)
	return p, nil
}

// prove walks the parent n at depth d for the sorted lookups below it.
func (p *PrefixProof) prove(n *node, d int, ls []lookup) {
	m := splitLookups(ls, d)
	for side, group := range [2][]lookup{ls[:m], ls[m:]} {
		c := n.child[side]
		switch {
		case len(group) == 0:
			p.Elements = append(p.Elements, *c.value())
		case c == nil:
			for _, l := range group {
				p.Results[l.pos] = Result{Type: NonInclusionParent, Depth: uint8(d)}
			}
		case c.leaf != nil:
			for _, l := range group {
				if c.leaf.Index == *l.index {
					p.Results[l.pos] = Result{Type: Inclusion, Depth: uint8(d + 1)}
				} else {
					p.Results[l.pos] = Result{Type: NonInclusionLeaf, Leaf: *c.leaf, Depth: uint8(d + 1)}
				}
			}
		default:
			p.prove(c, d+1, group)
		}
	}
}

// Evaluate computes the root hash the proof gives for the lookups of
// indexes (in the order the proof was made for). commitments[i] must be
// non-nil exactly when result i is Inclusion: the verifier supplies the
// commitment it expects at that index. The caller compares the root with
// the one it trusts; Evaluate only checks that the proof is well formed
// and consistent (wrapping ErrProof otherwise).
func (p *PrefixProof) Evaluate(indexes [][IndexSize]byte, commitments []*[HashSize]byte) ([HashSize]byte, error) {
	if len(indexes) == 0 || len(indexes) != len(p.Results) || len(commitments) != len(indexes) {
		return [HashSize]byte{}, proofErr("%d lookups, %d results, %d commitments", len(indexes), len(p.Results), len(commitments))
	}
	for i, r := range p.Results {
		if (r.Type == Inclusion) != (commitments[i] != nil) {
			return [HashSize]byte{}, proofErr("result %d is %v but a commitment was %s", i, r.Type, map[bool]string{true: "given", false: "not given"}[commitments[i] != nil])
		}
	}
	ls, err := sortLookups(indexes)
	if err != nil {
		return [HashSize]byte{}, err
	}
	e := evaluator{p: p, commitments: commitments}
	root, err := e.node(0, ls)
	if err != nil {
		return [HashSize]byte{}, err
	}
	if e.next != len(p.Elements) {
		return [HashSize]byte{}, proofErr("%d unused elements", len(p.Elements)-e.next)
	}
	return root, nil
}

type evaluator struct {
	p           *PrefixProof
	commitments []*[HashSize]byte
	next        int
}

func (e *evaluator) element() ([HashSize]byte, error) {
	if e.next >= len(e.p.Elements) {
		return [HashSize]byte{}, proofErr("too few elements")
	}
	e.next++
	return e.p.Elements[e.next-1], nil
}

// node computes the value of the node at depth d on the path of the sorted
// lookups ls (non-empty, sharing their first d bits).
func (e *evaluator) node(d int, ls []lookup) ([HashSize]byte, error) {
	var zero [HashSize]byte
	// Does a search end at a leaf here?
	leafHere := false
	for _, l := range ls {
		r := &e.p.Results[l.pos]
		if int(r.Depth) < d {
			return zero, proofErr("result for %x ends above depth %d", *l.index, d)
		}
		if r.Type != NonInclusionParent && int(r.Depth) == d {
			leafHere = true
		}
	}
	if leafHere {
		if d == 0 {
			return zero, proofErr("a leaf at the root")
		}
		var v [HashSize]byte
		for i, l := range ls {
			r := &e.p.Results[l.pos]
			if r.Type == NonInclusionParent || int(r.Depth) != d {
				return zero, proofErr("the node at depth %d is both a leaf and a parent", d)
			}
			var h [HashSize]byte
			switch r.Type {
			case Inclusion:
				h = leafHash(l.index, e.commitments[l.pos])
			case NonInclusionLeaf:
				if r.Leaf.Index == *l.index {
					return zero, proofErr("non-inclusion leaf for %x is that index", *l.index)
				}
				if commonPrefix(&r.Leaf.Index, l.index) < d {
					return zero, proofErr("non-inclusion leaf at depth %d is off the path of %x", d, *l.index)
				}
				h = leafHash(&r.Leaf.Index, &r.Leaf.Commitment)
			default:
				return zero, proofErr("result type %d", r.Type)
			}
			if i > 0 && h != v {
				return zero, proofErr("two different leaves at one position")
			}
			v = h
		}
		return v, nil
	}
	// A parent: depths of parents are at most MaxDepth-1.
	if d >= MaxDepth {
		return zero, proofErr("a parent at depth %d", d)
	}
	m := splitLookups(ls, d)
	var children [2][HashSize]byte
	for side, group := range [2][]lookup{ls[:m], ls[m:]} {
		if len(group) == 0 {
			el, err := e.element()
			if err != nil {
				return zero, err
			}
			children[side] = el
			continue
		}
		missing := 0
		for _, l := range group {
			if r := &e.p.Results[l.pos]; r.Type == NonInclusionParent && int(r.Depth) == d {
				missing++
			}
		}
		switch missing {
		case 0:
			v, err := e.node(d+1, group)
			if err != nil {
				return zero, err
			}
			children[side] = v
		case len(group):
			// The child is missing: it hashes as zeros.
		default:
			return zero, proofErr("the child at depth %d is both missing and present", d+1)
		}
	}
	return parentHash(&children[0], &children[1]), nil
}

// Marshal encodes the proof: u8 result count, each result as u8 type
// [|| leaf index (32) || leaf commitment (32) for NonInclusionLeaf] || u8
// depth; then u16 element count, a bitmap of ceil(count/8) bytes whose bit
// i (most significant bit first) is 1 exactly when element i is not 32
// zero bytes, and the non-zero elements. A missing child, hashed as zeros,
// thus costs one bit. It carries no version byte: it only appears inside
// versioned encodings.
func (p *PrefixProof) Marshal() []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, 3+len(p.Results)*66+(len(p.Elements)+7)/8+len(p.Elements)*HashSize))
	p.marshalTo(b)
	return b.BytesOrPanic()
}

func (p *PrefixProof) marshalTo(b *cryptobyte.Builder) {
	if len(p.Results) > MaxLookups || len(p.Elements) > MaxProofElements {
		b.SetError(fmt.Errorf("kt: prefix proof over the limits"))
		return
	}
	b.AddUint8(uint8(len(p.Results)))
	for _, r := range p.Results {
		b.AddUint8(uint8(r.Type))
		if r.Type == NonInclusionLeaf {
			b.AddBytes(r.Leaf.Index[:])
			b.AddBytes(r.Leaf.Commitment[:])
		}
		b.AddUint8(r.Depth)
	}
	b.AddUint16(uint16(len(p.Elements)))
	bitmap := make([]byte, (len(p.Elements)+7)/8)
	for i := range p.Elements {
		if p.Elements[i] != zeroHash {
			bitmap[i/8] |= 0x80 >> (i % 8)
		}
	}
	b.AddBytes(bitmap)
	for i := range p.Elements {
		if p.Elements[i] != zeroHash {
			b.AddBytes(p.Elements[i][:])
		}
	}
}

// UnmarshalPrefixProof decodes a PrefixProof. Failures match
// wire.ErrMalformed.
func UnmarshalPrefixProof(b []byte) (*PrefixProof, error) {
	r := newReader("kt prefix proof", b)
	p := r.prefixProof()
	if err := r.done(); err != nil {
		return nil, err
	}
	return p, nil
}

func (r *reader) prefixProof() *PrefixProof {
	n := int(r.u8("result count"))
	if r.err != nil {
		return nil
	}
	if n == 0 {
		r.fail("no results")
		return nil
	}
	p := &PrefixProof{Results: make([]Result, n)}
	for i := range p.Results {
		res := &p.Results[i]
		res.Type = ResultType(r.u8("result type"))
		switch res.Type {
		case Inclusion, NonInclusionParent:
		case NonInclusionLeaf:
			r.bytes(res.Leaf.Index[:], "leaf index")
			r.bytes(res.Leaf.Commitment[:], "leaf commitment")
		default:
			r.fail(fmt.Sprintf("result type %d", res.Type))
		}
		res.Depth = r.u8("depth")
		if r.err != nil {
			return nil
		}
	}
	m := int(r.u16("element count"))
	if m > MaxProofElements {
		r.fail("too many elements")
	}
	bitmap := make([]byte, (m+7)/8)
	r.bytes(bitmap, "element bitmap")
	if r.err != nil {
		return nil
	}
	if m%8 != 0 && bitmap[len(bitmap)-1]<<(m%8) != 0 {
		r.fail("element bitmap padding")
		return nil
	}
	nonZero := 0
	for _, x := range bitmap {
		nonZero += bits.OnesCount8(x)
	}
	given := r.hashes(nonZero, "elements")
	if r.err != nil {
		return nil
	}
	p.Elements = make([][HashSize]byte, m)
	for i, j := 0, 0; i < m; i++ {
		if bitmap[i/8]&(0x80>>(i%8)) == 0 {
			continue
		}
		if given[j] == zeroHash {
			r.fail("zero element not in the bitmap")
			return nil
		}
		p.Elements[i] = given[j]
		j++
	}
	return p
}
