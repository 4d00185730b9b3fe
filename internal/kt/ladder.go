package kt

import "slices"

// MaxVersion is the greatest version a label may have (an implementation
// limit: 16 million device-list changes per account). It keeps every
// binary ladder under 50 lookups.
const MaxVersion = 1<<24 - 1

// Rung returns the i-th rung of Parley's binary ladder
// (docs/transparency.md §5): 0, 1, 5, 7, 8, then the powers of two from
// 16. The draft's base ladder uses 0, 1, 3, 7, 15, …; these rungs are
// spaced 4, 2, 1 below 8 so that every ladder up to version 7 has at most
// four lookups, and from 8 on no ladder is longer than the draft's.
func Rung(i int) uint32 {
	switch i {
	case 0:
		return 0
	case 1:
		return 1
	case 2:
		return 5
	case 3:
		return 7
	}
	return 8 << (i - 4)
}

// BinaryLadder returns the versions looked up to establish that n is the
// greatest version of a label, in order (docs/transparency.md §5): the
// rungs from 1 up to the first one greater than n (with 0 first when n is
// 0), then a binary search between the last rung at most n and that one.
// It always looks up n (included) and n+1 (not included). For n = 6: 1,
// 5, 7, 6. Above MaxVersion there is no ladder: it returns nil.
func BinaryLadder(n uint32) []uint32 {
	if n > MaxVersion {
		return nil
	}
	out := make([]uint32, 0, 8)
	if n == 0 {
		out = append(out, 0)
	}
	i := 1
	for ; ; i++ {
		out = append(out, Rung(i))
		if Rung(i) > n {
			break
		}
	}
	lo, hi := Rung(i-1), Rung(i)
	for lo+1 < hi {
		v := lo + (hi-lo)/2
		out = append(out, v)
		if v <= n {
			lo = v
		} else {
			hi = v
		}
	}
	return out
}

// AbsentLookups are the versions whose absence proves that a label has no
// version at all: 0, and 1, which every ladder of a greatest version of 1
// or more looks up (the conflict with those is at 1, not 0).
func AbsentLookups() []uint32 { return []uint32{0, 1} }

// FixedLadder returns the versions a fixed-version search of t looks up
// in a tree whose greatest version is n (t ≤ n ≤ MaxVersion, else nil):
// draft-ietf-keytrans-protocol-06's search binary ladder, with Parley's
// rungs. It walks BinaryLadder(t) and stops at the first version greater
// than t that is in the tree (at most n): from there on the ladders of t
// and of n differ. Then it looks up t if the walk did not. When t = n it
// is BinaryLadder(n).
func FixedLadder(t, n uint32) []uint32 {
	if t > n || n > MaxVersion {
		return nil
	}
	return fixedWalk(t, func(_ int, v uint32) bool { return v <= n })
}

// fixedWalk is FixedLadder given whether the i-th lookup (version v) is
// in the tree.
func fixedWalk(t uint32, included func(i int, v uint32) bool) []uint32 {
	var out []uint32
	for i, v := range BinaryLadder(t) {
		out = append(out, v)
		if v > t && included(i, v) {
			break
		}
	}
	if out != nil && !slices.Contains(out, t) {
		out = append(out, t)
	}
	return out
}

// monitorLookups is the ladder for greatest n, then every version from
// from to n that the ladder does not look up, ascending (nil unless
// n ≤ MaxVersion and from..n is at most MaxMonitorVersions versions).
func monitorLookups(n, from uint32) []uint32 {
	l := BinaryLadder(n)
	if l == nil || from > n+1 || n+1-from > MaxMonitorVersions {
		return nil
	}
	for v := from; v <= n; v++ {
		if !slices.Contains(l, v) {
			l = append(l, v)
		}
	}
	return l
}
