package primitives

import (
	"crypto/ed25519"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// Hybrid signature sizes: Ed25519 then ML-DSA-65, concatenated.
const (
	SigningSeedSize      = ed25519.SeedSize + mldsa65.SeedSize
	SigningPublicKeySize = ed25519.PublicKeySize + mldsa65.PublicKeySize
	SignatureSize        = ed25519.SignatureSize + mldsa65.SignatureSize
)

// hybridPrefix starts every signed message, in the manner of the composite
// ML-DSA draft (draft-ietf-lamps-pq-composite-sigs): both components sign the
// same M' = prefix || label || 0x00 || message, so neither signature can be
// lifted into another protocol or another Parley statement.
const hybridPrefix = "Parley-v1 Hybrid Ed25519 ML-DSA-65\x00"

// mldsaContext is the FIPS 204 context string of ML-DSA signatures.
var mldsaContext = []byte("Parley-v1")

// SigningKey is a hybrid Ed25519 + ML-DSA-65 private key.
type SigningKey struct {
	seed [SigningSeedSize]byte
	ed   ed25519.PrivateKey
	ml   *mldsa65.PrivateKey
	pub  *SigningPublicKey
}

// SigningPublicKey is a hybrid Ed25519 + ML-DSA-65 public key. A signature
// verifies only if both components verify.
type SigningPublicKey struct {
	raw [SigningPublicKeySize]byte
	ed  ed25519.PublicKey
	ml  *mldsa65.PublicKey
}

// GenerateSigningKey returns a fresh hybrid signing key.
func GenerateSigningKey() *SigningKey {
	var seed [SigningSeedSize]byte
	Random(seed[:])
	k, err := NewSigningKey(seed[:])
	if err != nil {
		panic("parley: internal error: signing key generation: " + err.Error())
	}
	return k
}

// NewSigningKey expands a 64-byte seed: the Ed25519 seed then the ML-DSA-65
// seed.
func NewSigningKey(seed []byte) (*SigningKey, error) {
	if len(seed) != SigningSeedSize {
		return nil, ErrInvalidKey
	}
	k := &SigningKey{}
	copy(k.seed[:], seed)
	k.ed = ed25519.NewKeyFromSeed(seed[:ed25519.SeedSize])
	var ms [mldsa65.SeedSize]byte
	copy(ms[:], seed[ed25519.SeedSize:])
	mpub, mpriv := mldsa65.NewKeyFromSeed(&ms)
	k.ml = mpriv
	var raw [SigningPublicKeySize]byte
	copy(raw[:], k.ed.Public().(ed25519.PublicKey))
	mpub.Pack((*[mldsa65.PublicKeySize]byte)(raw[ed25519.PublicKeySize:]))
	pub, err := NewSigningPublicKey(raw[:])
	if err != nil {
		return nil, err
	}
	k.pub = pub
	return k, nil
}

// Seed returns the 64-byte seed. Callers persist it only inside sealed
// storage.
func (k *SigningKey) Seed() []byte { return append([]byte(nil), k.seed[:]...) }

// Public returns the public key.
func (k *SigningKey) Public() *SigningPublicKey { return k.pub }

func hybridMessage(label Label, msg []byte) []byte {
	m := make([]byte, 0, len(hybridPrefix)+len(label)+1+len(msg))
	m = append(m, hybridPrefix...)
	m = append(m, label...)
	m = append(m, 0)
	return append(m, msg...)
}

// Sign signs msg under the context label with both algorithms. ML-DSA
// signing is hedged (randomized) except under deterministic vector entropy.
func (k *SigningKey) Sign(label Label, msg []byte) []byte {
	m := hybridMessage(label, msg)
	sig := make([]byte, SignatureSize)
	copy(sig, ed25519.Sign(k.ed, m))
	if err := mldsa65.SignTo(k.ml, m, mldsaContext, !deterministicMode(), sig[ed25519.SignatureSize:]); err != nil {
		panic("parley: internal error: ML-DSA-65 sign: " + err.Error())
	}
	return sig
}

// NewSigningPublicKey parses a hybrid public key.
func NewSigningPublicKey(b []byte) (*SigningPublicKey, error) {
	if len(b) != SigningPublicKeySize {
		return nil, ErrInvalidKey
	}
	p := &SigningPublicKey{}
	copy(p.raw[:], b)
	p.ed = ed25519.PublicKey(p.raw[:ed25519.PublicKeySize])
	p.ml = new(mldsa65.PublicKey)
	if err := p.ml.UnmarshalBinary(p.raw[ed25519.PublicKeySize:]); err != nil {
		return nil, ErrInvalidKey
	}
	return p, nil
}

// Bytes returns the encoding: Ed25519 public key then ML-DSA-65 public key.
func (p *SigningPublicKey) Bytes() []byte { return append([]byte(nil), p.raw[:]...) }

// Equal reports whether two public keys are the same.
func (p *SigningPublicKey) Equal(o *SigningPublicKey) bool {
	return p != nil && o != nil && Equal(p.raw[:], o.raw[:])
}

// Verify checks a hybrid signature over msg under label. Both the Ed25519
// and the ML-DSA-65 components must verify; any failure is ErrSignature.
func (p *SigningPublicKey) Verify(label Label, msg, sig []byte) error {
	if len(sig) != SignatureSize {
		return ErrSignature
	}
	m := hybridMessage(label, msg)
	// Evaluate both so that the time taken does not reveal which failed.
	okEd := ed25519.Verify(p.ed, m, sig[:ed25519.SignatureSize])
	okML := mldsa65.Verify(p.ml, m, mldsaContext, sig[ed25519.SignatureSize:])
	if !okEd || !okML {
		return ErrSignature
	}
	return nil
}
