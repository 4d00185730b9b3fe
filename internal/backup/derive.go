package backup

import (
	"strings"

	"filippo.io/age"

	"github.com/parleyim/parley/internal/primitives"
)

// What a recovery key derives (docs/backup.md §2). Every derivation is
// one-way: none of the outputs gives back the key or another output's
// secret.
//
//	age seed = HKDF(k, salt = none, "Parley-v1 Backup Age Identity", 32)
//	identity = age MLKEM768-X25519 identity with that seed
//	locator  = HKDF(k, salt = none, "Parley-v1 Backup Locator", 32)
//	key ID   = H("Parley-v1 Backup Key ID", recipient string)[:8]

const (
	// ageIdentityHRP is the Bech32 human-readable part of an age hybrid
	// identity (filippo.io/age pq.go: "AGE-SECRET-KEY-PQ-", encoded lower
	// case and printed upper case).
	ageIdentityHRP = "age-secret-key-pq-"
	// ageSeedSize is the size of an MLKEM768-X25519 private key seed
	// (filippo.io/hpke hybridKEM.NewPrivateKey).
	ageSeedSize = 32
	// LocatorSize is the size of a backup locator.
	LocatorSize = 32
	// WriteTokenSize is the size of a backup write token.
	WriteTokenSize = 32
	// KeyIDSize is the size of a recovery-key ID.
	KeyIDSize = 8
)

// AgeIdentityString returns the age identity of k, "AGE-SECRET-KEY-PQ-1…",
// as the standard age tool reads it from an identity file (age -d -i FILE).
// It is as secret as the recovery key: it opens every backup made with k.
func (k RecoveryKey) AgeIdentityString() string {
	seed := primitives.HKDF(k[:], nil, primitives.LabelBackupAgeIdentity, nil, ageSeedSize)
	defer clear(seed)
	return strings.ToUpper(bech32Encode(ageIdentityHRP, seed))
}

// AgeIdentity returns the age identity of k, which decrypts every backup
// made with k.
func (k RecoveryKey) AgeIdentity() *age.HybridIdentity {
	id, err := age.ParseHybridIdentity(k.AgeIdentityString())
	if err != nil {
		// Every 32-byte seed is a valid MLKEM768-X25519 key.
		panic("parley: internal error: backup: derived age identity does not parse: " + err.Error())
	}
	return id
}

// Recipient returns the age recipient ("age1pq1…") that backups made with
// k are encrypted to. It is public-key material, but the SDK keeps it on
// the user's devices only: anyone holding it can write an archive the
// recovery key opens (docs/backup.md §7).
func (k RecoveryKey) Recipient() *age.HybridRecipient {
	return k.AgeIdentity().Recipient()
}

// Locator returns the identifier the server stores k's backup under. It is
// a one-way function of k alone, so the server cannot link it to the
// account beyond the upload's authentication, and a new device that knows
// only the recovery key can find the backup.
func (k RecoveryKey) Locator() [LocatorSize]byte {
	return [LocatorSize]byte(primitives.HKDF(k[:], nil, primitives.LabelBackupLocator, nil, LocatorSize))
}

// WriteToken returns the token that guards k's locator on the server:
// uploading a new generation or deleting the backups under the locator
// needs it, and the server keeps only its hash (docs/server.md §5.7). It
// is a one-way function of k, so neither the locator nor the token reveals
// the other or the key.
func (k RecoveryKey) WriteToken() [WriteTokenSize]byte {
	return [WriteTokenSize]byte(primitives.HKDF(k[:], nil, primitives.LabelBackupWriteToken, nil, WriteTokenSize))
}

// KeyID returns the public fingerprint of k's generation: it names the key
// in archive headers and recovery shares, so that a restore can tell
// shares of a rotated-out key from current ones and CombineShares can
// recognise the right key. It is RecipientKeyID(k.Recipient()).
func (k RecoveryKey) KeyID() [KeyIDSize]byte {
	return RecipientKeyID(k.Recipient())
}

// RecipientKeyID returns the key ID of the recovery key whose age recipient
// is r: the first 8 bytes of H("Parley-v1 Backup Key ID", r.String()). A
// device that keeps only the recipient (to write backups without holding
// the recovery key) computes the same ID.
func RecipientKeyID(r *age.HybridRecipient) [KeyIDSize]byte {
	h := primitives.Hash(primitives.LabelBackupKeyID, []byte(r.String()))
	return [KeyIDSize]byte(h[:KeyIDSize])
}
