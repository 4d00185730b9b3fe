package primitives

import (
	"crypto/ecdh"
)

// X25519KeySize is the size of X25519 public keys, private keys and shared
// secrets (RFC 7748).
const X25519KeySize = 32

// X25519PrivateKey is an X25519 private key. It keeps the parsed
// *ecdh.PrivateKey (with its public key computed once) so that each exchange
// costs one scalar multiplication.
type X25519PrivateKey struct {
	k *ecdh.PrivateKey
}

// X25519PublicKey is an X25519 public key.
type X25519PublicKey struct {
	k *ecdh.PublicKey
}

// GenerateX25519 returns a fresh X25519 key pair.
func GenerateX25519() *X25519PrivateKey {
	var seed [X25519KeySize]byte
	Random(seed[:])
	k, err := NewX25519PrivateKey(seed[:])
	if err != nil {
		panic("parley: internal error: X25519 key generation: " + err.Error())
	}
	return k
}

// NewX25519PrivateKey parses a 32-byte X25519 private key.
func NewX25519PrivateKey(b []byte) (*X25519PrivateKey, error) {
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return &X25519PrivateKey{k: k}, nil
}

// NewX25519PublicKey parses a 32-byte X25519 public key.
func NewX25519PublicKey(b []byte) (*X25519PublicKey, error) {
	k, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return &X25519PublicKey{k: k}, nil
}

// Bytes returns the private scalar. Callers persist it only inside sealed
// storage.
func (k *X25519PrivateKey) Bytes() []byte { return k.k.Bytes() }

// Public returns the public key.
func (k *X25519PrivateKey) Public() *X25519PublicKey {
	return &X25519PublicKey{k: k.k.PublicKey()}
}

// ECDH computes the X25519 shared secret with peer. It fails with
// ErrLowOrderPoint when the result is all zeros.
func (k *X25519PrivateKey) ECDH(peer *X25519PublicKey) ([]byte, error) {
	s, err := k.k.ECDH(peer.k)
	if err != nil {
		return nil, ErrLowOrderPoint
	}
	return s, nil
}

// Bytes returns the 32-byte encoding of the public key.
func (k *X25519PublicKey) Bytes() []byte { return k.k.Bytes() }

// Equal reports whether two public keys are the same, in constant time.
func (k *X25519PublicKey) Equal(o *X25519PublicKey) bool {
	return k != nil && o != nil && k.k.Equal(o.k)
}
