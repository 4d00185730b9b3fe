package ratchet

import (
	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// The state encoding (docs/protocol.md §5.7). It is local (the session
// layer seals it in the client database) but parsed as strictly as wire
// input, because a corrupted or hostile file must give an error, not a
// state that misbehaves later:
//
//	version (1) = stateVersion
//	flags (1)                   see stateHas* below; other bits refused
//	ad (uint16 length)
//	RK (32) || DHs private (32)
//	[DHr (32)]                  if stateHasDHr
//	[CKs (32)]                  if stateHasCKs
//	[CKr (32)]                  if stateHasCKr (requires stateHasDHr)
//	Ns, PN, Nr (uint32 each)
//	PQ count (uint32) || PQ last mix (uint64, Unix ns, two's complement)
//	[pending ML-KEM-768 seed (64)]        if stateHasPQPending
//	[recorded peer EK (1184)]             if stateHasPQPeer
//	[last answered key id (16)]           if stateHasPQAnswered
//	[key id (16) || ciphertext (1088)]    if stateHasPQSendCT (requires stateHasCKs)
//	previous chains: count (uint8, ≤ MaxPreviousChains) × ratchet key (32)
//	skipped: count (uint16, ≤ MaxSkippedKeys) × (ratchet key (32) || n (uint32) || seed (32)),
//	         oldest first, no (ratchet key, n) twice
//
// Public keys derived from private ones (DHs, the pending EK) and the key
// ids are recomputed rather than stored, so they cannot disagree.
const stateVersion = 1

const (
	stateHasDHr = 1 << iota
	stateHasCKs
	stateHasCKr
	stateReceived
	stateHasPQPending
	stateHasPQPeer
	stateHasPQAnswered
	stateHasPQSendCT
)

const stateType = "ratchet state"

// Marshal encodes the whole state, secrets included; see docs/protocol.md
// §5.7. The caller must store it encrypted.
func (s *State) Marshal() []byte {
	var flags byte
	set := func(bit byte, ok bool) {
		if ok {
			flags |= bit
		}
	}
	set(stateHasDHr, s.hasDHr)
	set(stateHasCKs, s.hasCKs)
	set(stateHasCKr, s.hasCKr)
	set(stateReceived, s.received)
	set(stateHasPQPending, s.pq.pending != nil)
	set(stateHasPQPeer, s.pq.peer != nil)
	set(stateHasPQAnswered, s.pq.answered)
	set(stateHasPQSendCT, s.pq.sendCT != nil)

	var b cryptobyte.Builder
	b.AddUint8(stateVersion)
	b.AddUint8(flags)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.ad) })
	b.AddBytes(s.rk[:])
	b.AddBytes(s.dhs.Bytes())
	if s.hasDHr {
		b.AddBytes(s.dhrPub[:])
	}
	if s.hasCKs {
		b.AddBytes(s.cks[:])
	}
	if s.hasCKr {
		b.AddBytes(s.ckr[:])
	}
	b.AddUint32(s.ns)
	b.AddUint32(s.pn)
	b.AddUint32(s.nr)
	b.AddUint32(s.pq.count)
	b.AddUint64(uint64(s.pq.lastMix))
	if s.pq.pending != nil {
		b.AddBytes(s.pq.pending.Seed())
	}
	if s.pq.peer != nil {
		b.AddBytes(s.pq.peerEK)
	}
	if s.pq.answered {
		b.AddBytes(s.pq.answeredID[:])
	}
	if s.pq.sendCT != nil {
		b.AddBytes(s.pq.sendID[:])
		b.AddBytes(s.pq.sendCT)
	}
	b.AddUint8(uint8(len(s.previous)))
	for i := range s.previous {
		b.AddBytes(s.previous[i][:])
	}
	b.AddUint16(uint16(len(s.skipped)))
	for i := range s.skipped {
		b.AddBytes(s.skipped[i].chain[:])
		b.AddUint32(s.skipped[i].n)
		b.AddBytes(s.skipped[i].seed[:])
	}
	return b.BytesOrPanic()
}

