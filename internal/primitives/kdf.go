package primitives

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
)

// KeySize is the size of every symmetric key, chain key and hash in Parley.
const KeySize = 32

// info builds an HKDF info string: label || 0x00 || context. Labels never
// contain NUL, so distinct (label, context) pairs never collide.
func info(label Label, context []byte) string {
	return string(label) + "\x00" + string(context)
}

// sha256BlockSize is the block size of SHA-256, and so the HMAC pad size.
const sha256BlockSize = 64

// hmacStackMsg bounds the message hmacSHA256 hashes from a stack buffer;
// longer messages still work but allocate. The per-message callers
// (ChainKDF, MessageKey with the ratchet's 16-byte salt) and RootKDF stay
// well under it.
const hmacStackMsg = 128

// hmacSHA256 is HMAC-SHA256 (RFC 2104) of the concatenation of msg under a
// key of at most one block, computed as two sha256.Sum256 calls over stack
// buffers.
//
// It exists for allocation, not speed: crypto/hmac works through hash.Hash,
// so every buffer handed to it escapes to the heap, which cost 7
// allocations per MessageKey, 11 per ChainKDF and 21 per RootKDF; these run
// for every message. It does the same number of SHA-256 compressions.
// Tests check it against crypto/hmac, and its callers against crypto/hkdf.
func hmacSHA256(key []byte, msg ...[]byte) [sha256.Size]byte {
	if len(key) > sha256BlockSize {
		panic("parley: internal error: HMAC key longer than one block")
	}
	n := 0
	for _, m := range msg {
		n += len(m)
	}
	// inner = SHA-256((K ⊕ ipad) || msg), K zero-padded to a block.
	var stack [sha256BlockSize + hmacStackMsg]byte
	in := stack[:sha256BlockSize]
	if n > hmacStackMsg {
		in = make([]byte, sha256BlockSize, sha256BlockSize+n)
	}
	copy(in, key)
	for i := range in {
		in[i] ^= 0x36
	}
	for _, m := range msg {
		in = append(in, m...)
	}
	inner := sha256.Sum256(in)
	// outer = SHA-256((K ⊕ opad) || inner).
	var out [sha256BlockSize + sha256.Size]byte
	copy(out[:], key)
	for i := range sha256BlockSize {
		out[i] ^= 0x5c
	}
	copy(out[sha256BlockSize:], inner[:])
	mac := sha256.Sum256(out[:])
	// Best effort: Go may have copied these elsewhere (docs/protocol.md §2.6).
	clear(in)
	clear(inner[:])
	clear(out[:])
	return mac
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

// rootKDFInfo is the HKDF info of RootKDF: LabelRatchetRoot || 0x00, no
// context.
var rootKDFInfo = []byte(string(LabelRatchetRoot) + "\x00")

// RootKDF is the Double Ratchet's KDF_RK (docs/protocol.md §5.2):
// HKDF-SHA256 with salt = rk, secret = dh || pq (pq empty unless the step
// mixes an ML-KEM shared secret), 64 bytes split into the new root key and
// the new chain key.
//
// It spells out HKDF's HMAC steps (RFC 5869 §2.2–2.3) with hmacSHA256 so
// that a ratchet step does not allocate; a test checks it against
// crypto/hkdf.Key.
func RootKDF(rk *[KeySize]byte, dh, pq []byte) (newRoot, chain [KeySize]byte) {
	// HKDF-Extract: PRK = HMAC(salt = rk, dh || pq).
	prk := hmacSHA256(rk[:], dh, pq)
	// HKDF-Expand to 64 bytes: T(1) = HMAC(PRK, info || 0x01),
	// T(2) = HMAC(PRK, T(1) || info || 0x02).
	newRoot = hmacSHA256(prk[:], rootKDFInfo, []byte{1})
	chain = hmacSHA256(prk[:], newRoot[:], rootKDFInfo, []byte{2})
	clear(prk[:])
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
	seed = hmacSHA256(ck[:], []byte{chainMessageSeed})
	next = hmacSHA256(ck[:], []byte{chainNextKey})
	return next, seed
}

// messageKeyInfo is LabelMessageKey || 0x00, the start of MessageKey's
// HKDF info.
var messageKeyInfo = []byte(string(LabelMessageKey) + "\x00")

// MessageKey derives the single-use AEAD key of one message:
// HKDF-Expand(PRK = seed, info = LabelMessageKey || 0x00 || salt, L = 32).
// For L = 32 HKDF-Expand is one HMAC call, HMAC(seed, info || 0x01), which is
// what this computes; a test checks it against crypto/hkdf. Salts longer
// than about 100 bytes work but allocate; the ratchet passes 16.
func MessageKey(seed *[KeySize]byte, salt []byte) (key [KeySize]byte) {
	// The final 0x01 is HKDF-Expand's block counter for T(1).
	return hmacSHA256(seed[:], messageKeyInfo, salt, []byte{1})
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
