package kt

import "slices"

// MaxVersion is the greatest version a label may have (an implementation
// limit: 16 million device-list changes per account). It keeps every
// binary ladder under 50 lookups.
const MaxVersion = 1<<24 - 1

// BinaryLadder returns the versions looked up to establish that n is the
// greatest version of a label (draft-ietf-keytrans-protocol §5 and Appendix
// B base_binary_ladder): 0, 1, 3, 7, … up to the first 2^k−1 greater than
// n, then a binary search between the last two. It always ends with n and
// n+1 both looked up: n included, n+1 not.
func BinaryLadder(n uint32) []uint32 {
	var out []uint32
	for k := 0; ; k++ {
		v := uint32(1)<<k - 1
		out = append(out, v)
		if v > n {
			break
		}
	}
	lo, hi := out[len(out)-2], out[len(out)-1]
	for lo+1 < hi {
		v := (lo + hi) / 2
		out = append(out, v)
		if v <= n {
			lo = v
		} else {
			hi = v
		}
	}
	return out
}

// fixedLookups is the ladder for greatest n, then version t if the ladder
// does not already look it up.
func fixedLookups(n, t uint32) []uint32 {
	l := BinaryLadder(n)
	if !slices.Contains(l, t) {
		l = append(l, t)
	}
	return l
}

// monitorLookups is the ladder for greatest n, then every version from
// from to n that the ladder does not look up, ascending.
func monitorLookups(n, from uint32) []uint32 {
	l := BinaryLadder(n)
	for v := from; v <= n; v++ {
		if !slices.Contains(l, v) {
			l = append(l, v)
		}
	}
	return l
}
