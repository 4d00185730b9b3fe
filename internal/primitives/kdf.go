package primitives

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
)

// KeySize is the size of every symmetric key, chain key and hash in Parley.
const KeySize = 32

// info builds an HKDF info string: label || 0x00 || context. Labels never
// contain NUL, so distinct (label, context) pairs never collide.
func info(label Label, context []byte) string {
	b := make([]byte, 0, len(label)+1+len(context))
	b = append(b, label...)
	b = append(b, 0)
	b = append(b, context...)
	return string(b)
}

// HKDF is HKDF-SHA256 (RFC 5869) with info = label || 0x00 || context. A nil
// salt is the RFC's default (HashLen zero bytes).
func HKDF(secret, salt []byte, label Label, context []byte, length int) []byte {
	out, err := hkdf.Key(sha256.New, secret, salt, info(label, context), length)
	if err != nil {
		panic("parley: internal error: HKDF: " + err.Error())
	}
	return out
}

// RootKDF is the Double Ratchet's KDF_RK (docs/protocol.md §5.2):
// HKDF-SHA256 with salt = rk, secret = dh || pq (pq empty unless the step
// mixes an ML-KEM shared secret), 64 bytes split into the new root key and
// the new chain key.
func RootKDF(rk *[KeySize]byte, dh, pq []byte) (newRoot, chain [KeySize]byte) {
	secret := make([]byte, 0, len(dh)+len(pq))
	secret = append(secret, dh...)
	secret = append(secret, pq...)
	out := HKDF(secret, rk[:], LabelRatchetRoot, nil, 2*KeySize)
	copy(newRoot[:], out[:KeySize])
	copy(chain[:], out[KeySize:])
	clear(out)
	clear(secret)
	return newRoot, chain
}

// Chain-KDF input constants, as recommended by the Double Ratchet
// specification §5.2.
const (
	chainMessageSeed = 0x01
	chainNextKey     = 0x02
)

// ChainKDF is the Double Ratchet's KDF_CK: next = HMAC(ck, 0x02) and
// seed = HMAC(ck, 0x01). The seed is not the AEAD key itself: MessageKey
// mixes in the per-message salt first (§5.3).
func ChainKDF(ck *[KeySize]byte) (next, seed [KeySize]byte) {
	m := hmac.New(sha256.New, ck[:])
	m.Write([]byte{chainMessageSeed})
	m.Sum(seed[:0])
	m.Reset()
	m.Write([]byte{chainNextKey})
	m.Sum(next[:0])
	return next, seed
}

// messageKeyInfoMax bounds the stack buffer of MessageKey; longer salts
// still work but allocate. The ratchet passes 16 bytes.
const messageKeyInfoMax = len(LabelMessageKey) + 1 + 64

// MessageKey derives the single-use AEAD key of one message:
// HKDF-Expand(PRK = seed, info = LabelMessageKey || 0x00 || salt, L = 32).
// For L = 32 HKDF-Expand is one HMAC call, HMAC(seed, info || 0x01), which is
// what this computes; a test checks it against crypto/hkdf.
func MessageKey(seed *[KeySize]byte, salt []byte) (key [KeySize]byte) {
	var buf [messageKeyInfoMax + 1]byte
	in := append(buf[:0], LabelMessageKey...)
	in = append(in, 0)
	in = append(in, salt...)
	in = append(in, 1) // HKDF-Expand block counter T(1)
	m := hmac.New(sha256.New, seed[:])
	m.Write(in)
	m.Sum(key[:0])
	return key
}

// Hash is SHA-256 over label || 0x00 || for each part: uint32 length || part.
// The length prefixes make the encoding injective.
func Hash(label Label, parts ...[]byte) [KeySize]byte {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write([]byte{0})
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var out [KeySize]byte
	h.Sum(out[:0])
	return out
}

// SHA512 returns the SHA-512 digest of data (used by the numeric safety
// number, which follows Signal's published iterated-hash construction).
func SHA512(data []byte) [64]byte {
	return sha512Sum(data)
}

// Equal reports whether a and b are equal, in time that depends only on
// their lengths.
func Equal(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}
