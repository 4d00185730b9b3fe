package ratchet

import (
	"math"
	"time"

	"github.com/parleyim/parley/internal/primitives"
)

// The PQ ratchet (docs/protocol.md §5.4). The Double Ratchet heals from a
// state compromise through fresh X25519 keys, which a quantum adversary that
// recorded the traffic can undo. So, from time to time, one party puts a
// fresh ML-KEM-768 encapsulation key (EK) in its headers; the peer's next DH
// ratchet step encapsulates to it and mixes the shared secret into the
// KDF_RK that derives its new sending chain; the EK's owner decapsulates on
// the first message of that chain and mixes the same secret into the KDF_RK
// of its receiving chain. From then on the root key depends on a secret that
// neither a recorded transcript nor an earlier state reveals.
//
// Rules, in the order the code applies them:
//
//  1. A party starting a new sending chain (its DH ratchet step) generates a
//     key pair if it has no pending key and the policy is due: at least
//     PQRekeyMessages messages sent plus received, or PQRekeyInterval, since
//     its last mix. It holds at most one pending key; the EK rides in every
//     message it sends until the answer arrives.
//  2. A party receiving an EK that is not the one it last answered records
//     it, but only from a message of the peer's newest chain: an EK in a
//     late message of an older chain was either answered already or has
//     been superseded, and answering it would fail at the peer.
//  3. At its next DH ratchet step the recording party encapsulates, mixes
//     the secret into its new sending chain (RK, CKs = KDF_RK(RK, DH, ss)),
//     and sends key id || ciphertext in every message of that chain.
//  4. The owner decapsulates on the message that starts that chain (the one
//     that triggers its DH ratchet step) and mixes the secret into its new
//     receiving chain (RK, CKr = KDF_RK(RK, DH, ss)), then deletes the
//     decapsulation key. A ciphertext for any other key id is refused
//     (ErrPQUnknownKey); a ciphertext in a later message of a chain already
//     set up is not looked at again (the chain key already depends on it).
//  5. Both the encapsulating and the decapsulating party count the mix: each
//     resets its counter and clock. (With only the owner resetting, the
//     answering party would usually be due at the same step and start its
//     own exchange right away, doubling the bandwidth for no added healing:
//     one exchange already makes the shared root key depend on a fresh
//     ML-KEM secret in both directions.)
type pqState struct {
	count   uint32 // messages sent plus received since the last mix
	lastMix int64  // time of the last mix, Unix nanoseconds

	pending   *primitives.MLKEM768PrivateKey // own pending decapsulation key
	pendingEK []byte
	pendingID [PQKeyIDSize]byte

	peer   *primitives.MLKEM768PublicKey // recorded, unanswered peer EK
	peerEK []byte
	peerID [PQKeyIDSize]byte

	answered   bool
	answeredID [PQKeyIDSize]byte // the last peer EK this party answered

	sendCT []byte // the ciphertext every message of the sending chain carries
	sendID [PQKeyIDSize]byte
}

// pqKeyID names an encapsulation key (§5.4).
func pqKeyID(ek []byte) (id [PQKeyIDSize]byte) {
	h := primitives.Hash(primitives.LabelPQRatchetKeyID, ek)
	copy(id[:], h[:PQKeyIDSize])
	return id
}

func (p *pqState) reset(now time.Time) {
	p.count = 0
	p.lastMix = now.UnixNano()
}

func (p *pqState) countMessage() {
	if p.count < math.MaxUint32 {
		p.count++
	}
}

func (p *pqState) due(now time.Time) bool {
	return p.count >= PQRekeyMessages || now.UnixNano()-p.lastMix >= int64(PQRekeyInterval)
}

// record applies rule 2 for a message of the peer's newest chain.
func (p *pqState) record(m *Message) {
	if m.pqKey == nil {
		return
	}
	id := pqKeyID(m.PQKey)
	if (p.answered && id == p.answeredID) || (p.peer != nil && id == p.peerID) {
		return
	}
	p.peer = m.pqKey
	p.peerEK = append(p.peerEK[:0], m.PQKey...)
	p.peerID = id
}

// generate applies rule 1.
func (s *State) pqMaybeGenerate(now time.Time) {
	if s.pq.pending != nil || !s.pq.due(now) {
		return
	}
	var k *primitives.MLKEM768PrivateKey
	if s.hooks != nil && s.hooks.genMLKEM != nil {
		k = s.hooks.genMLKEM()
	} else {
		k = primitives.GenerateMLKEM768()
	}
	s.pq.pending = k
	s.pq.pendingEK = k.Public().Bytes()
	s.pq.pendingID = pqKeyID(s.pq.pendingEK)
}

// pqAnswer applies rule 3: it returns the secret to mix into the new sending
// chain, or nil if there is no recorded key.
func (s *State) pqAnswer(now time.Time) []byte {
	if s.pq.peer == nil {
		s.pq.sendCT = nil
		return nil
	}
	var ss, ct []byte
	if s.hooks != nil && s.hooks.encapsulate != nil {
		ss, ct = s.hooks.encapsulate(s.pq.peer)
	} else {
		ss, ct = s.pq.peer.Encapsulate()
	}
	s.pq.sendCT = ct
	s.pq.sendID = s.pq.peerID
	s.pq.answered = true
	s.pq.answeredID = s.pq.peerID
	s.pq.peer, s.pq.peerEK = nil, nil
	s.pq.reset(now)
	return ss
}

// pqReceive checks rule 4 for the message that starts a new receiving chain
// and returns the secret to mix (nil if the header has no ciphertext). It
// does not change the state: the caller deletes the key on commit.
func (s *State) pqReceive(m *Message) ([]byte, error) {
	if m.PQCiphertext == nil {
		return nil, nil
	}
	if s.pq.pending == nil || !primitives.Equal(m.PQKeyID[:], s.pq.pendingID[:]) {
		return nil, ErrPQUnknownKey
	}
	ss, err := s.pq.pending.Decapsulate(m.PQCiphertext)
	if err != nil {
		return nil, ErrDecrypt
	}
	return ss, nil
}
