// Package wire holds the pieces every Parley encoding shares, as specified
// in docs/protocol.md §7: the version byte, the envelope, the decode error
// and plaintext padding. Each protocol package encodes its own messages with
// golang.org/x/crypto/cryptobyte following the rules in §7.1: big-endian
// integers, fixed-size fields checked, variable fields length-prefixed, no
// trailing bytes, unknown versions and flags refused, so that decoding then
// encoding gives back exactly the same bytes.
package wire

import (
	"errors"
	"fmt"
)

// Version is the only wire version this code speaks; every top-level
// encoding starts with it.
const Version byte = 1

// ErrMalformed is matched (with errors.Is) by every decoding failure.
var ErrMalformed = errors.New("wire: malformed encoding")

// DecodeError says which encoding was malformed and how. It never contains
// the input bytes.
type DecodeError struct {
	Type   string // the encoding, e.g. "bundle"
	Reason string // what was wrong, e.g. "trailing bytes"
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("wire: malformed %s: %s", e.Type, e.Reason)
}

// Is makes errors.Is(err, ErrMalformed) true.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

// Malformed returns a *DecodeError.
func Malformed(typ, reason string) error { return &DecodeError{Type: typ, Reason: reason} }

// ErrUnsupportedVersion is matched by decoders that meet a version byte other
// than Version: the peer runs a newer (or broken) client.
var ErrUnsupportedVersion = errors.New("wire: unsupported version; update parley")

// CheckVersion returns an error wrapping ErrUnsupportedVersion unless v is
// Version.
func CheckVersion(typ string, v byte) error {
	if v != Version {
		return fmt.Errorf("%w: %s version %d (this client speaks %d)", ErrUnsupportedVersion, typ, v, Version)
	}
	return nil
}
