package ratchet

import (
	"math"
	"time"

	"github.com/parleyim/parley/internal/primitives"
)

// Encrypt encrypts plaintext as the next message of the sending chain
// (Double Ratchet spec §3.4, RatchetEncrypt) and returns the encoded
// message.
//
// The AEAD key is MessageKey(seed, salt) with a fresh random salt carried in
// the header, so even a party restored from an old snapshot, which repeats
// chain positions, never reuses a key; that is what makes the fixed nonce of
// SealSingleUse safe (§5.3).
func (s *State) Encrypt(plaintext []byte, now time.Time) ([]byte, error) {
	if !s.hasCKs {
		return nil, ErrNoSendingChain
	}
	if len(plaintext) > MaxPlaintextSize {
		return nil, ErrMessageTooLarge
	}
	if s.ns == math.MaxUint32 {
		return nil, ErrChainExhausted
	}
	ck, seed := primitives.ChainKDF(&s.cks)
	var salt [SaltSize]byte
	primitives.Random(salt[:])

	var flags byte
	if s.pq.pending != nil {
		flags |= flagPQKey
	}
	if s.pq.sendCT != nil {
		flags |= flagPQCiphertext
	}
	// One buffer holds AD || header || length || ciphertext, so that the
	// associated data (session AD || header) is contiguous without a
	// second allocation; the message returned is the part after the AD.
	adLen := len(s.ad)
	hdrLen := headerSize(flags&flagPQKey != 0, flags&flagPQCiphertext != 0)
	ctLen := len(plaintext) + primitives.AEADOverhead
	buf := make([]byte, adLen, adLen+hdrLen+3+ctLen)
	copy(buf, s.ad)
	buf = appendHeader(buf, flags, &s.dhsPub, s.pn, s.ns, &salt, s.pq.pendingEK, &s.pq.sendID, s.pq.sendCT)
	ad := buf[:adLen+hdrLen]
	buf = append(buf, byte(ctLen>>16), byte(ctLen>>8), byte(ctLen))

	key := primitives.MessageKey(&seed, salt[:])
	if s.hooks != nil && s.hooks.aeadKey != nil {
		s.hooks.aeadKey(key, true)
	}
	buf = primitives.SealSingleUse(&key, buf, plaintext, ad)
	clear(key[:])
	clear(seed[:])

	s.cks = ck
	s.ns++
	s.pq.countMessage()
	return buf[adLen:], nil
}

// Decrypt decrypts a message (Double Ratchet spec §3.5, RatchetDecrypt). It
// is transactional: every candidate key is derived into local variables and
// the state changes only after the AEAD has accepted the message, so on any
// error the state is exactly as before.
func (s *State) Decrypt(message []byte, now time.Time) ([]byte, error) {
	var m Message
	if err := m.parse(message); err != nil {
		return nil, err
	}
	header := message[:m.headerLen]
	if m.N == math.MaxUint32 {
		// Encrypt never sends it (ErrChainExhausted); accepting it would
		// wrap Nr.
		return nil, ErrDecrypt
	}
	if s.hasDHr && m.RatchetKey == s.dhrPub {
		if !s.hasCKr {
			// The initiator's DHr is the responder's prekey, which never
			// sends: the responder's first chain uses a fresh key.
			return nil, ErrDecrypt
		}
		if m.N < s.nr {
			return s.decryptSkipped(&m, header)
		}
		return s.decryptCurrent(&m, header, now)
	}
	if s.findSkipped(&m.RatchetKey, m.N) >= 0 {
		return s.decryptSkipped(&m, header)
	}
	for i := range s.previous {
		if s.previous[i] == m.RatchetKey {
			return nil, ErrDuplicate
		}
	}
	return s.decryptNewChain(&m, header, now)
}

// decryptSkipped opens a message whose seed is in MKSKIPPED (spec §3.5,
// TrySkippedMessageKeys). Only a message of the peer's newest chain may
// change the PQ state (rule 2 in pq.go), so its PQ fields are ignored here.
func (s *State) decryptSkipped(m *Message, header []byte) ([]byte, error) {
	i := s.findSkipped(&m.RatchetKey, m.N)
	if i < 0 {
		return nil, ErrDuplicate
	}
	pt, err := s.open(&s.skipped[i].seed, &m.Salt, header, m.Ciphertext)
	if err != nil {
		return nil, err
	}
	clear(s.skipped[i].seed[:])
	s.skipped = append(s.skipped[:i], s.skipped[i+1:]...)
	s.received = true
	s.pq.countMessage()
	return pt, nil
}

// decryptCurrent opens a message at or after Nr in the current receiving
// chain.
func (s *State) decryptCurrent(m *Message, header []byte, now time.Time) ([]byte, error) {
	if m.N-s.nr > MaxSkip {
		return nil, ErrTooFarAhead
	}
	ck := s.ckr
	var skipped []skippedKey
	ck = skipChain(&skipped, &s.dhrPub, ck, s.nr, m.N)
	ck, seed := primitives.ChainKDF(&ck)
	pt, err := s.open(&seed, &m.Salt, header, m.Ciphertext)
	clear(seed[:])
	if err != nil {
		return nil, err
	}
	s.ckr = ck
	s.nr = m.N + 1
	s.addSkipped(skipped)
	s.received = true
	s.pq.countMessage()
	s.pq.record(m)
	return pt, nil
}

