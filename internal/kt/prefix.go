package kt

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/parleyim/parley/internal/primitives"
)

// The prefix tree of draft-ietf-keytrans-protocol §3.3: a binary trie over
// 256-bit indexes, MSB first. The root is a parent at depth 0; a parent at
// depth d sends an index to its left child if bit d of the index is 0, to
// its right child if it is 1; a leaf sits at the shallowest depth where its
// index is the only one below that position, and the parents above it that
// have only one child stay in the tree (their missing child hashes as 32
// zero bytes). Node values (§10.9):
//
//	leaf   = SHA-256(0x01 || index || commitment)
//	parent = SHA-256(0x02 || left || right)   (missing child = 0^32)
//
// A Tree is immutable: Insert returns a new tree that shares every
// untouched node with the old one, so a server can keep serving proofs from
// the tree of the last published epoch while it builds the next.

var (
	// ErrDuplicateIndex reports an insertion of an index that is already
	// in the tree, or twice in one batch: entries never change.
	ErrDuplicateIndex = errors.New("kt: index already in the prefix tree")
	// ErrIndexCollision reports an index that shares its first 255 bits
	// with one already in the tree (MaxDepth).
	ErrIndexCollision = errors.New("kt: index shares 255 bits with another")
)

// Leaf is one prefix-tree entry: the index of a (label, version) and the
// commitment to its value (§11.2 PrefixLeaf).
type Leaf struct {
	Index      [IndexSize]byte
	Commitment [HashSize]byte
}

type node struct {
	hash  [HashSize]byte
	child [2]*node // both nil for a leaf
	leaf  *Leaf    // non-nil exactly for a leaf
}

// Tree is an immutable prefix tree. The zero value is not usable; start
// from NewTree or BuildTree.
type Tree struct {
	root *node // always a parent (depth 0)
	size int
}

func bit(index *[IndexSize]byte, d int) int {
	return int(index[d>>3]>>(7-uint(d&7))) & 1
}

// commonPrefix is the number of leading bits a and b share.
func commonPrefix(a, b *[IndexSize]byte) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			n := 0
			for x&0x80 == 0 {
				x <<= 1
				n++
			}
			return 8*i + n
		}
	}
	return 8 * IndexSize
}

func leafHash(index, commitment *[HashSize]byte) [HashSize]byte {
	var b [1 + 2*HashSize]byte
	b[0] = 0x01
	copy(b[1:], index[:])
	copy(b[1+HashSize:], commitment[:])
	return primitives.SHA256(b[:])
}

func parentHash(left, right *[HashSize]byte) [HashSize]byte {
	var b [1 + 2*HashSize]byte
	b[0] = 0x02
	copy(b[1:], left[:])
	copy(b[1+HashSize:], right[:])
	return primitives.SHA256(b[:])
}

var zeroHash [HashSize]byte

func (n *node) value() *[HashSize]byte {
	if n == nil {
		return &zeroHash
	}
	return &n.hash
}

func (n *node) rehash() { n.hash = parentHash(n.child[0].value(), n.child[1].value()) }

// NewTree returns the empty tree. Its root is a parent with no children:
// SHA-256(0x02 || 0^32 || 0^32).
func NewTree() *Tree {
	r := &node{}
	r.rehash()
	return &Tree{root: r}
}

// Root returns the root hash.
func (t *Tree) Root() [HashSize]byte { return t.root.hash }

// Len returns the number of leaves.
func (t *Tree) Len() int { return t.size }

// Lookup returns the commitment stored at index, if any.
func (t *Tree) Lookup(index [IndexSize]byte) (commitment [HashSize]byte, ok bool) {
	n := t.root
	for d := 0; ; d++ {
		n = n.child[bit(&index, d)]
		if n == nil {
			return commitment, false
		}
		if n.leaf != nil {
			if n.leaf.Index != index {
				return commitment, false
			}
			return n.leaf.Commitment, true
		}
	}
}

func compareLeaves(a, b Leaf) int { return bytes.Compare(a.Index[:], b.Index[:]) }

