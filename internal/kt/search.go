package kt

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/primitives/vrf"
	"github.com/parleyim/parley/internal/wire"
)

// MaxMonitorVersions bounds the versions one monitor proof opens; an owner
// that is further behind checks the older versions with fixed-version
// searches (docs/client.md §10.3).
const MaxMonitorVersions = 64

// LadderStep is one lookup of a ladder (§12.1 BinaryLadderStep): the VRF
// proof for the looked-up (label, version) and, when that version is in
// the tree, its commitment.
type LadderStep struct {
	Proof [VRFProofSize]byte
	// Commitment is present exactly when the version is in the tree.
	Commitment *[HashSize]byte
}

// SearchProof answers a search for one label in the prefix tree of the
// newest epoch: a greatest-version search (Fixed false, Target =
// Greatest), a fixed-version search of Target (Fixed true), or, when Found
// is false, the proof that the label has no version at all.
//
// Lookups, in order: BinaryLadder(Greatest) for a greatest-version
// search; for a fixed-version search FixedLadder(Target, n), where the
// greatest version n is not part of the proof: the verifier finds where
// the ladder stopped from the results; AbsentLookups (0 and 1) for an
// absent label. Ladder and Prefix.Results follow that order.
type SearchProof struct {
	Found bool
	// Fixed marks a fixed-version search of Target. Its lookups do not
	// establish the greatest version: Greatest is 0.
	Fixed    bool
	Greatest uint32
	Target   uint32
	Opening  [OpeningSize]byte
	Value    []byte
	Ladder   []LadderStep
	Prefix   PrefixProof
}

// Lookups returns the versions the proof looks up, in order, or nil if it
// claims versions over MaxVersion (or a greatest-version search with a
// Target other than Greatest).
func (p *SearchProof) Lookups() []uint32 {
	switch {
	case !p.Found:
		return AbsentLookups()
	case p.Fixed:
		if p.Target > MaxVersion {
			return nil
		}
		return fixedWalk(p.Target, func(i int, _ uint32) bool {
			return i < len(p.Prefix.Results) && p.Prefix.Results[i].Included()
		})
	case p.Target != p.Greatest:
		return nil
	}
	return BinaryLadder(p.Greatest)
}

// MonitorProof lets a label's owner check its own label (§8.3, simplified
// to the newest epoch): the ladder that fixes the greatest version, and
// the opening and value of every version from From to Greatest, so the
// owner can compare each with what it published.
//
// Lookups, in order: BinaryLadder(Greatest), then every version from From
// to Greatest that the ladder does not look up, ascending.
type MonitorProof struct {
	Greatest uint32
	From     uint32
	// Opened[i] is version From+i.
	Opened []Opened
	Ladder []LadderStep
	Prefix PrefixProof
}

// Opened is one version's commitment opening and value.
type Opened struct {
	Opening [OpeningSize]byte
	Value   []byte
}

// Lookups returns the versions the proof looks up, in order.
func (p *MonitorProof) Lookups() []uint32 { return monitorLookups(p.Greatest, p.From) }

// Prover builds proofs from one prefix tree with the log's VRF key. It is
// the server side of search and monitoring; the opening and value of each
// version come from the server's store, the commitments from the tree.
type Prover struct {
	VRF  *vrf.PrivateKey
	Tree *Tree
	// Cache, if set, holds VRF proofs computed before (made for VRF).
	Cache *VRFCache
}

// ErrInconsistent reports that the server's own data does not match its
// tree (a stored value or opening whose commitment is not the tree's, or a
// version the tree lacks): a bug or a corrupt store, never a client error.
var ErrInconsistent = errors.New("kt: stored data does not match the prefix tree")

// Index returns the index of version of label and the VRF proof for it.
func Index(k *vrf.PrivateKey, label string, version uint32) ([IndexSize]byte, [VRFProofSize]byte) {
	beta, pi := k.Prove(VRFInput(label, version))
	return IndexFromVRF(beta), pi
}

