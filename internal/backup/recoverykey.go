package backup

import (
	"errors"
	"fmt"
	"unicode"

	"github.com/parleyim/parley/internal/primitives"
)

// RecoveryKeySize is the size of a recovery key.
const RecoveryKeySize = 32

// The written form of a recovery key (docs/backup.md §3): 15 groups of 4
// Crockford base32 characters. Each group is one symbol of a Reed–Solomon
// code over GF(2^20): 13 data groups carry the 256 key bits and 4 zero bits,
// 2 check groups make the code's minimum distance 3. So any error confined
// to one group — a mistyped character, two characters swapped, a whole
// group wrong — is detected and located, and any error in two groups is
// detected.
const (
	groupSize      = 4                                         // characters per group
	dataGroups     = 13                                        // ⌈(256 + 0) / 20⌉
	checkGroups    = 2                                         // distance 3
	keyGroups      = dataGroups + checkGroups                  // 15
	keyChars       = keyGroups * groupSize                     // 60
	symbolBits     = 5 * groupSize                             // 20
	padBits        = dataGroups*symbolBits - 8*RecoveryKeySize // 4
	fieldPoly      = 1<<20 | 1<<3 | 1                          // x^20 + x^3 + 1, primitive
	recoveryKeyLen = keyChars + keyGroups - 1                  // with the dashes: 74
)

// ErrRecoveryKeyTypo is matched (errors.Is) by every error of
// ParseRecoveryKey: what was typed is not a recovery key.
var ErrRecoveryKeyTypo = errors.New("backup: the recovery key has a typo")

// RecoveryKeyError says what is wrong with a typed recovery key, and which
// group looks wrong when that can be told. It never contains the key.
type RecoveryKeyError struct {
	// Group is the 1-based group (of 4 characters, counted from the left)
	// that looks wrong, or 0 when the error cannot be pinned to one group.
	Group  int
	Reason string
}

func (e *RecoveryKeyError) Error() string {
	if e.Group > 0 {
		return fmt.Sprintf("backup: recovery key: group %d looks wrong: %s", e.Group, e.Reason)
	}
	return "backup: recovery key: " + e.Reason
}

// Is makes errors.Is(err, ErrRecoveryKeyTypo) true.
func (e *RecoveryKeyError) Is(target error) bool { return target == ErrRecoveryKeyTypo }

// RecoveryKey is the one secret that opens a user's backups: it derives the
// age identity the archive is encrypted to, the locator the server stores
// it under and the key ID that names its generation (derive.go). It is
// generated on the device, shown once and never sent anywhere.
type RecoveryKey [RecoveryKeySize]byte

// NewRecoveryKey returns a fresh random recovery key.
func NewRecoveryKey() RecoveryKey {
	var k RecoveryKey
	primitives.Random(k[:])
	return k
}

// String returns the written form shown to the user, e.g.
// "7Q2M-...-XR4D": 15 groups of 4 upper-case Crockford base32 characters
// joined by dashes (74 characters). It is the secret itself: never log it.
func (k RecoveryKey) String() string {
	syms := k.symbols()
	b := make([]byte, 0, recoveryKeyLen)
	for g, s := range syms {
		if g > 0 {
			b = append(b, '-')
		}
		for i := groupSize - 1; i >= 0; i-- {
			b = append(b, crockfordChar(byte(s>>(5*i))&31))
		}
	}
	clear(syms[:])
	return string(b)
}

// symbols returns the 15 code symbols of k: the key bits MSB first and 4
// zero bits as 13 data symbols, then the 2 check symbols.
func (k RecoveryKey) symbols() [keyGroups]uint32 {
	var syms [keyGroups]uint32
	var acc uint64
	bits, n := 0, 0
	for _, b := range k {
		acc = acc<<8 | uint64(b)
		bits += 8
		for bits >= symbolBits {
			bits -= symbolBits
			syms[n] = uint32(acc>>bits) & (1<<symbolBits - 1)
			n++
		}
	}
	// 256 = 12·20 + 16: the last data symbol is 16 key bits and the 4
	// zero pad bits.
	syms[n] = uint32(acc<<padBits) & (1<<symbolBits - 1)
	acc = 0
	syms[dataGroups], syms[dataGroups+1] = checkSymbols(syms[:dataGroups])
	return syms
}