// sortedLeafNodes copies the leaves into one slab, sorts them by index,
// refuses duplicates and returns a leaf node for each.
func sortedLeafNodes(leaves []Leaf) ([]*node, error) {
	slab := slices.Clone(leaves)
	slices.SortFunc(slab, compareLeaves)
	nodes := make([]node, len(slab))
	out := make([]*node, len(slab))
	for i := range slab {
		if i > 0 && slab[i].Index == slab[i-1].Index {
			return nil, fmt.Errorf("%w: %x appears twice", ErrDuplicateIndex, slab[i].Index)
		}
		nodes[i] = node{hash: leafHash(&slab[i].Index, &slab[i].Commitment), leaf: &slab[i]}
		out[i] = &nodes[i]
	}
	return out, nil
}

// split returns the position of the first node whose index has bit d set:
// nodes is sorted and shares its first d bits, so bit d is 0 then 1.
func split(nodes []*node, d int) int {
	return sort.Search(len(nodes), func(i int) bool { return bit(&nodes[i].leaf.Index, d) == 1 })
}

// build returns the subtree at depth d holding exactly the sorted leaf
// nodes (which share their first d bits): the leaf itself if there is one,
// else a parent, with a chain of one-child parents where all the indexes
// share more bits.
func build(d int, nodes []*node) (*node, error) {
	if len(nodes) == 1 {
		return nodes[0], nil
	}
	if d >= MaxDepth {
		return nil, ErrIndexCollision
	}
	p := &node{}
	m := split(nodes, d)
	var err error
	if m > 0 {
		if p.child[0], err = build(d+1, nodes[:m]); err != nil {
			return nil, err
		}
	}
	if m < len(nodes) {
		if p.child[1], err = build(d+1, nodes[m:]); err != nil {
			return nil, err
		}
	}
	p.rehash()
	return p, nil
}

// insert returns a copy of the parent n at depth d with the sorted leaf
// nodes added below it.
func insert(n *node, d int, nodes []*node) (*node, error) {
	p := &node{child: n.child}
	m := split(nodes, d)
	for side, group := range [2][]*node{nodes[:m], nodes[m:]} {
		if len(group) == 0 {
			continue
		}
		c := p.child[side]
		var err error
		switch {
		case c == nil:
			p.child[side], err = build(d+1, group)
		case c.leaf != nil:
			i, found := slices.BinarySearchFunc(group, c.leaf.Index, func(x *node, idx [IndexSize]byte) int {
				return bytes.Compare(x.leaf.Index[:], idx[:])
			})
			if found {
				return nil, fmt.Errorf("%w: %x", ErrDuplicateIndex, c.leaf.Index)
			}
			merged := make([]*node, 0, len(group)+1)
			merged = append(append(append(merged, group[:i]...), c), group[i:]...)
			p.child[side], err = build(d+1, merged)
		default:
			p.child[side], err = insert(c, d+1, group)
		}
		if err != nil {
			return nil, err
		}
	}
	p.rehash()
	return p, nil
}

// Insert returns a new tree holding t's leaves and the given ones; t is
// unchanged. Every node on the union of the new leaves' paths is hashed
// once. An index already in t, or given twice, is ErrDuplicateIndex: the
// tree is append-only and an entry never changes.
func (t *Tree) Insert(leaves []Leaf) (*Tree, error) {
	if len(leaves) == 0 {
		return t, nil
	}
	nodes, err := sortedLeafNodes(leaves)
	if err != nil {
		return nil, err
	}
	r, err := insert(t.root, 0, nodes)
	if err != nil {
		return nil, err
	}
	return &Tree{root: r, size: t.size + len(leaves)}, nil
}

// BuildTree builds the tree holding exactly the given leaves, in any order,
// bottom-up with one hash per node: the fast way to rebuild a server's or
// auditor's tree from the stored insertion lists.
func BuildTree(leaves []Leaf) (*Tree, error) {
	nodes, err := sortedLeafNodes(leaves)
	if err != nil {
		return nil, err
	}
	r, err := buildRoot(nodes)
	if err != nil {
		return nil, err
	}
	return &Tree{root: r, size: len(leaves)}, nil
}

// buildRoot is build at depth 0, which is always a parent; the two halves
// are built in parallel.
func buildRoot(nodes []*node) (*node, error) {
	r := &node{}
	m := split(nodes, 0)
	var errs [2]error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if m > 0 {
			r.child[0], errs[0] = build(1, nodes[:m])
		}
	}()
	if m < len(nodes) {
		r.child[1], errs[1] = build(1, nodes[m:])
	}
	<-done
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	r.rehash()
	return r, nil
}
