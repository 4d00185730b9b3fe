package prekey

import (
	"fmt"
	"maps"
	"slices"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Limits of a device's prekey set.
const (
	// MaxOneTimePrekeys bounds how many one-time prekeys of each kind
	// (X25519, ML-KEM-1024) a device holds at once.
	MaxOneTimePrekeys = 500
	// MaxSignedPrekeys is how many signed prekeys a device keeps: the
	// current one and its predecessors, so that handshakes started from a
	// bundle fetched just before a rotation still complete.
	MaxSignedPrekeys = 3
	// MaxLastResortUses is how many handshakes against the last-resort
	// prekey a device remembers (by ephemeral key) to refuse replays. When
	// it fills, the device should rotate its last-resort key.
	MaxLastResortUses = 2000
)

type x25519Private struct {
	id  ID
	key *primitives.X25519PrivateKey
	sig []byte
}

func (p *x25519Private) public() X25519Public {
	return X25519Public{ID: p.id, Key: p.key.Public(), Signature: p.sig}
}

type mlkemPrivate struct {
	id  ID
	key *primitives.MLKEM1024PrivateKey
	sig []byte
}

// Set is one device's private prekeys. It is not safe for concurrent use;
// the client serialises access to its store.
type Set struct {
	nextID         ID
	signed         []*x25519Private // oldest first; the last is current
	oneTime        map[ID]*x25519Private
	pq             map[ID]*mlkemPrivate
	lastResort     *mlkemPrivate
	lastResortSeen [][32]byte // initiators' ephemeral keys, oldest first
	// The previous last-resort key and its record, kept after a rotation so
	// that handshakes started from a bundle fetched just before it still
	// complete (and replays of them are still refused).
	prevLastResort     *mlkemPrivate
	prevLastResortSeen [][32]byte
}

// Upload is the public half of newly generated prekeys, for the server.
type Upload struct {
	Signed     *X25519Public // nil unless a signed prekey was generated
	LastResort *MLKEMPublic  // nil unless a last-resort key was generated
	OneTime    []X25519Public
	PQ         []MLKEMPublic
}

// NewSet generates a signed prekey, a last-resort ML-KEM-1024 prekey and n
// one-time prekeys of each kind, all signed by signer.
func NewSet(signer *primitives.SigningKey, n int) (*Set, *Upload, error) {
	s := &Set{nextID: 1, oneTime: map[ID]*x25519Private{}, pq: map[ID]*mlkemPrivate{}}
	u := &Upload{}
	u.Signed = s.RotateSigned(signer)
	u.LastResort = s.RotateLastResort(signer)
	more, err := s.Replenish(signer, n)
	if err != nil {
		return nil, nil, err
	}
	u.OneTime, u.PQ = more.OneTime, more.PQ
	return s, u, nil
}

func (s *Set) newID() ID {
	id := s.nextID
	s.nextID++
	return id
}

// RotateSigned makes a new signed prekey the current one, keeping up to
// MaxSignedPrekeys-1 predecessors.
func (s *Set) RotateSigned(signer *primitives.SigningKey) *X25519Public {
	k := primitives.GenerateX25519()
	p := &x25519Private{id: s.newID(), key: k}
	p.sig = sign(signer, KindSignedX25519, p.id, k.Public().Bytes())
	s.signed = append(s.signed, p)
	if len(s.signed) > MaxSignedPrekeys {
		s.signed = slices.Delete(s.signed, 0, len(s.signed)-MaxSignedPrekeys)
	}
	pub := p.public()
	return &pub
}

// RotateLastResort replaces the last-resort ML-KEM-1024 prekey. The old one
// is kept, with its replay record, until the next rotation, so that
// handshakes in flight against it still complete.
func (s *Set) RotateLastResort(signer *primitives.SigningKey) *MLKEMPublic {
	k := primitives.GenerateMLKEM1024()
	p := &mlkemPrivate{id: s.newID(), key: k}
	p.sig = sign(signer, KindLastResortMLKEM, p.id, k.Public().Bytes())
	s.prevLastResort, s.prevLastResortSeen = s.lastResort, s.lastResortSeen
	s.lastResort = p
	s.lastResortSeen = nil
	return &MLKEMPublic{ID: p.id, Key: k.Public(), LastResort: true, Signature: p.sig}
}

// ErrTooManyPrekeys reports a request that would exceed MaxOneTimePrekeys.
var ErrTooManyPrekeys = fmt.Errorf("prekey: a device holds at most %d one-time prekeys of each kind (MaxOneTimePrekeys)", MaxOneTimePrekeys)

// Replenish generates n more one-time prekeys of each kind.
func (s *Set) Replenish(signer *primitives.SigningKey, n int) (*Upload, error) {
	if n < 0 || len(s.oneTime)+n > MaxOneTimePrekeys || len(s.pq)+n > MaxOneTimePrekeys {
		return nil, ErrTooManyPrekeys
	}
	u := &Upload{}
	for range n {
		k := primitives.GenerateX25519()
		p := &x25519Private{id: s.newID(), key: k}
		p.sig = sign(signer, KindOneTimeX25519, p.id, k.Public().Bytes())
		s.oneTime[p.id] = p
		u.OneTime = append(u.OneTime, p.public())
	}
	for range n {
		k := primitives.GenerateMLKEM1024()
		p := &mlkemPrivate{id: s.newID(), key: k}
		p.sig = sign(signer, KindOneTimeMLKEM, p.id, k.Public().Bytes())
		s.pq[p.id] = p
		u.PQ = append(u.PQ, MLKEMPublic{ID: p.id, Key: k.Public(), Signature: p.sig})
	}
	return u, nil
}

// Counts reports how many one-time prekeys of each kind remain.
func (s *Set) Counts() (oneTime, pq int) { return len(s.oneTime), len(s.pq) }

// LastResortUses reports how many handshakes used the current last-resort
// prekey.
func (s *Set) LastResortUses() int { return len(s.lastResortSeen) }

// Current returns the public halves of the current signed prekey and the
// last-resort prekey.
func (s *Set) Current() (signed X25519Public, lastResort MLKEMPublic) {
	cur := s.signed[len(s.signed)-1]
	lr := s.lastResort
	return cur.public(), MLKEMPublic{ID: lr.id, Key: lr.key.Public(), LastResort: true, Signature: lr.sig}
}

// Claim names the prekeys an initiator used, as carried in its handshake.
type Claim struct {
	Signed  ID
	OneTime *ID // nil if the bundle had no one-time X25519 prekey
	PQ      ID
	// Ephemeral is the initiator's 32-byte ephemeral X25519 public key; a
	// handshake against the last-resort key is remembered by it.
	Ephemeral []byte
}

// Keys are the private prekeys a responder needs for one handshake.
type Keys struct {
	Signed        *primitives.X25519PrivateKey
	SignedPublic  X25519Public
	OneTime       *primitives.X25519PrivateKey // nil if the claim had none
	OneTimePublic *X25519Public
	PQ            *primitives.MLKEM1024PrivateKey
	PQPublic      MLKEMPublic

	claim Claim
}

// Find returns the private keys for a claim without consuming anything, so
// that a handshake whose first message fails to decrypt uses nothing up.
// Call Consume once the handshake succeeds.
func (s *Set) Find(c Claim) (*Keys, error) {
	if len(c.Ephemeral) != primitives.X25519KeySize {
		return nil, wire.Malformed("prekey claim", "ephemeral key is not 32 bytes")
	}
	k := &Keys{claim: c}
	for _, p := range s.signed {
		if p.id == c.Signed {
			k.Signed, k.SignedPublic = p.key, p.public()
		}
	}
	if k.Signed == nil {
		return nil, fmt.Errorf("%w: signed prekey %d", ErrUnknownPrekey, c.Signed)
	}
	if c.OneTime != nil {
		p, ok := s.oneTime[*c.OneTime]
		if !ok {
			return nil, fmt.Errorf("%w: one-time prekey %d", ErrUnknownPrekey, *c.OneTime)
		}
		pub := p.public()
		k.OneTime, k.OneTimePublic = p.key, &pub
	}
	if lr, seen := s.lastResortFor(c.PQ); lr != nil {
		if slices.Contains(*seen, [32]byte(c.Ephemeral)) {
			return nil, ErrReplayedHandshake
		}
		k.PQ = lr.key
		k.PQPublic = MLKEMPublic{ID: lr.id, Key: lr.key.Public(), LastResort: true, Signature: lr.sig}
	} else {
		p, ok := s.pq[c.PQ]
		if !ok {
			return nil, fmt.Errorf("%w: ML-KEM prekey %d", ErrUnknownPrekey, c.PQ)
		}
		k.PQ = p.key
		k.PQPublic = MLKEMPublic{ID: p.id, Key: p.key.Public(), Signature: p.sig}
	}
	return k, nil
}

// lastResortFor returns the current or previous last-resort key with the
// given id and its replay record, or nil.
func (s *Set) lastResortFor(id ID) (*mlkemPrivate, *[][32]byte) {
	switch {
	case s.lastResort != nil && id == s.lastResort.id:
		return s.lastResort, &s.lastResortSeen
	case s.prevLastResort != nil && id == s.prevLastResort.id:
		return s.prevLastResort, &s.prevLastResortSeen
	}
	return nil, nil
}

// Consume deletes the one-time prekeys k used and records a use of the
// last-resort key, after the handshake succeeded.
func (s *Set) Consume(k *Keys) {
	if k.claim.OneTime != nil {
		delete(s.oneTime, *k.claim.OneTime)
	}
	if k.PQPublic.LastResort {
		if _, seen := s.lastResortFor(k.claim.PQ); seen != nil {
			*seen = append(*seen, [32]byte(k.claim.Ephemeral))
			if len(*seen) > MaxLastResortUses {
				*seen = slices.Delete(*seen, 0, len(*seen)-MaxLastResortUses)
			}
		}
	} else {
		delete(s.pq, k.claim.PQ)
	}
}

// Set encoding, for the client's sealed store (docs/protocol.md §7.4):
//
//	version (1) || next id (4)
//	signed count (1)     || { id (4) || X25519 private (32) || signature }
//	one-time count (2)   || { id (4) || X25519 private (32) || signature }   ascending id
//	pq count (2)         || { id (4) || ML-KEM seed (64) || signature }      ascending id
//	last resort          id (4) || ML-KEM seed (64) || signature
//	seen count (2)       || { ephemeral X25519 public key (32) }             oldest first
//	has previous (1: 0 or 1) || [previous last resort, seen count, seen keys, as above]
const setType = "prekey set"

// Marshal encodes the set. The output holds private keys.
func (s *Set) Marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	b.AddUint32(uint32(s.nextID))
	b.AddUint8(uint8(len(s.signed)))
	for _, p := range s.signed {
		b.AddUint32(uint32(p.id))
		b.AddBytes(p.key.Bytes())
		b.AddBytes(p.sig)
	}
	b.AddUint16(uint16(len(s.oneTime)))
	for _, id := range slices.Sorted(maps.Keys(s.oneTime)) {
		p := s.oneTime[id]
		b.AddUint32(uint32(p.id))
		b.AddBytes(p.key.Bytes())
		b.AddBytes(p.sig)
	}
	b.AddUint16(uint16(len(s.pq)))
	for _, id := range slices.Sorted(maps.Keys(s.pq)) {
		p := s.pq[id]
		b.AddUint32(uint32(p.id))
		b.AddBytes(p.key.Seed())
		b.AddBytes(p.sig)
	}
	b.AddUint32(uint32(s.lastResort.id))
	b.AddBytes(s.lastResort.key.Seed())
	b.AddBytes(s.lastResort.sig)
	b.AddUint16(uint16(len(s.lastResortSeen)))
	for _, h := range s.lastResortSeen {
		b.AddBytes(h[:])
	}
	if s.prevLastResort == nil {
		b.AddUint8(0)
	} else {
		b.AddUint8(1)
		b.AddUint32(uint32(s.prevLastResort.id))
		b.AddBytes(s.prevLastResort.key.Seed())
		b.AddBytes(s.prevLastResort.sig)
		b.AddUint16(uint16(len(s.prevLastResortSeen)))
		for _, h := range s.prevLastResortSeen {
			b.AddBytes(h[:])
		}
	}
	return b.BytesOrPanic()
}