// ParseRecoveryKey reads a recovery key as the user typed it. It ignores
// case, dashes and white space, and reads the Crockford look-alikes O as 0
// and I and L as 1. Every failure is a *RecoveryKeyError (errors.Is
// ErrRecoveryKeyTypo); it names the group that looks wrong whenever the
// error is confined to one group.
func ParseRecoveryKey(s string) (RecoveryKey, error) {
	var k RecoveryKey
	chars := make([]byte, 0, keyChars)
	// typed records the length of each group as separated by the user, to
	// point at a short or long group.
	var typed []int
	run := 0
	for _, r := range s {
		if r == '-' || unicode.IsSpace(r) {
			if run > 0 {
				typed = append(typed, run)
			}
			run = 0
			continue
		}
		if r >= 0x80 {
			return k, &RecoveryKeyError{Group: groupOf(len(chars)), Reason: fmt.Sprintf("%q is not a recovery key character", r)}
		}
		chars = append(chars, byte(r))
		run++
	}
	if run > 0 {
		typed = append(typed, run)
	}
	defer clear(chars)
	if len(chars) != keyChars {
		e := &RecoveryKeyError{Reason: fmt.Sprintf("%d characters where a recovery key has %d (15 groups of 4)", len(chars), keyChars)}
		// Typed as 15 groups with one of the wrong length: name it.
		if len(typed) == keyGroups {
			var odd []int
			for i, n := range typed {
				if n != groupSize {
					odd = append(odd, i+1)
				}
			}
			if len(odd) == 1 {
				e.Group = odd[0]
				e.Reason = fmt.Sprintf("it has %d characters instead of %d", typed[odd[0]-1], groupSize)
			}
		}
		return k, e
	}
	var syms [keyGroups]uint32
	defer clear(syms[:])
	for i, c := range chars {
		v, ok := crockfordValue(c)
		if !ok {
			return k, &RecoveryKeyError{Group: groupOf(i), Reason: fmt.Sprintf("%q is not a recovery key character", c)}
		}
		syms[i/groupSize] = syms[i/groupSize]<<5 | uint32(v)
	}
	s1, s2 := syndromes(syms[:])
	if s1|s2 != 0 {
		return k, &RecoveryKeyError{Group: locate(s1, s2), Reason: "the check groups do not match; check what you typed"}
	}
	if syms[dataGroups-1]&(1<<padBits-1) != 0 {
		return k, &RecoveryKeyError{Reason: "this is not a recovery key"}
	}
	// Unpack the 256 key bits.
	var acc uint64
	bits, n := 0, 0
	for _, s := range syms[:dataGroups] {
		acc = acc<<symbolBits | uint64(s)
		bits += symbolBits
		for bits >= 8 && n < RecoveryKeySize {
			bits -= 8
			k[n] = byte(acc >> bits)
			n++
		}
	}
	return k, nil
}

// groupOf returns the 1-based group of the character at position i of the
// key without separators, or 0 past the end of a key.
func groupOf(i int) int {
	if i >= keyChars {
		return 0
	}
	return i/groupSize + 1
}

// --- Crockford base32, without indexing tables by secret characters ---

// ltMask returns 0xff if a < b and 0 otherwise, for a, b < 256.
func ltMask(a, b byte) byte { return byte((uint32(a) - uint32(b)) >> 8) }

// crockfordChar maps 0..31 to "0123456789ABCDEFGHJKMNPQRSTVWXYZ": the
// offset from '0' grows by 7 past 9 (to reach 'A') and by 1 past each
// skipped letter I, L, O and U.
func crockfordChar(v byte) byte {
	c := '0' + v
	c += 7 & ^ltMask(v, 10)
	c += 1 & ^ltMask(v, 18) // skip I
	c += 1 & ^ltMask(v, 20) // skip L
	c += 1 & ^ltMask(v, 22) // skip O
	c += 1 & ^ltMask(v, 27) // skip U
	return c
}

// inRange returns 0xff if lo ≤ c ≤ hi.
func inRange(c, lo, hi byte) byte { return ^ltMask(c, lo) & ^ltMask(hi, c) }

