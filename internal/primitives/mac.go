package primitives

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
)

// MAC is HMAC-SHA256 under key over label || 0x00 || for each part:
// uint32 length || part (the framing of Hash). Servers use it for the
// stateless challenges and tokens they issue to themselves, and key
// transparency uses it under a fixed public key as a commitment
// (draft-ietf-keytrans-protocol §10.6, docs/transparency.md); it never
// authenticates anything between two parties.
func MAC(key []byte, label Label, parts ...[]byte) [KeySize]byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write(p)
	}
	var out [KeySize]byte
	m.Sum(out[:0])
	return out
}