// UnmarshalSet decodes a set written by Marshal.
func UnmarshalSet(data []byte) (*Set, error) {
	bad := func(reason string) (*Set, error) { return nil, wire.Malformed(setType, reason) }
	in := cryptobyte.String(data)
	var v uint8
	var next uint32
	if !in.ReadUint8(&v) {
		return bad("truncated")
	}
	if err := wire.CheckVersion(setType, v); err != nil {
		return nil, err
	}
	s := &Set{oneTime: map[ID]*x25519Private{}, pq: map[ID]*mlkemPrivate{}}
	var nSigned uint8
	if !in.ReadUint32(&next) || !in.ReadUint8(&nSigned) {
		return bad("truncated")
	}
	s.nextID = ID(next)
	if nSigned == 0 || nSigned > MaxSignedPrekeys {
		return bad("signed prekey count out of range")
	}
	// IDs are unique across all kinds within a device (they come from one
	// counter): a set in which one ID names two prekeys is corrupt, and Find
	// would silently resolve the ID to one of them.
	ids := make(map[ID]bool)
	checkID := func(id ID) error {
		if id >= s.nextID {
			return wire.Malformed(setType, "prekey id not below next id")
		}
		if ids[id] {
			return wire.Malformed(setType, "prekey id used twice")
		}
		ids[id] = true
		return nil
	}
	readX := func() (*x25519Private, error) {
		var id uint32
		var key, sig []byte
		if !in.ReadUint32(&id) || !in.ReadBytes(&key, primitives.X25519KeySize) || !in.ReadBytes(&sig, primitives.SignatureSize) {
			return nil, wire.Malformed(setType, "truncated")
		}
		k, err := primitives.NewX25519PrivateKey(key)
		if err != nil {
			return nil, wire.Malformed(setType, "invalid X25519 key")
		}
		if err := checkID(ID(id)); err != nil {
			return nil, err
		}
		return &x25519Private{id: ID(id), key: k, sig: append([]byte(nil), sig...)}, nil
	}
	readM := func() (*mlkemPrivate, error) {
		var id uint32
		var seed, sig []byte
		if !in.ReadUint32(&id) || !in.ReadBytes(&seed, primitives.MLKEMSeedSize) || !in.ReadBytes(&sig, primitives.SignatureSize) {
			return nil, wire.Malformed(setType, "truncated")
		}
		k, err := primitives.NewMLKEM1024PrivateKey(seed)
		if err != nil {
			return nil, wire.Malformed(setType, "invalid ML-KEM seed")
		}
		if err := checkID(ID(id)); err != nil {
			return nil, err
		}
		return &mlkemPrivate{id: ID(id), key: k, sig: append([]byte(nil), sig...)}, nil
	}
	var last ID
	for i := range int(nSigned) {
		p, err := readX()
		if err != nil {
			return nil, err
		}
		if i > 0 && p.id <= last {
			return bad("signed prekeys not in ascending id order")
		}
		last = p.id
		s.signed = append(s.signed, p)
	}
	var n uint16
	if !in.ReadUint16(&n) {
		return bad("truncated")
	}
	if int(n) > MaxOneTimePrekeys {
		return bad("too many one-time prekeys")
	}
	for i := range int(n) {
		p, err := readX()
		if err != nil {
			return nil, err
		}
		if i > 0 && p.id <= last {
			return bad("one-time prekeys not in ascending id order")
		}
		last = p.id
		s.oneTime[p.id] = p
	}
	if !in.ReadUint16(&n) {
		return bad("truncated")
	}
	if int(n) > MaxOneTimePrekeys {
		return bad("too many ML-KEM prekeys")
	}
	for i := range int(n) {
		p, err := readM()
		if err != nil {
			return nil, err
		}
		if i > 0 && p.id <= last {
			return bad("ML-KEM prekeys not in ascending id order")
		}
		last = p.id
		s.pq[p.id] = p
	}
	lr, err := readM()
	if err != nil {
		return nil, err
	}
	s.lastResort = lr
	readSeen := func() ([][32]byte, error) {
		var n uint16
		if !in.ReadUint16(&n) {
			return nil, wire.Malformed(setType, "truncated")
		}
		if int(n) > MaxLastResortUses {
			return nil, wire.Malformed(setType, "too many recorded last-resort uses")
		}
		var seen [][32]byte
		for range int(n) {
			var h [32]byte
			if !in.CopyBytes(h[:]) {
				return nil, wire.Malformed(setType, "truncated")
			}
			seen = append(seen, h)
		}
		return seen, nil
	}
	if s.lastResortSeen, err = readSeen(); err != nil {
		return nil, err
	}
	var hasPrev uint8
	if !in.ReadUint8(&hasPrev) || hasPrev > 1 {
		return bad("bad previous last-resort flag")
	}
	if hasPrev == 1 {
		if s.prevLastResort, err = readM(); err != nil {
			return nil, err
		}
		if s.prevLastResort.id >= s.lastResort.id {
			return bad("previous last-resort key is not older than the current one")
		}
		if s.prevLastResortSeen, err = readSeen(); err != nil {
			return nil, err
		}
	}
	if !in.Empty() {
		return bad("trailing bytes")
	}
	return s, nil
}
