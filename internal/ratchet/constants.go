package ratchet

import (
	"time"

	"github.com/parleyim/parley/internal/primitives"
)

// Specification constants: changing any of these changes the wire format or
// the keys both parties derive (docs/protocol.md §5).
const (
	// SaltSize is the size of the per-message salt that MessageKey mixes into
	// the AEAD key (§5.3).
	SaltSize = 16

	// PQKeyIDSize is the size of the key id that names the ML-KEM-768
	// encapsulation key a PQ ciphertext answers: the first bytes of
	// Hash(LabelPQRatchetKeyID, EK) (§5.4).
	PQKeyIDSize = 16

	// ChainIDSize is the size of the chain id in a Gap: the first bytes of
	// the sending party's ratchet public key of that chain.
	ChainIDSize = 8

	// PQRekeyMessages and PQRekeyInterval are the PQ ratchet policy (§5.4):
	// a party that starts a new sending chain generates a fresh ML-KEM-768
	// key pair when at least PQRekeyMessages messages (sent plus received)
	// or PQRekeyInterval have passed since the last ML-KEM secret was mixed
	// into its root key. The bandwidth this costs is measured by
	// TestPQBandwidth and written up in docs/protocol.md §5.4.
	PQRekeyMessages = 50
	PQRekeyInterval = 24 * time.Hour
)

// Message flag bits (§5.5). Every other bit is refused.
const (
	flagPQKey        = 0x01 // the header carries an ML-KEM-768 encapsulation key
	flagPQCiphertext = 0x02 // the header carries key id || ML-KEM-768 ciphertext
	knownFlags       = flagPQKey | flagPQCiphertext
)

// Encoded sizes (§5.5).
const (
	// headerBaseSize is version, flags, ratchet key, pn, n and salt.
	headerBaseSize = 1 + 1 + primitives.X25519KeySize + 4 + 4 + SaltSize
	pqKeySize      = primitives.MLKEM768PublicKeySize
	pqCTFieldSize  = PQKeyIDSize + primitives.MLKEM768CiphertextSize
	// maxCiphertext is what the uint24 length prefix can carry.
	maxCiphertext = 1<<24 - 1
	// MaxPlaintextSize is the largest plaintext Encrypt accepts: the AEAD
	// output must fit the uint24 length prefix.
	MaxPlaintextSize = maxCiphertext - primitives.AEADOverhead
)

// Implementation limits: local choices that bound memory and work per
// message. They are not part of the wire format, but a peer that exceeds
// them sees its messages refused.
const (
	// MaxSkip is the largest number of message keys one incoming message
	// may make this party skip in a single chain (MAX_SKIP of the Double
	// Ratchet spec §3.2 and §3.5). It bounds the work an unauthenticated
	// message can cause, and with it the skipped-key store (spec §6.4).
	MaxSkip = 1000

	// MaxSkippedKeys bounds the skipped message-key seeds kept for messages
	// that have not arrived. When a new seed would exceed it, the oldest
	// stored seeds (in the order they were skipped) are deleted; their
	// messages then fail with ErrDuplicate and no longer appear in Missing.
	MaxSkippedKeys = 2000

	// MaxPreviousChains is how many earlier receiving chains (the peer's
	// old ratchet public keys) are remembered so that a replayed or very
	// late message from a chain that has no skipped keys left is reported
	// as ErrDuplicate instead of being mistaken for a new ratchet key.
	MaxPreviousChains = 32

	// maxADSize bounds the session associated data (the handshake passes 64
	// bytes); it keeps the state encoding's length prefix small.
	maxADSize = 1<<16 - 1
)
