package identity

import (
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// AccountKeySize is the size of an account public key encoding: a hybrid
// Ed25519 + ML-DSA-65 public key (§3.1).
const AccountKeySize = primitives.SigningPublicKeySize

// AccountKey is an account's private signing key. Its only use is signing
// the account's device list. It moves between the account's own devices
// (when one links another) and nowhere else.
type AccountKey struct {
	k   *primitives.SigningKey
	pub *AccountPublicKey
}

// AccountPublicKey is an account's public signing key.
type AccountPublicKey struct {
	k *primitives.SigningPublicKey
}

// GenerateAccountKey returns a fresh account key.
func GenerateAccountKey() *AccountKey {
	return newAccountKey(primitives.GenerateSigningKey())
}

// NewAccountKey expands a 64-byte seed (primitives.SigningSeedSize) into an
// account key, as written by Seed.
func NewAccountKey(seed []byte) (*AccountKey, error) {
	k, err := primitives.NewSigningKey(seed)
	if err != nil {
		return nil, err
	}
	return newAccountKey(k), nil
}

func newAccountKey(k *primitives.SigningKey) *AccountKey {
	return &AccountKey{k: k, pub: &AccountPublicKey{k: k.Public()}}
}

// Seed returns the 64-byte seed of the key. Callers persist it only inside
// sealed storage.
func (k *AccountKey) Seed() []byte { return k.k.Seed() }

// Public returns the public key.
func (k *AccountKey) Public() *AccountPublicKey { return k.pub }

// ParseAccountPublicKey parses an account public key: the
// AccountKeySize-byte hybrid public key, Ed25519 then ML-DSA-65. The key is a
// fixed-size field inside versioned encodings, so it carries no version byte
// of its own.
func ParseAccountPublicKey(b []byte) (*AccountPublicKey, error) {
	if len(b) != AccountKeySize {
		return nil, wire.Malformed("account public key", "wrong length")
	}
	k, err := primitives.NewSigningPublicKey(b)
	if err != nil {
		return nil, wire.Malformed("account public key", "invalid key")
	}
	return &AccountPublicKey{k: k}, nil
}

// Bytes returns the AccountKeySize-byte encoding.
func (p *AccountPublicKey) Bytes() []byte { return p.k.Bytes() }

// Equal reports whether p and o are the same key, in constant time.
func (p *AccountPublicKey) Equal(o *AccountPublicKey) bool {
	return p != nil && o != nil && p.k.Equal(o.k)
}

// Fingerprint returns Hash(LabelAccountFingerprint, key bytes).
func (p *AccountPublicKey) Fingerprint() [32]byte {
	return primitives.Hash(primitives.LabelAccountFingerprint, p.k.Bytes())
}

// verify checks a signature by this key under label.
func (p *AccountPublicKey) verify(label primitives.Label, msg, sig []byte) error {
	return p.k.Verify(label, msg, sig)
}