// NewUpdate returns the leaf for value as version of label, with a fresh
// opening. The server stores the opening and value with the version and
// inserts the leaf in the next epoch.
func NewUpdate(k *vrf.PrivateKey, label string, version uint32, value []byte) (Leaf, [OpeningSize]byte, error) {
	if err := CheckLabel(label); err != nil {
		return Leaf{}, [OpeningSize]byte{}, err
	}
	if version > MaxVersion {
		return Leaf{}, [OpeningSize]byte{}, fmt.Errorf("kt: version %d over MaxVersion", version)
	}
	if len(value) > MaxValueSize {
		return Leaf{}, [OpeningSize]byte{}, fmt.Errorf("%w: %d bytes", ErrValueTooLarge, len(value))
	}
	opening := NewOpening()
	idx, _ := Index(k, label, version)
	return Leaf{Index: idx, Commitment: Commit(opening, label, version, value)}, opening, nil
}

// lookup proves the given versions of label: the ladder steps (VRF proof,
// commitment from the tree) and the prefix proof. present says which
// versions the caller expects in the tree; a mismatch is ErrInconsistent.
func (p Prover) lookup(label string, versions []uint32, present func(uint32) bool) ([]LadderStep, *PrefixProof, error) {
	steps := make([]LadderStep, len(versions))
	idx := make([][IndexSize]byte, len(versions))
	for i, v := range versions {
		idx[i], steps[i].Proof = p.Cache.Index(p.VRF, label, v)
		c, ok := p.Tree.Lookup(idx[i])
		if ok != present(v) {
			return nil, nil, fmt.Errorf("%w: %q version %d in tree: %v", ErrInconsistent, label, v, ok)
		}
		if ok {
			steps[i].Commitment = &c
		}
	}
	pp, err := p.Tree.Prove(idx)
	if err != nil {
		return nil, nil, err
	}
	return steps, pp, nil
}

func checkOpened(label string, version uint32, o Opened, step LadderStep) error {
	if step.Commitment == nil || Commit(o.Opening, label, version, o.Value) != *step.Commitment {
		return fmt.Errorf("%w: %q version %d: the opening and value do not give the tree's commitment", ErrInconsistent, label, version)
	}
	return nil
}

// Search proves that greatest is the greatest version of label and that
// value (with opening) is its value.
func (p Prover) Search(label string, greatest uint32, opening [OpeningSize]byte, value []byte) (*SearchProof, error) {
	if err := CheckLabel(label); err != nil {
		return nil, err
	}
	if greatest > MaxVersion {
		return nil, fmt.Errorf("kt: greatest version %d over MaxVersion", greatest)
	}
	vs := BinaryLadder(greatest)
	steps, pp, err := p.lookup(label, vs, func(v uint32) bool { return v <= greatest })
	if err != nil {
		return nil, err
	}
	o := Opened{Opening: opening, Value: value}
	if err := checkOpened(label, greatest, o, steps[indexOf(vs, greatest)]); err != nil {
		return nil, err
	}
	return &SearchProof{Found: true, Greatest: greatest, Target: greatest, Opening: opening, Value: value, Ladder: steps, Prefix: *pp}, nil
}

// Fixed proves that version of label has value (with opening) and that it
// is at most the greatest version, greatest (FixedLadder). For the
// greatest version itself it is Search.
func (p Prover) Fixed(label string, greatest, version uint32, opening [OpeningSize]byte, value []byte) (*SearchProof, error) {
	if version == greatest {
		return p.Search(label, greatest, opening, value)
	}
	if err := CheckLabel(label); err != nil {
		return nil, err
	}
	vs := FixedLadder(version, greatest)
	if vs == nil {
		return nil, fmt.Errorf("kt: version %d of greatest %d", version, greatest)
	}
	steps, pp, err := p.lookup(label, vs, func(v uint32) bool { return v <= greatest })
	if err != nil {
		return nil, err
	}
	o := Opened{Opening: opening, Value: value}
	if err := checkOpened(label, version, o, steps[indexOf(vs, version)]); err != nil {
		return nil, err
	}
	return &SearchProof{Found: true, Fixed: true, Target: version, Opening: opening, Value: value, Ladder: steps, Prefix: *pp}, nil
}

// Absent proves that label has no version: versions 0 and 1
// (AbsentLookups) are not in the tree.
func (p Prover) Absent(label string) (*SearchProof, error) {
	if err := CheckLabel(label); err != nil {
		return nil, err
	}
	steps, pp, err := p.lookup(label, AbsentLookups(), func(uint32) bool { return false })
	if err != nil {
		return nil, err
	}
	return &SearchProof{Ladder: steps, Prefix: *pp}, nil
}

// Monitor proves the greatest version of label and opens every version
// from from to greatest; opened[i] is version from+i.
func (p Prover) Monitor(label string, greatest, from uint32, opened []Opened) (*MonitorProof, error) {
	if err := CheckLabel(label); err != nil {
		return nil, err
	}
	if greatest > MaxVersion || from > greatest+1 || int(greatest-from+1) != len(opened) || len(opened) > MaxMonitorVersions {
		return nil, fmt.Errorf("kt: monitor of versions %d..%d with %d values (at most %d)", from, greatest, len(opened), MaxMonitorVersions)
	}
	vs := monitorLookups(greatest, from)
	steps, pp, err := p.lookup(label, vs, func(v uint32) bool { return v <= greatest })
	if err != nil {
		return nil, err
	}
	for i, o := range opened {
		v := from + uint32(i)
		if err := checkOpened(label, v, o, steps[indexOf(vs, v)]); err != nil {
			return nil, err
		}
	}
	return &MonitorProof{Greatest: greatest, From: from, Opened: opened, Ladder: steps, Prefix: *pp}, nil
}

func indexOf(vs []uint32, v uint32) int {
	for i, x := range vs {
		if x == v {
			return i
		}
	}
	panic("parley: internal error: version not looked up")
}

// Encodings. Each top-level proof starts with wire.Version; decoding is
// strict (§7.1): exact lengths, no trailing bytes, flags and counts
// checked, every failure wire.ErrMalformed.

// addLookups encodes the lookups of a proof: u8 count, count VRF proofs
// (80 each), the prefix proof, then the commitments (32 each) of the
// lookups the prefix proof says are included, in lookup order. Whether a
// step carries a commitment is thus not encoded twice.
func addLookups(b *cryptobyte.Builder, steps []LadderStep, prefix *PrefixProof) {
	if len(steps) > MaxLookups || len(steps) != len(prefix.Results) {
		b.SetError(fmt.Errorf("kt: %d ladder steps for %d prefix results", len(steps), len(prefix.Results)))
		return
	}
	b.AddUint8(uint8(len(steps)))
	for _, s := range steps {
		b.AddBytes(s.Proof[:])
	}
	prefix.marshalTo(b)
	for i, s := range steps {
		if (s.Commitment != nil) != prefix.Results[i].Included() {
			b.SetError(fmt.Errorf("kt: ladder step %d: a commitment exactly for an inclusion", i))
			return
		}
		if s.Commitment != nil {
			b.AddBytes(s.Commitment[:])
		}
	}
}

func (r *reader) lookups() ([]LadderStep, *PrefixProof) {
	n := int(r.u8("step count"))
	if r.err != nil {
		return nil, nil
	}
	if len(r.s) < n*VRFProofSize {
		r.fail("truncated steps")
		return nil, nil
	}
	steps := make([]LadderStep, n)
	for i := range steps {
		r.bytes(steps[i].Proof[:], "VRF proof")
	}
	prefix := r.prefixProof()
	if r.err != nil {
		return nil, nil
	}
	if len(prefix.Results) != n {
		r.fail(fmt.Sprintf("%d ladder steps for %d prefix results", n, len(prefix.Results)))
		return nil, nil
	}
	for i := range steps {
		if prefix.Results[i].Included() {
			c := new([HashSize]byte)
			r.bytes(c[:], "commitment")
			steps[i].Commitment = c
		}
	}
	if r.err != nil {
		return nil, nil
	}
	return steps, prefix
}

