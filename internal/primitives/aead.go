package primitives

import (
	"crypto/aes"
	"crypto/cipher"
)

// AES-256-GCM parameters.
const (
	AEADKeySize   = 32
	AEADNonceSize = 12
	AEADOverhead  = 16
)

// zeroNonce is the nonce of single-use keys: each such key encrypts exactly
// one message, so a fixed nonce never repeats under one key (as in age's
// payload and HPKE's export-only use).
var zeroNonce [AEADNonceSize]byte

func newGCM(key *[AEADKeySize]byte) cipher.AEAD {
	b, err := aes.NewCipher(key[:])
	if err != nil {
		panic("parley: internal error: AES: " + err.Error())
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic("parley: internal error: GCM: " + err.Error())
	}
	return g
}

// SealSingleUse encrypts plaintext with AES-256-GCM under a key that the
// caller guarantees is used for this one message only (the nonce is fixed).
// It appends the ciphertext and tag to dst.
func SealSingleUse(key *[AEADKeySize]byte, dst, plaintext, ad []byte) []byte {
	return newGCM(key).Seal(dst, zeroNonce[:], plaintext, ad)
}

// OpenSingleUse reverses SealSingleUse. Every failure is ErrDecrypt.
func OpenSingleUse(key *[AEADKeySize]byte, dst, ciphertext, ad []byte) ([]byte, error) {
	out, err := newGCM(key).Open(dst, zeroNonce[:], ciphertext, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

// Seal encrypts plaintext with AES-256-GCM under a key that may protect many
// messages: the nonce is random and prepended. Keep each key under 2^32
// messages.
func Seal(key *[AEADKeySize]byte, dst, plaintext, ad []byte) []byte {
	var nonce [AEADNonceSize]byte
	Random(nonce[:])
	dst = append(dst, nonce[:]...)
	return newGCM(key).Seal(dst, nonce[:], plaintext, ad)
}

// Open reverses Seal. Every failure is ErrDecrypt.
func Open(key *[AEADKeySize]byte, dst, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < AEADNonceSize+AEADOverhead {
		return nil, ErrDecrypt
	}
	out, err := newGCM(key).Open(dst, sealed[:AEADNonceSize], sealed[AEADNonceSize:], ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}
