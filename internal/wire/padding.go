package wire

import (
	"fmt"
	"math/bits"
)

// Plaintext padding (docs/protocol.md §7.3). Before encryption every message
// body is padded so that its length reveals only a bucket:
//
//   - at least MinPaddedSize bytes, so that short chat messages all look alike;
//   - above that, the Padmé rule (Nikitin et al., "Reducing Metadata Leakage
//     from Encrypted Files and Communication with PURBs", PETS 2019): the
//     length is rounded up so that only its top ⌊log2 E⌋+1 bits may be set,
//     E = ⌊log2 L⌋; this leaks O(log log L) bits at most ~12% overhead.
//
// The padding itself is ISO/IEC 7816-4: one 0x80 byte then zeros.
const (
	MinPaddedSize = 256
	// MaxPlaintextSize is the largest message body a client pads. Larger
	// payloads are attachments (a later issue).
	MaxPlaintextSize = 256 << 10
)

// ErrPlaintextTooLarge reports a body over MaxPlaintextSize.
var ErrPlaintextTooLarge = fmt.Errorf("wire: message body is larger than %d bytes; send it as an attachment", MaxPlaintextSize)

// errBadPadding is returned for padding that does not follow §7.3.
var errBadPadding = Malformed("padding", "not the canonical padding of any body")

// PaddedSize returns the bucket length for a body of n bytes.
func PaddedSize(n int) int {
	l := n + 1 // the 0x80 marker
	if l <= MinPaddedSize {
		return MinPaddedSize
	}
	e := bits.Len(uint(l)) - 1 // ⌊log2 L⌋
	s := bits.Len(uint(e))     // ⌊log2 E⌋ + 1
	lastBits := e - s          // low bits that must be zero
	mask := (1 << lastBits) - 1
	return (l + mask) &^ mask
}

// Pad appends the padded form of body to dst.
func Pad(dst, body []byte) ([]byte, error) {
	if len(body) > MaxPlaintextSize {
		return nil, ErrPlaintextTooLarge
	}
	size := PaddedSize(len(body))
	dst = append(dst, body...)
	dst = append(dst, 0x80)
	return append(dst, make([]byte, size-len(body)-1)...), nil
}

// Unpad returns the body inside padded. Its input is already authenticated,
// so the scan's timing is no oracle.
func Unpad(padded []byte) ([]byte, error) {
	for i := len(padded) - 1; i >= 0; i-- {
		switch padded[i] {
		case 0:
			continue
		case 0x80:
			// Canonical: exactly the bucket Pad would have chosen, for a
			// body Pad would have accepted (bodies just over
			// MaxPlaintextSize share its bucket).
			if i > MaxPlaintextSize || PaddedSize(i) != len(padded) {
				return nil, errBadPadding
			}
			return padded[:i], nil
		default:
			return nil, errBadPadding
		}
	}
	return nil, errBadPadding
}
