package primitives

import (
	"crypto/hpke"
	"crypto/subtle"
)

// HPKE (RFC 9180) in base mode with one fixed suite: KEM MLKEM768-X25519
// (X-Wing, draft-ietf-hpke-pq), KDF HKDF-SHA256, AEAD AES-256-GCM. It
// protects the provisioning transfer (docs/protocol.md §9), a one-way
// stream from an existing device to a new one that has published only an
// ephemeral public key. The KEM is the hybrid of ML-KEM-768 and X25519, so a
// recorded transfer (the account key and the whole history) stays safe if
// either holds.
//
// HPKE's encapsulation draws its randomness inside crypto/hpke, which only
// testing/cryptotest.SetGlobalRandom can replace: UnsafeDeterministicEntropy
// makes key generation here deterministic, but not NewHPKESender.
const (
	// HPKEPublicKeySize is the size of an encoded public key: the ML-KEM-768
	// encapsulation key (1184) then the X25519 public key (32).
	HPKEPublicKeySize = MLKEM768PublicKeySize + X25519KeySize
	// HPKESeedSize is the size of a private key: the X-Wing seed, from
	// which both component keys expand (draft-ietf-hpke-pq).
	HPKESeedSize = 32
	// HPKEEncapsulatedKeySize is the size of enc: the ML-KEM-768 ciphertext
	// (1088) then the ephemeral X25519 public key (32).
	HPKEEncapsulatedKeySize = MLKEM768CiphertextSize + X25519KeySize
	// HPKEOverhead is what Seal adds to a plaintext: the GCM tag.
	HPKEOverhead = AEADOverhead
)

func hpkeKEM() hpke.KEM   { return hpke.MLKEM768X25519() }
func hpkeKDF() hpke.KDF   { return hpke.HKDFSHA256() }
func hpkeAEAD() hpke.AEAD { return hpke.AES256GCM() }

// HPKEPrivateKey is an HPKE MLKEM768-X25519 private key.
type HPKEPrivateKey struct {
	k    hpke.PrivateKey
	seed [HPKESeedSize]byte
}

// HPKEPublicKey is an HPKE MLKEM768-X25519 public key.
type HPKEPublicKey struct {
	k   hpke.PublicKey
	raw []byte
}

// GenerateHPKE returns a fresh HPKE key pair.
func GenerateHPKE() *HPKEPrivateKey {
	var seed [HPKESeedSize]byte
	Random(seed[:])
	k, err := NewHPKEPrivateKey(seed[:])
	if err != nil {
		panic("parley: internal error: HPKE key generation: " + err.Error())
	}
	return k
}

// NewHPKEPrivateKey expands a 32-byte seed, as returned by Seed.
func NewHPKEPrivateKey(seed []byte) (*HPKEPrivateKey, error) {
	if len(seed) != HPKESeedSize {
		return nil, ErrInvalidKey
	}
	k, err := hpkeKEM().NewPrivateKey(seed)
	if err != nil {
		return nil, ErrInvalidKey
	}
	out := &HPKEPrivateKey{k: k}
	copy(out.seed[:], seed)
	return out, nil
}

// Seed returns the 32-byte seed of the key. It is secret.
func (k *HPKEPrivateKey) Seed() []byte { return append([]byte(nil), k.seed[:]...) }

// Public returns the public key.
func (k *HPKEPrivateKey) Public() *HPKEPublicKey {
	p := k.k.PublicKey()
	return &HPKEPublicKey{k: p, raw: p.Bytes()}
}

// NewHPKEPublicKey parses an HPKEPublicKeySize-byte public key, including
// the FIPS 203 modulus check on its ML-KEM half.
func NewHPKEPublicKey(b []byte) (*HPKEPublicKey, error) {
	if len(b) != HPKEPublicKeySize {
		return nil, ErrInvalidKey
	}
	k, err := hpkeKEM().NewPublicKey(b)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return &HPKEPublicKey{k: k, raw: append([]byte(nil), b...)}, nil
}

// Bytes returns the encoding.
func (p *HPKEPublicKey) Bytes() []byte { return append([]byte(nil), p.raw...) }

// Equal reports whether p and o are the same key, in constant time.
func (p *HPKEPublicKey) Equal(o *HPKEPublicKey) bool {
	return p != nil && o != nil && subtle.ConstantTimeCompare(p.raw, o.raw) == 1
}

// HPKESender is a sending HPKE context: every Seal uses the next sequence
// number, so the recipient must Open the ciphertexts in the same order.
// It is not safe for concurrent use.
type HPKESender struct{ s *hpke.Sender }

// HPKERecipient is the receiving side of an HPKESender. It is not safe for
// concurrent use.
type HPKERecipient struct{ r *hpke.Recipient }

// NewHPKESender sets up a sending context to pub with HPKE info
// label || 0x00 || context (§2.4) and returns it with the encapsulated key
// enc (HPKEEncapsulatedKeySize bytes) the recipient needs.
func NewHPKESender(pub *HPKEPublicKey, label Label, context []byte) (enc []byte, s *HPKESender) {
	enc, hs, err := hpke.NewSender(pub.k, hpkeKDF(), hpkeAEAD(), []byte(info(label, context)))
	if err != nil {
		// The key was validated when it was parsed; encapsulation to it
		// cannot fail.
		panic("parley: internal error: HPKE encapsulation: " + err.Error())
	}
	return enc, &HPKESender{s: hs}
}

// Seal encrypts plaintext with associated data ad under the context's next
// sequence number and returns the ciphertext (HPKEOverhead bytes longer).
func (s *HPKESender) Seal(ad, plaintext []byte) []byte {
	ct, err := s.s.Seal(ad, plaintext)
	if err != nil {
		// Only an export-only AEAD or an exhausted sequence number
		// (2^96 messages) can fail.
		panic("parley: internal error: HPKE seal: " + err.Error())
	}
	return ct
}

// NewHPKERecipient sets up the receiving context for enc under k, with the
// same label and context as the sender. A malformed enc is ErrDecrypt; a
// well-formed wrong one gives a context whose every Open fails.
func NewHPKERecipient(k *HPKEPrivateKey, enc []byte, label Label, context []byte) (*HPKERecipient, error) {
	if len(enc) != HPKEEncapsulatedKeySize {
		return nil, ErrDecrypt
	}
	r, err := hpke.NewRecipient(enc, k.k, hpkeKDF(), hpkeAEAD(), []byte(info(label, context)))
	if err != nil {
		return nil, ErrDecrypt
	}
	return &HPKERecipient{r: r}, nil
}

// Open decrypts the ciphertext sealed with the context's next sequence
// number. The sequence number advances only on success. Any failure is
// ErrDecrypt.
func (r *HPKERecipient) Open(ad, ciphertext []byte) ([]byte, error) {
	pt, err := r.r.Open(ad, ciphertext)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}
