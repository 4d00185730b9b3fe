// Package vrf implements the verifiable random function
// ECVRF-EDWARDS25519-SHA512-TAI (suite string 0x03) of RFC 9381, as
// specified in docs/transparency.md ("VRF"), on filippo.io/edwards25519 and
// crypto/sha512. There is no deviation from the RFC.
//
// The key-transparency server computes VRF outputs with a PrivateKey
// (Prove); clients check them with the server's PublicKey (Verify), which
// returns the same 64-byte output for a valid proof.
package vrf

import (
	"crypto/sha512"
	"errors"
	"fmt"

	"filippo.io/edwards25519"

	"github.com/parleyim/parley/internal/primitives"
)

// Sizes of the suite (RFC 9381 §5.5: ptLen = qLen = 32, cLen = 16).
const (
	// PublicKeySize is the size of an encoded public key: an RFC 8032 point.
	PublicKeySize = ptLen
	// ProofSize is the size of a proof pi: Gamma || c || s.
	ProofSize = ptLen + cLen + qLen
	// OutputSize is the size of the VRF output beta: a SHA-512 digest.
	OutputSize = sha512.Size
	// SeedSize is the size of a secret key: an RFC 8032 secret key (seed).
	SeedSize = 32
)

var (
	// ErrInvalidProof reports a proof that does not verify for the public
	// key and input, or that is malformed.
	ErrInvalidProof = errors.New("vrf: invalid proof")
	// ErrInvalidPublicKey reports a public key that is malformed, not a
	// canonical point encoding, or of small order (RFC 9381 §5.4.5).
	ErrInvalidPublicKey = errors.New("vrf: invalid public key")
	// ErrInvalidPrivateKey reports a secret key seed of the wrong length.
	ErrInvalidPrivateKey = errors.New("vrf: invalid private key")
)

// PrivateKey is an ECVRF secret key with its expanded form (RFC 8032
// §5.1.5) and its public key. The zero value is not usable; make keys with
// GenerateKey or NewPrivateKey. Private keys are not comparable with ==.
//
// Go cannot guarantee that secrets are erased from memory; the package
// clears the temporary buffers it owns and nothing else.
type PrivateKey struct {
	_      [0]func() // not comparable
	seed   [SeedSize]byte
	x      edwards25519.Scalar // the secret scalar: clamped, reduced mod L
	prefix [32]byte            // hashed_sk_string[32:64], the nonce key (§5.4.2.2)
	pub    PublicKey
}

// PublicKey is a validated ECVRF public key.
type PublicKey struct {
	b [PublicKeySize]byte
	y *edwards25519.Point // never mutated once set; nil in the zero value
}

// GenerateKey returns a new private key from a fresh random seed
// (primitives.Random).
func GenerateKey() *PrivateKey {
	var seed [SeedSize]byte
	primitives.Random(seed[:])
	k, err := NewPrivateKey(seed[:])
	clear(seed[:])
	if err != nil {
		panic("vrf: internal error: " + err.Error())
	}
	return k
}

// NewPrivateKey returns the private key of a 32-byte secret key SK, the
// RFC 8032 seed, as RFC 9381 §5.5 specifies for this suite: x is the clamped
// first half of SHA-512(SK) and Y = x*B.
func NewPrivateKey(seed []byte) (*PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrInvalidPrivateKey, len(seed), SeedSize)
	}
	k := &PrivateKey{}
	copy(k.seed[:], seed)
	h := sha512.Sum512(seed)
	if _, err := k.x.SetBytesWithClamping(h[:32]); err != nil {
		panic("vrf: internal error: " + err.Error())
	}
	copy(k.prefix[:], h[32:])
	clear(h[:])
	y := new(edwards25519.Point).ScalarBaseMult(&k.x)
	copy(k.pub.b[:], y.Bytes())
	k.pub.y = y
	return k, nil
}

// Seed returns a copy of the 32-byte secret key SK.
func (k *PrivateKey) Seed() []byte {
	return append([]byte(nil), k.seed[:]...)
}

// Public returns the public key of k.
func (k *PrivateKey) Public() *PublicKey {
	k.mustBeValid()
	return &PublicKey{b: k.pub.b, y: k.pub.y}
}

func (k *PrivateKey) mustBeValid() {
	if k == nil || k.pub.y == nil {
		panic("vrf: internal error: use of a zero PrivateKey (make keys with GenerateKey or NewPrivateKey)")
	}
}

// Prove returns the VRF output beta for alpha and the proof pi that it is
// correct (RFC 9381 §5.1 and §5.2). It is deterministic: the same key and
// alpha always give the same proof.
//
// Its running time depends on alpha (try-and-increment, RFC 9381 §5.4.1.1),
// but not on the secret key.
func (k *PrivateKey) Prove(alpha []byte) (beta [OutputSize]byte, pi [ProofSize]byte) {
	return k.prove(alpha, nil)
}

// NewPublicKey decodes and validates a public key, as ECVRF_validate_key
// (RFC 9381 §5.4.5) does: the bytes must be the canonical RFC 8032 encoding
// of a point, and the point must not be of small order (cofactor*Y is not
// the identity).
func NewPublicKey(b []byte) (*PublicKey, error) {
	if len(b) != PublicKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidPublicKey, len(b), PublicKeySize)
	}
	y, err := validateKey(b)
	if err != nil {
		return nil, err
	}
	p := &PublicKey{y: y}
	copy(p.b[:], b)
	return p, nil
}

// Bytes returns the 32-byte encoding of the public key.
func (p *PublicKey) Bytes() []byte {
	return append([]byte(nil), p.b[:]...)
}

// Verify checks that pi proves the VRF output of alpha under p and returns
// that output (RFC 9381 §5.3 with validate_key = TRUE; the key was
// validated by NewPublicKey). Any failure is ErrInvalidProof, or
// ErrInvalidPublicKey for a zero or nil key.
func (p *PublicKey) Verify(alpha, pi []byte) (beta [OutputSize]byte, err error) {
	if p == nil || p.y == nil {
		return beta, fmt.Errorf("%w: zero public key", ErrInvalidPublicKey)
	}
	if len(pi) != ProofSize {
		return beta, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidProof, len(pi), ProofSize)
	}
	return verify(p.b[:], p.y, alpha, pi)
}
