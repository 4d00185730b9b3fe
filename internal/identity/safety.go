package identity

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Safety numbers (§3.4) follow Signal's numeric fingerprint (libsignal
// NumericFingerprintGenerator, the version that identifies parties by a
// stable identifier and one identity key each):
//
//	h_0     = LabelSafetyNumber || 0x00 || uint32 len(name) || name ||
//	          uint32 len(key) || key
//	h_{i+1} = SHA-512(h_i || key)          for i = 0 … 5199
//	fingerprint = h_5200
//
// Signal starts from h_0 = uint16 version (0) || key || identifier. We put
// our domain-separation label (which carries the protocol version) in place
// of the 2-byte version and length-prefix the name and key so that h_0 is
// injective; the account public key (both hybrid halves) is the key, and the
// username is the identifier. The rest is unchanged.
const (
	// SafetyNumberIterations is Signal's iteration count: it multiplies the
	// cost of grinding keys for a number that matches a victim's.
	SafetyNumberIterations = 5200
	// safetyHalfBytes is how much of each party's fingerprint the number
	// shows: six 5-byte chunks, each shown as five decimal digits.
	safetyHalfBytes = 30
	// SafetyFingerprintSize is how much of each party's fingerprint the QR
	// code carries, as in Signal's scannable fingerprint.
	SafetyFingerprintSize = 32
	// SafetyQRSize is the size of a SafetyQR payload.
	SafetyQRSize = 1 + 2*SafetyFingerprintSize
)

// safetyFingerprint is one party's iterated hash.
func safetyFingerprint(name string, key *AccountPublicKey) [64]byte {
	pub := key.Bytes()
	h := make([]byte, 0, len(primitives.LabelSafetyNumber)+1+4+len(name)+4+len(pub)+64+len(pub))
	h = append(h, primitives.LabelSafetyNumber...)
	h = append(h, 0)
	h = binary.BigEndian.AppendUint32(h, uint32(len(name)))
	h = append(h, name...)
	h = binary.BigEndian.AppendUint32(h, uint32(len(pub)))
	h = append(h, pub...)
	var sum [64]byte
	buf := make([]byte, 0, 64+len(pub))
	for i := range SafetyNumberIterations {
		if i > 0 {
			h = append(append(buf[:0], sum[:]...), pub...)
		} else {
			h = append(h, pub...)
		}
		sum = primitives.SHA512(h)
	}
	return sum
}

// displayHalf renders the first 30 bytes of a fingerprint as six groups of
// five digits: each 5-byte chunk, big-endian, modulo 100000.
func displayHalf(fp *[64]byte) string {
	var b strings.Builder
	for i := 0; i < safetyHalfBytes; i += 5 {
		c := fp[i : i+5]
		v := uint64(c[0])<<32 | uint64(c[1])<<24 | uint64(c[2])<<16 | uint64(c[3])<<8 | uint64(c[4])
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%05d", v%100000)
	}
	return b.String()
}

// SafetyNumber returns the safety number of a conversation between account
// aName with key a and account bName with key b: 60 digits in twelve groups
// of five separated by spaces. Both parties compute the same number whatever
// the argument order: the two halves are sorted (as strings, as Signal does).
func SafetyNumber(aName string, a *AccountPublicKey, bName string, b *AccountPublicKey) string {
	fa, fb := safetyFingerprint(aName, a), safetyFingerprint(bName, b)
	ha, hb := displayHalf(&fa), displayHalf(&fb)
	if hb < ha {
		ha, hb = hb, ha
	}
	return ha + " " + hb
}

// SafetyQR returns the payload of the QR code a device shows for the
// conversation:
//
//	version (1) || fingerprint (32) || fingerprint (32)
//
// holding the first 32 bytes of both parties' fingerprints, the smaller
// first. Unlike Signal's scannable fingerprint, which is (local, remote) and
// is compared crosswise, the sorted payload is the same on both devices.
func SafetyQR(aName string, a *AccountPublicKey, bName string, b *AccountPublicKey) []byte {
	fa, fb := safetyFingerprint(aName, a), safetyFingerprint(bName, b)
	x, y := fa[:SafetyFingerprintSize], fb[:SafetyFingerprintSize]
	if string(y) < string(x) {
		x, y = y, x
	}
	out := make([]byte, 0, SafetyQRSize)
	out = append(out, wire.Version)
	out = append(out, x...)
	return append(out, y...)
}

// VerifySafetyQR checks a scanned QR payload against the keys this device
// holds for its own account and the other party's. A payload that does not
// decode is wire.ErrMalformed (or wire.ErrUnsupportedVersion); one that
// decodes but differs is ErrSafetyNumberMismatch: someone's key as this
// device sees it is not the key the other device sees.
func VerifySafetyQR(scanned []byte, ownName string, own *AccountPublicKey, theirName string, their *AccountPublicKey) error {
	const typ = "safety QR code"
	if len(scanned) == 0 {
		return wire.Malformed(typ, "empty")
	}
	if err := wire.CheckVersion(typ, scanned[0]); err != nil {
		return err
	}
	if len(scanned) != SafetyQRSize {
		return wire.Malformed(typ, fmt.Sprintf("%d bytes, want %d", len(scanned), SafetyQRSize))
	}
	want := SafetyQR(ownName, own, theirName, their)
	if !primitives.Equal(scanned, want) {
		return ErrSafetyNumberMismatch
	}
	return nil
}
