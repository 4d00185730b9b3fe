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
