package ratchet

import (
	"time"

	"github.com/parleyim/parley/internal/primitives"
)

// State is one party's Double Ratchet state (Double Ratchet spec §3.2, plus
// the PQ ratchet of docs/protocol.md §5.4). It is not safe for concurrent
// use: the session layer holds one lock per session around Encrypt, Decrypt
// and Marshal.
//
// Go cannot promise that secrets are wiped from memory (the garbage collector
// may have copied them); the code clears what it can when it is done with it
// and relies on replacing keys, not on zeroing, for forward secrecy.
type State struct {
	ad []byte // session associated data, prefixed to every header as AEAD AD

	rk [primitives.KeySize]byte // RK

	dhs    *primitives.X25519PrivateKey // DHs, always present
	dhsPub [primitives.X25519KeySize]byte

	hasDHr bool
	dhr    *primitives.X25519PublicKey // DHr, parsed once
	dhrPub [primitives.X25519KeySize]byte

	hasCKs bool
	cks    [primitives.KeySize]byte
	ns, pn uint32

	hasCKr bool
	ckr    [primitives.KeySize]byte
	nr     uint32

	// skipped holds MKSKIPPED (spec §3.2) as message-key seeds, oldest
	// first; see MaxSkippedKeys.
	skipped []skippedKey
	// previous holds earlier values of DHr, oldest first; see
	// MaxPreviousChains.
	previous [][primitives.X25519KeySize]byte

	received bool

	pq pqState

	hooks   *testHooks
	scratch []byte // associated-data buffer, reused between messages
}

// skippedKey is one entry of MKSKIPPED. It keeps the message-key seed, never
// the chain key: a chain key would also derive every later message of its
// chain.
type skippedKey struct {
	chain [primitives.X25519KeySize]byte
	n     uint32
	seed  [primitives.KeySize]byte
}

// Gap is a message that was skipped and has not arrived: the receiver holds
// its key but not the message. Chain is the first ChainIDSize bytes of the
// sender's ratchet public key for that chain.
type Gap struct {
	Chain [ChainIDSize]byte
	N     uint32
}

// testHooks lets tests observe or replace key generation and observe every
// derived AEAD key. It is nil outside tests; it is never serialized.
type testHooks struct {
	genX25519   func() *primitives.X25519PrivateKey
	genMLKEM    func() *primitives.MLKEM768PrivateKey
	encapsulate func(ek *primitives.MLKEM768PublicKey) (ss, ct []byte)
	aeadKey     func(key [primitives.AEADKeySize]byte, seal bool)
}

// NewInitiator starts the ratchet for the party that sent the handshake
// (Double Ratchet spec §3.3, RatchetInitAlice): the root key is the
// handshake's shared secret, remoteRatchetKey is the responder's signed
// prekey, and the first DH ratchet step happens here. ad is the session
// associated data (at most 65535 bytes).
func NewInitiator(sharedSecret *[32]byte, ad []byte, remoteRatchetKey *primitives.X25519PublicKey, now time.Time) (*State, error) {
	return newInitiator(sharedSecret, ad, remoteRatchetKey, now, nil)
}

func newInitiator(sharedSecret *[32]byte, ad []byte, remoteRatchetKey *primitives.X25519PublicKey, now time.Time, h *testHooks) (*State, error) {
	if len(ad) > maxADSize {
		return nil, errADTooLong
	}
	s := &State{ad: append([]byte(nil), ad...), rk: *sharedSecret, hooks: h}
	s.pq.reset(now) // the handshake's ML-KEM-1024 secret counts as a mix
	s.setDHs(s.generateX25519())
	s.hasDHr = true
	s.dhr = remoteRatchetKey
	copy(s.dhrPub[:], remoteRatchetKey.Bytes())
	dh, err := s.dhs.ECDH(s.dhr)
	if err != nil {
		return nil, err
	}
	s.rk, s.cks = primitives.RootKDF(&s.rk, dh, nil)
	clear(dh)
	s.hasCKs = true
	return s, nil
}

// NewResponder starts the ratchet for the party that received the handshake
// (Double Ratchet spec §3.3, RatchetInitBob): ownRatchetKey is the private
// key of the signed prekey the initiator used. The responder can send only
// after decrypting the initiator's first message. It panics if ad is longer
// than 65535 bytes (the handshake passes 64).
func NewResponder(sharedSecret *[32]byte, ad []byte, ownRatchetKey *primitives.X25519PrivateKey, now time.Time) *State {
	return newResponder(sharedSecret, ad, ownRatchetKey, now, nil)
}

func newResponder(sharedSecret *[32]byte, ad []byte, ownRatchetKey *primitives.X25519PrivateKey, now time.Time, h *testHooks) *State {
	if len(ad) > maxADSize {
		panic(errADTooLong.Error())
	}
	s := &State{ad: append([]byte(nil), ad...), rk: *sharedSecret, hooks: h}
	s.pq.reset(now)
	s.setDHs(ownRatchetKey)
	return s
}

func (s *State) setDHs(k *primitives.X25519PrivateKey) {
	s.dhs = k
	copy(s.dhsPub[:], k.Public().Bytes())
}

// Received reports whether at least one message has been decrypted.
func (s *State) Received() bool { return s.received }

// Missing returns the messages that were skipped and have not arrived, in
// the order they were skipped. Gaps whose keys were evicted (MaxSkippedKeys)
// are no longer reported.
func (s *State) Missing() []Gap {
	if len(s.skipped) == 0 {
		return nil
	}
	gaps := make([]Gap, len(s.skipped))
	for i := range s.skipped {
		copy(gaps[i].Chain[:], s.skipped[i].chain[:ChainIDSize])
		gaps[i].N = s.skipped[i].n
	}
	return gaps
}

func (s *State) generateX25519() *primitives.X25519PrivateKey {
	if s.hooks != nil && s.hooks.genX25519 != nil {
		return s.hooks.genX25519()
	}
	return primitives.GenerateX25519()
}
