package primitives

import (
	"errors"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the cost parameters of Argon2id (RFC 9106 §3.1). They
// travel with whatever they protect (internal/clientdb stores them next to
// the wrapped storage key), so that costs can be raised later without
// breaking old files.
type Argon2Params struct {
	MemoryKiB   uint32 // m: memory in KiB; at least 8 × Parallelism
	Time        uint32 // t: number of passes; at least 1
	Parallelism uint8  // p: number of lanes; at least 1
}

// ErrArgon2Params reports Argon2id parameters outside RFC 9106's ranges.
var ErrArgon2Params = errors.New("primitives: invalid Argon2id parameters")

// Argon2SaltSize is the salt size Parley uses: RFC 9106 §3.1 recommends 16
// bytes for password hashing.
const Argon2SaltSize = 16

// Argon2id derives a key from a passphrase with Argon2id version 0x13
// (RFC 9106), with no secret value and no associated data.
//
// It is a thin wrapper over golang.org/x/crypto/argon2 that lives here so
// that every cryptographic import stays in this package. Unlike that
// package it refuses, instead of panicking on or silently raising,
// parameters RFC 9106 does not allow: a caller that reads them from disk
// must get an error for a corrupt value, and the parameters it records must
// be the ones actually used.
func Argon2id(passphrase, salt []byte, p Argon2Params) ([KeySize]byte, error) {
	var key [KeySize]byte
	if p.Time < 1 || p.Parallelism < 1 || uint64(p.MemoryKiB) < 8*uint64(p.Parallelism) {
		return key, ErrArgon2Params
	}
	// RFC 9106 §3.1: the salt is 8 to 2^32-1 bytes.
	if len(salt) < 8 {
		return key, ErrArgon2Params
	}
	out := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Parallelism, KeySize)
	copy(key[:], out)
	clear(out)
	return key, nil
}