// decryptNewChain handles a message under a new ratchet key: the DH ratchet
// step of spec §3.5 (DHRatchet), with the PQ secret of rule 4 mixed into the
// receiving chain. The sending half of the step (new DHs, new sending chain)
// runs only after the message has authenticated, so that a forgery costs no
// key generation or encapsulation; its result does not depend on when it
// runs.
func (s *State) decryptNewChain(m *Message, header []byte, now time.Time) ([]byte, error) {
	var skipped []skippedKey
	if s.hasCKr && m.PN > s.nr {
		// SkipMessageKeys(state, header.pn) for the chain that just ended.
		if m.PN-s.nr > MaxSkip {
			return nil, ErrTooFarAhead
		}
		skipChain(&skipped, &s.dhrPub, s.ckr, s.nr, m.PN)
	}
	if m.N > MaxSkip {
		return nil, ErrTooFarAhead
	}
	dhr, err := primitives.NewX25519PublicKey(m.RatchetKey[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	pqSecret, err := s.pqReceive(m)
	if err != nil {
		return nil, err
	}
	dh, err := s.dhs.ECDH(dhr)
	if err != nil {
		return nil, ErrDecrypt // low-order point: refused like any forgery
	}
	rk, ck := primitives.RootKDF(&s.rk, dh, pqSecret)
	clear(dh)
	clear(pqSecret)
	ck = skipChain(&skipped, &m.RatchetKey, ck, 0, m.N)
	ck, seed := primitives.ChainKDF(&ck)
	pt, err := s.open(&seed, &m.Salt, header, m.Ciphertext)
	clear(seed[:])
	if err != nil {
		return nil, err
	}

	// Commit: the receiving half.
	if s.hasDHr {
		s.previous = append(s.previous, s.dhrPub)
		if n := len(s.previous) - MaxPreviousChains; n > 0 {
			s.previous = append(s.previous[:0], s.previous[n:]...)
		}
	}
	s.addSkipped(skipped)
	s.hasDHr, s.dhr, s.dhrPub = true, dhr, m.RatchetKey
	s.hasCKr, s.ckr, s.nr = true, ck, m.N+1
	s.rk = rk
	s.received = true
	s.pq.countMessage()
	if m.PQCiphertext != nil {
		// Rule 4: the decapsulation key has done its one job; deleting it
		// is what gives the PQ secret forward secrecy.
		s.pq.pending, s.pq.pendingEK = nil, nil
		s.pq.reset(now)
	}
	s.pq.record(m)

	// The sending half: PN, Ns, DHs and RK, CKs = KDF_RK(RK, DH(DHs, DHr), ss).
	s.pn, s.ns = s.ns, 0
	s.setDHs(s.generateX25519())
	ss := s.pqAnswer(now)
	dh, err = s.dhs.ECDH(s.dhr)
	if err != nil {
		// DHr already gave a non-zero DH with the old key, so it is not of
		// low order, and a fresh key cannot give zero.
		panic("parley: internal error: ratchet DH failed after a successful DH with the same peer key")
	}
	s.rk, s.cks = primitives.RootKDF(&s.rk, dh, ss)
	s.hasCKs = true
	clear(dh)
	clear(ss)
	s.pqMaybeGenerate(now)
	return pt, nil
}

// skipChain derives the seeds of messages from..until-1 of a chain into
// *out and returns the chain key for message until.
func skipChain(out *[]skippedKey, chain *[primitives.X25519KeySize]byte, ck [primitives.KeySize]byte, from, until uint32) [primitives.KeySize]byte {
	if until <= from {
		return ck
	}
	if *out == nil {
		*out = make([]skippedKey, 0, until-from)
	}
	for n := from; n < until; n++ {
		var seed [primitives.KeySize]byte
		ck, seed = primitives.ChainKDF(&ck)
		*out = append(*out, skippedKey{chain: *chain, n: n, seed: seed})
	}
	return ck
}

// addSkipped appends newly skipped seeds and evicts the oldest beyond
// MaxSkippedKeys.
func (s *State) addSkipped(k []skippedKey) {
	if len(k) == 0 {
		return
	}
	s.skipped = append(s.skipped, k...)
	if n := len(s.skipped) - MaxSkippedKeys; n > 0 {
		for i := range s.skipped[:n] {
			clear(s.skipped[i].seed[:])
		}
		s.skipped = append(s.skipped[:0], s.skipped[n:]...)
	}
}

func (s *State) findSkipped(chain *[primitives.X25519KeySize]byte, n uint32) int {
	for i := range s.skipped {
		if s.skipped[i].n == n && s.skipped[i].chain == *chain {
			return i
		}
	}
	return -1
}

// open derives the AEAD key from a seed and the message's salt and opens the
// ciphertext with AD = session AD || header.
func (s *State) open(seed *[primitives.KeySize]byte, salt *[SaltSize]byte, header, ciphertext []byte) ([]byte, error) {
	key := primitives.MessageKey(seed, salt[:])
	if s.hooks != nil && s.hooks.aeadKey != nil {
		s.hooks.aeadKey(key, false)
	}
	s.scratch = append(append(s.scratch[:0], s.ad...), header...)
	pt, err := primitives.OpenSingleUse(&key, nil, ciphertext, s.scratch)
	clear(key[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