// crockfordValue is the inverse of crockfordChar, case-insensitive, with O
// read as 0 and I and L as 1 (Crockford's decoding rules). U and anything
// else is invalid.
func crockfordValue(c byte) (byte, bool) {
	c &^= 0x20 & inRange(c, 'a', 'z') // upper-case letters only
	var v, ok byte
	add := func(m, val byte) { v |= m & val; ok |= m }
	add(inRange(c, '0', '9'), c-'0')
	add(inRange(c, 'A', 'H'), c-'A'+10)
	add(inRange(c, 'J', 'K'), c-'J'+18)
	add(inRange(c, 'M', 'N'), c-'M'+20)
	add(inRange(c, 'P', 'T'), c-'P'+22)
	add(inRange(c, 'V', 'Z'), c-'V'+27)
	add(inRange(c, 'O', 'O'), 0)
	add(inRange(c, 'I', 'I')|inRange(c, 'L', 'L'), 1)
	return v, ok != 0
}

// --- the Reed–Solomon check over GF(2^20) ---
//
// A word c_0..c_14 is valid when both syndromes
//
//	S1 = Σ c_i·α^i   and   S2 = Σ c_i·α^(2i)
//
// are zero, with α = x a primitive element of GF(2^20) = GF(2)[x]/(x^20 +
// x^3 + 1). Any two columns (α^i, α^(2i)) of this parity-check matrix are
// independent, so the code has minimum distance 3: one wrong symbol e at
// position j gives S1 = e·α^j and S2 = e·α^(2j), hence S2/S1 = α^j names
// the group. Two or more wrong symbols never give zero syndromes with fewer
// than 3 errors, and name a valid position only by chance (15 of 2^20 − 1
// values).

// gfMul multiplies in GF(2^20) by shift-and-add with masks.
func gfMul(a, b uint32) uint32 {
	var p uint32
	for range symbolBits {
		p ^= a & -(b & 1)
		b >>= 1
		a <<= 1
		a ^= fieldPoly & -(a >> symbolBits)
	}
	return p
}

// gfInv returns a^(2^20−2), the inverse of a ≠ 0.
func gfInv(a uint32) uint32 {
	r := uint32(1)
	for i := symbolBits - 1; i >= 0; i-- {
		r = gfMul(r, r)
		if (1<<symbolBits-2)>>i&1 == 1 {
			r = gfMul(r, a)
		}
	}
	return r
}

// alphaPow[i] = α^i for the 2·15 exponents the code uses.
var alphaPow = func() [2 * keyGroups]uint32 {
	var p [2 * keyGroups]uint32
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = gfMul(p[i-1], 2)
	}
	return p
}()

func syndromes(syms []uint32) (s1, s2 uint32) {
	for i, c := range syms {
		s1 ^= gfMul(c, alphaPow[i])
		s2 ^= gfMul(c, alphaPow[2*i])
	}
	return s1, s2
}

// checkSymbols returns c13, c14 that make the syndromes of data || c13 ||
// c14 zero: with A, B the syndromes of the data alone, they solve
//
//	c13·α^13 + c14·α^14 = A
//	c13·α^26 + c14·α^28 = B
//
// (minus is plus in characteristic 2), by Cramer's rule.
func checkSymbols(data []uint32) (c13, c14 uint32) {
	a, b := syndromes(data)
	p := dataGroups
	det := gfMul(alphaPow[p], alphaPow[2*(p+1)]) ^ gfMul(alphaPow[p+1], alphaPow[2*p])
	inv := gfInv(det)
	c13 = gfMul(gfMul(a, alphaPow[2*(p+1)])^gfMul(b, alphaPow[p+1]), inv)
	c14 = gfMul(gfMul(b, alphaPow[p])^gfMul(a, alphaPow[2*p]), inv)
	return c13, c14
}

// locate returns the 1-based group of a single wrong symbol with syndromes
// s1, s2, or 0 if they are not those of a single error.
func locate(s1, s2 uint32) int {
	if s1 == 0 || s2 == 0 {
		return 0
	}
	x := gfMul(s2, gfInv(s1))
	for j := range keyGroups {
		if alphaPow[j] == x {
			return j + 1
		}
	}
	return 0
}