// Unmarshal decodes a state written by Marshal. Errors match
// wire.ErrMalformed.
func Unmarshal(data []byte) (*State, error) {
	malformed := func(reason string) (*State, error) { return nil, wire.Malformed(stateType, reason) }
	in := cryptobyte.String(data)
	var version, flags uint8
	if !in.ReadUint8(&version) || !in.ReadUint8(&flags) {
		return malformed("truncated")
	}
	if version != stateVersion {
		return malformed("unknown state version")
	}
	if flags&stateHasCKr != 0 && flags&stateHasDHr == 0 {
		return malformed("receiving chain without a remote ratchet key")
	}
	if flags&stateHasPQSendCT != 0 && flags&stateHasCKs == 0 {
		return malformed("PQ ciphertext without a sending chain")
	}
	s := &State{}
	var ad cryptobyte.String
	if !in.ReadUint16LengthPrefixed(&ad) {
		return malformed("truncated")
	}
	s.ad = append([]byte{}, ad...)
	var dhs []byte
	if !in.CopyBytes(s.rk[:]) || !in.ReadBytes(&dhs, primitives.X25519KeySize) {
		return malformed("truncated")
	}
	k, err := primitives.NewX25519PrivateKey(dhs)
	if err != nil {
		return malformed("invalid ratchet private key")
	}
	s.setDHs(k)
	if flags&stateHasDHr != 0 {
		if !in.CopyBytes(s.dhrPub[:]) {
			return malformed("truncated")
		}
		if !canonicalX25519(s.dhrPub[:]) {
			return malformed("non-canonical remote ratchet key")
		}
		if s.dhr, err = primitives.NewX25519PublicKey(s.dhrPub[:]); err != nil {
			return malformed("invalid remote ratchet key")
		}
		s.hasDHr = true
	}
	if flags&stateHasCKs != 0 {
		if !in.CopyBytes(s.cks[:]) {
			return malformed("truncated")
		}
		s.hasCKs = true
	}
	if flags&stateHasCKr != 0 {
		if !in.CopyBytes(s.ckr[:]) {
			return malformed("truncated")
		}
		s.hasCKr = true
	}
	var lastMix uint64
	if !in.ReadUint32(&s.ns) || !in.ReadUint32(&s.pn) || !in.ReadUint32(&s.nr) ||
		!in.ReadUint32(&s.pq.count) || !in.ReadUint64(&lastMix) {
		return malformed("truncated")
	}
	s.pq.lastMix = int64(lastMix)
	s.received = flags&stateReceived != 0
	if flags&stateHasPQPending != 0 {
		var seed []byte
		if !in.ReadBytes(&seed, primitives.MLKEMSeedSize) {
			return malformed("truncated")
		}
		dk, err := primitives.NewMLKEM768PrivateKey(seed)
		if err != nil {
			return malformed("invalid ML-KEM-768 seed")
		}
		s.pq.pending = dk
		s.pq.pendingEK = dk.Public().Bytes()
		s.pq.pendingID = pqKeyID(s.pq.pendingEK)
	}
	if flags&stateHasPQPeer != 0 {
		var ek []byte
		if !in.ReadBytes(&ek, pqKeySize) {
			return malformed("truncated")
		}
		if s.pq.peer, err = primitives.NewMLKEM768PublicKey(ek); err != nil {
			return malformed("invalid ML-KEM-768 encapsulation key")
		}
		s.pq.peerEK = append([]byte{}, ek...)
		s.pq.peerID = pqKeyID(ek)
	}
	if flags&stateHasPQAnswered != 0 {
		if !in.CopyBytes(s.pq.answeredID[:]) {
			return malformed("truncated")
		}
		s.pq.answered = true
	}
	if flags&stateHasPQSendCT != 0 {
		s.pq.sendCT = make([]byte, primitives.MLKEM768CiphertextSize)
		if !in.CopyBytes(s.pq.sendID[:]) || !in.CopyBytes(s.pq.sendCT) {
			return malformed("truncated")
		}
	}
	var nPrev uint8
	if !in.ReadUint8(&nPrev) {
		return malformed("truncated")
	}
	if nPrev > MaxPreviousChains {
		return malformed("too many previous chains")
	}
	if nPrev > 0 {
		s.previous = make([][primitives.X25519KeySize]byte, nPrev)
		for i := range s.previous {
			if !in.CopyBytes(s.previous[i][:]) {
				return malformed("truncated")
			}
		}
	}
	var nSkipped uint16
	if !in.ReadUint16(&nSkipped) {
		return malformed("truncated")
	}
	if nSkipped > MaxSkippedKeys {
		return malformed("too many skipped keys")
	}
	if nSkipped > 0 {
		type pos struct {
			chain [primitives.X25519KeySize]byte
			n     uint32
		}
		seen := make(map[pos]struct{}, nSkipped)
		s.skipped = make([]skippedKey, nSkipped)
		for i := range s.skipped {
			k := &s.skipped[i]
			if !in.CopyBytes(k.chain[:]) || !in.ReadUint32(&k.n) || !in.CopyBytes(k.seed[:]) {
				return malformed("truncated")
			}
			p := pos{k.chain, k.n}
			if _, dup := seen[p]; dup {
				return malformed("duplicate skipped key")
			}
			seen[p] = struct{}{}
		}
	}
	if !in.Empty() {
		return malformed("trailing bytes")
	}
	return s, nil
}
