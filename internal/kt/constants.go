package kt

// Specification constants (draft-ietf-keytrans-protocol §15.1, cipher suite
// KT_128_SHA256_Ed25519, and docs/transparency.md).
const (
	// HashSize is the size of every tree hash (SHA-256).
	HashSize = 32
	// IndexSize is the size of a prefix-tree index: the VRF output
	// truncated to 32 bytes (§15.1).
	IndexSize = 32
	// OpeningSize is Nc, the size of a commitment opening (§15.1).
	OpeningSize = 16
	// VRFProofSize is the size of an ECVRF-EDWARDS25519-SHA512-TAI proof
	// (RFC 9381 §5.5: Gamma 32, c 16, s 32).
	VRFProofSize = 80
)

// commitmentKey is Kc of §15.1, the fixed HMAC key of commitments.
var commitmentKey = []byte{
	0xd8, 0x21, 0xf8, 0x79, 0x0d, 0x97, 0x70, 0x97,
	0x96, 0xb4, 0xd7, 0x90, 0x33, 0x57, 0xc3, 0xf5,
}

// Implementation limits. Each is checked by the encoder and the decoder
// that meets it; raising one changes no format, only what is accepted.
const (
	// MaxLabelSize bounds a label (a username) in bytes: the u8 length of
	// VrfInput (§10.7). Parley usernames are at most 64 bytes.
	MaxLabelSize = 255
	// MaxValueSize bounds a value (a signed device list, at most about
	// 39 KB, docs/protocol.md §3.3).
	MaxValueSize = 1 << 16
	// MaxDepth is the deepest a prefix-tree leaf may sit: depths are a u8
	// (§11.2). Two indexes sharing their first 255 bits (probability about
	// N²/2^256) cannot both be stored: Insert refuses the second with
	// ErrIndexCollision.
	MaxDepth = 255
	// MaxLookups bounds the lookups of one prefix proof (a u8 count).
	MaxLookups = 255
	// MaxProofElements bounds the copath hashes of one prefix proof.
	MaxProofElements = MaxLookups * MaxDepth
	// MaxLogProofHashes bounds an RFC 6962 inclusion or consistency proof:
	// 2·63 hashes covers any tree of fewer than 2^63 entries.
	MaxLogProofHashes = 128
	// MaxEpochLeaves bounds the insertions of one epoch.
	MaxEpochLeaves = 1 << 20
	// MaxCheckpointSize bounds a signed checkpoint note with its
	// cosignatures: the text, the Ed25519 and hybrid signature lines
	// (about 4.6 KB) and up to MaxCosignatures witness lines.
	MaxCheckpointSize = 16 << 10
	// MaxCosignatures bounds the signature lines of a checkpoint note
	// (c2sp.org/signed-note asks verifiers to accept at least 16).
	MaxCosignatures = 32
	// MaxOriginSize bounds a checkpoint's origin line.
	MaxOriginSize = 255
)
