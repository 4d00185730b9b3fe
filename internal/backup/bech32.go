package backup

import (
	"errors"
	"strings"
)

// Bech32 (BIP-173), the encoding of age keys. age's own encoder is in an
// internal package, so the age identity string of a recovery key
// (derive.go) is written here; age.ParseHybridIdentity then reads it back,
// and tests check the result against age's own String methods and the
// BIP-173 test vectors.
//
// Like age, and unlike BIP-173, the encoder and decoder accept strings
// longer than 90 characters: an age1pq1 recipient is about 1960.

// bech32Charset maps 5-bit values to characters (BIP-173).
const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// bech32Generator are the coefficients of BIP-173's BCH code generator.
var bech32Generator = [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}

func bech32Polymod(values []byte) uint32 {
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i, g := range bech32Generator {
			chk ^= g & -(top >> i & 1)
		}
	}
	return chk
}

// bech32HRPValues is BIP-173's hrp_expand of a lower-case HRP.
func bech32HRPValues(hrp string) []byte {
	v := make([]byte, 0, 2*len(hrp)+1)
	for i := range len(hrp) {
		v = append(v, hrp[i]>>5)
	}
	v = append(v, 0)
	for i := range len(hrp) {
		v = append(v, hrp[i]&31)
	}
	return v
}

// bech32Char returns bech32Charset[v] without indexing by v: the values of
// an age identity are secret.
func bech32Char(v byte) byte {
	var c byte
	for i := range 32 {
		eq := byte((uint32(v^byte(i)) - 1) >> 8) // 0xff when v == i
		c |= eq & bech32Charset[i]
	}
	return c
}

// bech32Encode encodes data under a lower-case HRP of printable ASCII.
func bech32Encode(hrp string, data []byte) string {
	// Regroup 8-bit bytes as 5-bit values, zero-padding the last one.
	values := make([]byte, 0, (len(data)*8+4)/5+6)
	var acc uint32
	bits := 0
	for _, b := range data {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			values = append(values, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		values = append(values, byte(acc<<(5-bits))&31)
	}
	n := len(values)
	mod := bech32Polymod(append(append(bech32HRPValues(hrp), values...), 0, 0, 0, 0, 0, 0)) ^ 1
	for i := range 6 {
		values = append(values, byte(mod>>(5*(5-i)))&31)
	}
	var sb strings.Builder
	sb.Grow(len(hrp) + 1 + n + 6)
	sb.WriteString(hrp)
	sb.WriteByte('1')
	for _, v := range values {
		sb.WriteByte(bech32Char(v))
	}
	acc = 0
	clear(values)
	return sb.String()
}

var errBech32 = errors.New("backup: invalid bech32 string")

// bech32Decode decodes a bech32 string (all lower or all upper case) into
// its lower-case HRP and data bytes. Only tests use it, to check the
// encoder against the BIP-173 vectors.
func bech32Decode(s string) (hrp string, data []byte, err error) {
	if strings.ToLower(s) != s && strings.ToUpper(s) != s {
		return "", nil, errBech32
	}
	s = strings.ToLower(s)
	pos := strings.LastIndexByte(s, '1')
	if pos < 1 || pos+7 > len(s) {
		return "", nil, errBech32
	}
	hrp = s[:pos]
	for i := range len(hrp) {
		if hrp[i] < 33 || hrp[i] > 126 {
			return "", nil, errBech32
		}
	}
	values := make([]byte, 0, len(s)-pos-1)
	for i := pos + 1; i < len(s); i++ {
		d := strings.IndexByte(bech32Charset, s[i])
		if d < 0 {
			return "", nil, errBech32
		}
		values = append(values, byte(d))
	}
	if bech32Polymod(append(bech32HRPValues(hrp), values...)) != 1 {
		return "", nil, errBech32
	}
	values = values[:len(values)-6]
	var acc uint32
	bits := 0
	for _, v := range values {
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			data = append(data, byte(acc>>bits))
		}
	}
	// At most 4 bits of zero padding may remain (BIP-173's convertbits
	// with pad = false).
	if bits >= 5 || acc&(1<<bits-1) != 0 {
		return "", nil, errBech32
	}
	return hrp, data, nil
}
