package primitives

import "errors"

var (
	// ErrInvalidKey reports a public or private key whose encoding is malformed.
	ErrInvalidKey = errors.New("primitives: invalid key encoding")
	// ErrLowOrderPoint reports an X25519 exchange whose result is all zeros:
	// the peer sent a low-order point (RFC 7748 §6.1).
	ErrLowOrderPoint = errors.New("primitives: X25519 peer key is a low-order point")
	// ErrDecrypt is the single opaque failure of AEAD opening and KEM
	// decapsulation: it never says why, so it is no oracle.
	ErrDecrypt = errors.New("primitives: message authentication failed")
	// ErrSignature reports a hybrid signature in which either component
	// fails to verify.
	ErrSignature = errors.New("primitives: signature verification failed")
)
