package primitives

import (
	"crypto/ed25519"
	"crypto/sha256"
)

// SHA256 is plain SHA-256 of data, without Hash's label framing. It exists
// for formats that fix their own domain separation: the key-transparency
// prefix tree hashes 0x01 || index || commitment and 0x02 || left || right
// (draft-ietf-keytrans-protocol §10.9, docs/transparency.md), and C2SP note
// key IDs hash name || 0x0A || type || key. Everything else uses Hash.
func SHA256(data []byte) [KeySize]byte {
	return sha256.Sum256(data)
}

// Ed25519PublicKeySize and Ed25519SignatureSize are the RFC 8032 sizes.
const (
	Ed25519PublicKeySize = ed25519.PublicKeySize
	Ed25519SignatureSize = ed25519.SignatureSize
)

// VerifyEd25519 reports whether sig is a valid pure Ed25519 (RFC 8032
// §5.1) signature of msg under the 32-byte public key pub. It exists for
// the third-party formats Parley must verify as they are — witness
// cosignatures (c2sp.org/tlog-cosignature) — and is never used to sign a
// Parley statement: those use the hybrid SigningKey. A key of the wrong
// length is false, not a panic.
func VerifyEd25519(pub, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(pub), msg, sig)
}

// Ed25519SeedSize is the size of an Ed25519 private key seed.
const Ed25519SeedSize = ed25519.SeedSize

// Ed25519Key is a plain Ed25519 key (RFC 8032 §5.1). It signs only
// third-party formats that standard tools must verify as they are — the
// Ed25519 line of a key-transparency checkpoint (c2sp.org/signed-note),
// which golang.org/x/mod/sumdb/note and witnesses check — and always beside
// a hybrid signature where Parley clients rely on it. Parley's own
// statements use SigningKey.
type Ed25519Key struct {
	priv ed25519.PrivateKey
}

// GenerateEd25519 returns a fresh Ed25519 key.
func GenerateEd25519() *Ed25519Key {
	var seed [ed25519.SeedSize]byte
	Random(seed[:])
	k, _ := NewEd25519Key(seed[:])
	return k
}

// NewEd25519Key expands a 32-byte seed.
func NewEd25519Key(seed []byte) (*Ed25519Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, ErrInvalidKey
	}
	return &Ed25519Key{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Seed returns the 32-byte seed; callers persist it only in sealed or
// operator-protected storage.
func (k *Ed25519Key) Seed() []byte { return append([]byte(nil), k.priv.Seed()...) }

// Public returns the 32-byte public key.
func (k *Ed25519Key) Public() []byte {
	return append([]byte(nil), k.priv.Public().(ed25519.PublicKey)...)
}

// Sign returns the Ed25519 signature of msg.
func (k *Ed25519Key) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }
