package primitives

// Label is a domain-separation string for HKDF, hashes and signatures. Every
// label in Parley is declared here and listed in docs/protocol.md §2.4; a
// test checks both that they are distinct and that the spec lists each one.
type Label string

// HKDF info labels.
const (
	// LabelPQXDH derives the initial shared secret of a session (§4).
	LabelPQXDH Label = "Parley-v1 PQXDH X25519 ML-KEM-1024 SHA-256"
	// LabelRatchetRoot is the root-chain KDF of the Double Ratchet (§5.2).
	LabelRatchetRoot Label = "Parley-v1 Ratchet Root"
	// LabelMessageKey expands a message-key seed and the per-message salt
	// into the single-use AEAD key (§5.3).
	LabelMessageKey Label = "Parley-v1 Message Key"
)

// Hash labels.
const (
	// LabelPQXDHTranscript hashes everything both sides of a handshake saw (§4.3).
	LabelPQXDHTranscript Label = "Parley-v1 PQXDH Transcript"
	// LabelDeviceFingerprint hashes a device's public keys into its identity (§3.2).
	LabelDeviceFingerprint Label = "Parley-v1 Device Fingerprint"
	// LabelAccountFingerprint hashes an account public key (§3.1).
	LabelAccountFingerprint Label = "Parley-v1 Account Fingerprint"
	// LabelDeviceListHash chains device-list versions (§3.3).
	LabelDeviceListHash Label = "Parley-v1 Device List Hash"
	// LabelSafetyNumber derives the safety number of an account (§3.4).
	LabelSafetyNumber Label = "Parley-v1 Safety Number"
	// LabelPQRatchetKeyID names an ML-KEM-768 ratchet key in the answering header (§5.4).
	LabelPQRatchetKeyID Label = "Parley-v1 PQ Ratchet Key ID"
)

// MAC labels (servers' self-addressed tokens).
const (
	// LabelAuthChallenge authenticates a server's challenge (docs/server.md §4).
	LabelAuthChallenge Label = "Parley-v1 Auth Challenge"
	// LabelAuthToken authenticates a server's bearer token (docs/server.md §4).
	LabelAuthToken Label = "Parley-v1 Auth Token"
	// LabelInvite hashes an invite token for storage (docs/server.md §3.2).
	LabelInvite Label = "Parley-v1 Invite"
	// LabelBackupWriteHash hashes a backup write token for storage
	// (docs/server.md §5.7).
	LabelBackupWriteHash Label = "Parley-v1 Backup Write Hash"
)

// Key transparency labels (docs/transparency.md).
const (
	// LabelKTCommitment is the MAC label of a key-transparency commitment
	// to one (label, version, value) under a random opening.
	LabelKTCommitment Label = "Parley-v1 KT Commitment"
	// LabelSigKTCheckpoint is the context of the log's hybrid signature
	// over a checkpoint's note text.
	LabelSigKTCheckpoint Label = "Parley-v1 Sig KT Checkpoint"
)

// Client store labels (docs/client.md §2–§3).
const (
	// LabelClientDBSealKey derives the key that seals stored values.
	LabelClientDBSealKey Label = "Parley-v1 ClientDB Seal Key"
	// LabelClientDBIndexKey derives the key of the store's keyed lookup hashes.
	LabelClientDBIndexKey Label = "Parley-v1 ClientDB Index Key"
	// LabelClientDBIndex is the HKDF info of a keyed lookup hash.
	LabelClientDBIndex Label = "Parley-v1 ClientDB Index"
	// LabelClientDBSealedValue starts the associated data of a sealed value.
	LabelClientDBSealedValue Label = "Parley-v1 ClientDB Sealed Value"
)

// Provisioning labels (docs/protocol.md §9: linking a new device).
const (
	// LabelProvisioningAddress hashes a provisioning offer into its mailbox
	// address, so the address commits to the offer.
	LabelProvisioningAddress Label = "Parley-v1 Provisioning Address"
	// LabelProvisioningConfirmation hashes the address and offer into the
	// confirmation string both devices show.
	LabelProvisioningConfirmation Label = "Parley-v1 Provisioning Confirmation"
	// LabelProvisioning is the HPKE info of the transfer, with the mailbox
	// address as context.
	LabelProvisioning Label = "Parley-v1 Provisioning"
	// LabelRecoveryShare is the HPKE info of a recovery share sealed to a
	// recovering device's offer, with the address and the account
	// (docs/backup.md).
	LabelRecoveryShare Label = "Parley-v1 Recovery Share"
)

// Backup labels (docs/backup.md §2: what a recovery key derives).
const (
	// LabelBackupAgeIdentity derives, from a recovery key, the 32-byte seed
	// of the age MLKEM768-X25519 identity that backups are encrypted to.
	LabelBackupAgeIdentity Label = "Parley-v1 Backup Age Identity"
	// LabelBackupLocator derives, from a recovery key, the identifier the
	// server stores the backup under.
	LabelBackupLocator Label = "Parley-v1 Backup Locator"
	// LabelBackupWriteToken derives, from a recovery key, the token that
	// lets a device replace or delete the backups under its locator; the
	// server keeps only its hash (LabelBackupWriteHash).
	LabelBackupWriteToken Label = "Parley-v1 Backup Write Token"
	// LabelBackupKeyID hashes the age recipient of a recovery key into the
	// public key ID that names the key's generation (archive header,
	// recovery shares).
	LabelBackupKeyID Label = "Parley-v1 Backup Key ID"
)

// Signature contexts.
const (
	// LabelSigDeviceList is the context of the account key's signature over a device list (§3.3).
	LabelSigDeviceList Label = "Parley-v1 Sig Device List"
	// LabelSigPrekey is the context of a device's signature over one of its prekeys (§3.5).
	LabelSigPrekey Label = "Parley-v1 Sig Prekey"
	// LabelSigAuthChallenge is the context of a device's signature over a
	// server's authentication challenge (docs/server.md §4).
	LabelSigAuthChallenge Label = "Parley-v1 Sig Auth Challenge"
)

// AllLabels lists every label, for the distinctness and documentation tests
// and for the vector generator.
var AllLabels = []Label{
	LabelPQXDH, LabelRatchetRoot, LabelMessageKey,
	LabelPQXDHTranscript, LabelDeviceFingerprint, LabelAccountFingerprint,
	LabelDeviceListHash, LabelSafetyNumber, LabelPQRatchetKeyID,
	LabelAuthChallenge, LabelAuthToken, LabelInvite, LabelBackupWriteHash,
	LabelClientDBSealKey, LabelClientDBIndexKey, LabelClientDBIndex, LabelClientDBSealedValue,
	LabelSigDeviceList, LabelSigPrekey, LabelSigAuthChallenge,
	LabelProvisioningAddress, LabelProvisioningConfirmation, LabelProvisioning, LabelRecoveryShare,
	LabelBackupAgeIdentity, LabelBackupLocator, LabelBackupWriteToken, LabelBackupKeyID,
	LabelKTCommitment, LabelSigKTCheckpoint,
}
