package provision

import (
	"strconv"
	"strings"

	"github.com/parleyim/parley/internal/wire"
)

// The code (§9.2) is the mailbox address as the person types it on E:
// 128 address bits followed by a 12-bit CRC of the address, 140 bits in 28
// base32 characters (RFC 4648 alphabet, lower case, no padding), written in
// seven groups of four joined by dashes:
//
//	abcd-efgh-ijkl-mnop-qrst-uvwx-yz23
//
// The CRC is CRC-12/DECT (generator x^12+x^11+x^3+x^2+x+1, i.e. 0x80F,
// initial value 0, not reflected, no final XOR), computed over the 16 address
// bytes. A CRC of degree 12 detects every error confined to 12 consecutive
// bits of the 140, so every single mistyped character (5 bits) and every
// swap of two neighbouring characters (10 bits) is caught with certainty,
// and other typos with probability 1 − 2^−12, before any network call. A
// hash-based check would only catch each typo with that probability.

const base32Alphabet = "abcdefghijklmnopqrstuvwxyz234567"

// crc12 is CRC-12/DECT over data, bit by bit (16 bytes: no need for a
// table).
func crc12(data []byte) uint16 {
	const poly = 0x80F
	var crc uint16
	for _, b := range data {
		for i := 7; i >= 0; i-- {
			bit := (b>>i)&1 ^ byte(crc>>11)&1
			crc = (crc << 1) & 0xFFF
			if bit != 0 {
				crc ^= poly & 0xFFF
			}
		}
	}
	return crc
}

// Code returns the code of the offer's address.
func (o *Offer) Code() string { return Code(o.Address()) }

// Code returns the code of a mailbox address.
func Code(addr [AddressSize]byte) string {
	// 140 bits: the address, then the CRC in the low 12 bits.
	var bits [18]byte // 144 bits, the last 4 unused
	copy(bits[:], addr[:])
	c := crc12(addr[:])
	bits[16] = byte(c >> 4)
	bits[17] = byte(c << 4)
	var sb strings.Builder
	for i := range codeLen {
		if i > 0 && i%codeGroup == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(base32Alphabet[get5(bits[:], i*5)])
	}
	return sb.String()
}

// get5 reads the 5 bits starting at bit offset off (big-endian).
func get5(b []byte, off int) byte {
	v := uint16(b[off/8])<<8 | uint16(b[off/8+1])
	return byte(v>>(11-off%8)) & 0x1F
}

// ParseCode reads a code as a person typed it: upper or lower case, with or
// without dashes and spaces. A typo is a *CodeError.
func ParseCode(s string) ([AddressSize]byte, error) {
	var addr [AddressSize]byte
	var vals []byte
	for _, r := range s {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			continue
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		}
		i := strings.IndexRune(base32Alphabet, r)
		if i < 0 {
			return addr, &CodeError{Reason: "it contains " + strconv.QuoteRune(r) + ", which is not in a code (letters and the digits 2 to 7)"}
		}
		vals = append(vals, byte(i))
		if len(vals) > codeLen {
			break
		}
	}
	if len(vals) != codeLen {
		return addr, &CodeError{Reason: "a code has " + strconv.Itoa(codeLen) + " letters and digits"}
	}
	var bits [18]byte
	for i, v := range vals {
		off := i * 5
		w := uint16(v) << (11 - off%8)
		bits[off/8] |= byte(w >> 8)
		bits[off/8+1] |= byte(w)
	}
	copy(addr[:], bits[:AddressSize])
	got := uint16(bits[16])<<4 | uint16(bits[17])>>4
	if got != crc12(addr[:]) {
		return [AddressSize]byte{}, &CodeError{Reason: "it has a typo"}
	}
	return addr, nil
}

// qrPrefix starts a QR payload; the digit is the wire version.
const qrPrefix = "PARLEY"

// QR returns the QR payload of the offer's address: "PARLEY1:" and the
// code in upper case, e.g. "PARLEY1:ABCD-EFGH-…" (42 characters). Upper
// case keeps it in the QR alphanumeric mode, a version 2 symbol. The whole
// offer (3245 bytes or more, most of it the 1216-byte HPKE key and the
// 2017-byte device keys) does not fit a QR code a phone reads reliably, and
// need not: the address commits to the offer (Offer.Address), so the
// scanner fetches the offer and VerifyOffer checks it, exactly as for a
// typed code.
func (o *Offer) QR() string {
	return qrPrefix + strconv.Itoa(int(wire.Version)) + ":" + strings.ToUpper(o.Code())
}

// ParseQR reads a scanned QR payload. Another version is
// wire.ErrUnsupportedVersion; anything else that is not a payload is a
// *CodeError.
func ParseQR(s string) ([AddressSize]byte, error) {
	head, code, ok := strings.Cut(s, ":")
	if !ok || len(head) <= len(qrPrefix) || !strings.EqualFold(head[:len(qrPrefix)], qrPrefix) {
		return [AddressSize]byte{}, &CodeError{Reason: "not a Parley link QR code"}
	}
	digits := head[len(qrPrefix):]
	v, err := strconv.ParseUint(digits, 10, 8)
	if err != nil || strconv.FormatUint(v, 10) != digits {
		return [AddressSize]byte{}, &CodeError{Reason: "not a Parley link QR code"}
	}
	if err := wire.CheckVersion("link QR code", byte(v)); err != nil {
		return [AddressSize]byte{}, err
	}
	return ParseCode(code)
}