func addValue(b *cryptobyte.Builder, v []byte) {
	if len(v) > MaxValueSize {
		b.SetError(ErrValueTooLarge)
		return
	}
	b.AddUint32(uint32(len(v)))
	b.AddBytes(v)
}

// Kinds of a SearchProof encoding.
const (
	searchAbsent   = 0 // no version: lookups 0 and 1
	searchGreatest = 1 // u32 greatest (= target)
	searchFixed    = 2 // u32 target
)

// Marshal encodes the proof: version || u8 kind (0 absent, 1 greatest
// version, 2 fixed version) || [u32 greatest (kind 1) or u32 target (kind
// 2) || opening (16) || u32 length || value, unless absent] || lookups (u8
// count, the VRF proofs (80 each), the prefix proof, the commitments of
// the included lookups).
func (p *SearchProof) Marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(wire.Version)
	switch {
	case !p.Found:
		b.AddUint8(searchAbsent)
	case p.Fixed && p.Greatest == 0 && p.Target <= MaxVersion:
		b.AddUint8(searchFixed)
		b.AddUint32(p.Target)
	case !p.Fixed && p.Target == p.Greatest && p.Greatest <= MaxVersion:
		b.AddUint8(searchGreatest)
		b.AddUint32(p.Greatest)
	default:
		return nil, fmt.Errorf("kt: search proof of version %d of %d (fixed %v)", p.Target, p.Greatest, p.Fixed)
	}
	if p.Found {
		b.AddBytes(p.Opening[:])
		addValue(b, p.Value)
	}
	addLookups(b, p.Ladder, &p.Prefix)
	return b.Bytes()
}

// UnmarshalSearchProof decodes a SearchProof.
func UnmarshalSearchProof(data []byte) (*SearchProof, error) {
	r := newReader("kt search proof", data)
	r.version()
	p := &SearchProof{}
	switch r.u8("kind") {
	case searchAbsent:
	case searchGreatest:
		p.Found = true
		p.Greatest = r.u32("greatest")
		p.Target = p.Greatest
	case searchFixed:
		p.Found, p.Fixed = true, true
		p.Target = r.u32("target")
	default:
		r.fail("kind")
	}
	if p.Target > MaxVersion {
		r.fail("version over MaxVersion")
	}
	if p.Found {
		r.bytes(p.Opening[:], "opening")
		p.Value = r.vec32(MaxValueSize, "value")
	}
	if steps, pp := r.lookups(); pp != nil {
		p.Ladder, p.Prefix = steps, *pp
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return p, nil
}

// Marshal encodes the proof: version || u32 greatest || u32 from || u8
// count of opened versions || each opening (16) || u32 length || value ||
// lookups (as in SearchProof).
func (p *MonitorProof) Marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(wire.Version)
	b.AddUint32(p.Greatest)
	b.AddUint32(p.From)
	if len(p.Opened) > MaxMonitorVersions {
		return nil, errors.New("kt: too many opened versions")
	}
	b.AddUint8(uint8(len(p.Opened)))
	for _, o := range p.Opened {
		b.AddBytes(o.Opening[:])
		addValue(b, o.Value)
	}
	addLookups(b, p.Ladder, &p.Prefix)
	return b.Bytes()
}

// UnmarshalMonitorProof decodes a MonitorProof.
func UnmarshalMonitorProof(data []byte) (*MonitorProof, error) {
	r := newReader("kt monitor proof", data)
	r.version()
	p := &MonitorProof{Greatest: r.u32("greatest"), From: r.u32("from")}
	n := int(r.u8("opened count"))
	if n > MaxMonitorVersions {
		r.fail("too many opened versions")
	}
	for i := 0; i < n && r.err == nil; i++ {
		var o Opened
		r.bytes(o.Opening[:], "opening")
		o.Value = r.vec32(MaxValueSize, "value")
		p.Opened = append(p.Opened, o)
	}
	if steps, pp := r.lookups(); pp != nil {
		p.Ladder, p.Prefix = steps, *pp
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return p, nil
}
