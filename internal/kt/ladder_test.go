package kt

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

// pyBaseBinaryLadder transcribes the draft's Appendix B base_binary_ladder
// literally: the ladder Parley's replaces, which its lengths are compared
// with.
func pyBaseBinaryLadder(n int) []int {
	var out []int
	for {
		value := (1 << len(out)) - 1
		out = append(out, value)
		if value > n {
			break
		}
	}
	lower, upper := out[len(out)-2], out[len(out)-1]
	for lower+1 < upper {
		value := (lower + upper) / 2
		out = append(out, value)
		if value <= n {
			lower = value
		} else {
			upper = value
		}
	}
	return out
}

// refLadder is docs/transparency.md §5's definition written out
// independently: the rungs as a list, the interval [lo, hi) holding n
// found by scanning it, then the same binary search.
func refLadder(n uint64) []uint64 {
	rungs := []uint64{0, 1, 5, 7, 8}
	for r := uint64(16); r <= 1<<25; r *= 2 {
		rungs = append(rungs, r)
	}
	var out []uint64
	i := 1
	for rungs[i] <= n {
		i++
	}
	if i == 1 {
		out = append(out, 0)
	}
	out = append(out, rungs[1:i+1]...)
	lo, hi := rungs[i-1], rungs[i]
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

func TestBinaryLadder(t *testing.T) {
	for n, want := range [][]uint32{
		0: {0, 1},
		1: {1, 5, 3, 2},
		2: {1, 5, 3, 2},
		3: {1, 5, 3, 4},
		4: {1, 5, 3, 4},
		5: {1, 5, 7, 6},
		6: {1, 5, 7, 6},
		7: {1, 5, 7, 8},
		8: {1, 5, 7, 8, 16, 12, 10, 9},
	} {
		if got := BinaryLadder(uint32(n)); !slices.Equal(got, want) {
			t.Errorf("BinaryLadder(%d) = %v, want %v", n, got, want)
		}
	}
	check := func(n uint32) {
		got := BinaryLadder(n)
		want := refLadder(uint64(n))
		if len(got) != len(want) {
			t.Fatalf("BinaryLadder(%d) = %v, want %v", n, got, want)
		}
		for i := range got {
			if uint64(got[i]) != want[i] {
				t.Fatalf("BinaryLadder(%d) = %v, want %v", n, got, want)
			}
		}
		if !slices.Contains(got, n) || !slices.Contains(got, n+1) {
			t.Fatalf("BinaryLadder(%d) lacks n or n+1: %v", n, got)
		}
		c := slices.Clone(got)
		slices.Sort(c)
		if len(slices.Compact(c)) != len(got) {
			t.Fatalf("BinaryLadder(%d) repeats a version: %v", n, got)
		}
		// Never longer than the draft's base ladder.
		if n < 1<<20 {
			if base := pyBaseBinaryLadder(int(n)); len(got) > len(base) {
				t.Fatalf("BinaryLadder(%d) has %d lookups, the base ladder %d", n, len(got), len(base))
			}
		}
		// The point of the rungs: at most four lookups up to version 7.
		if n <= 7 && len(got) > 4 {
			t.Fatalf("BinaryLadder(%d) has %d lookups", n, len(got))
		}
		if len(got) > 50 {
			t.Fatalf("BinaryLadder(%d) has %d lookups", n, len(got))
		}
	}
	for n := uint32(0); n <= 5000; n++ {
		check(n)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		check(r.Uint32N(MaxVersion + 1))
	}
	for k := 3; k <= 24; k++ {
		check(1<<k - 1)
		check(1 << k & MaxVersion)
	}
	check(MaxVersion)
	if l := BinaryLadder(MaxVersion + 1); l != nil {
		t.Fatalf("ladder above MaxVersion: %v", l)
	}
	if l := BinaryLadder(^uint32(0)); l != nil {
		t.Fatalf("ladder of 2^32-1: %v", l)
	}
}

// ladderOf is the lookups of a greatest-version claim: BinaryLadder(n),
// or AbsentLookups for n = -1 (no version).
func ladderOf(n int) []uint32 {
	if n < 0 {
		return AbsentLookups()
	}
	return BinaryLadder(uint32(n))
}

// TestLaddersConflict is the argument of docs/transparency.md §5 made
// exhaustive for small versions and sampled up to MaxVersion: for any two
// different claims a < b (a = -1 is "no version"), some version m with
// a < m ≤ b is looked up by both ladders — absent under a, included under
// b — so one tree cannot satisfy both.
func TestLaddersConflict(t *testing.T) {
	conflict := func(a, b int) bool {
		lb := ladderOf(b)
		for _, m := range ladderOf(a) {
			if int(m) > a && int(m) <= b && slices.Contains(lb, m) {
				return true
			}
		}
		return false
	}
	for a := -1; a < 1100; a++ {
		for b := a + 1; b < 1100; b++ {
			if !conflict(a, b) {
				t.Fatalf("ladders of %d and %d share no conflicting version", a, b)
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		a, b := int(r.Uint32N(MaxVersion+1)), int(r.Uint32N(MaxVersion+1))
		if a > b {
			a, b = b, a
		}
		if a != b && !conflict(a, b) {
			t.Fatalf("ladders of %d and %d share no conflicting version", a, b)
		}
	}
}

// verifiesAgainst reports whether the claim that n is the greatest version
// (-1: none) is consistent with a tree holding exactly the versions in
// present: every lookup at most n included, every other one absent.
func verifiesAgainst(lookups []uint32, n int, present func(uint32) bool) bool {
	for _, v := range lookups {
		if present(v) != (int(v) <= n) {
			return false
		}
	}
	return true
}

// TestLadderPinsGreatest checks the property itself rather than the
// argument: for every set of versions below 15 a label can have in one
// tree (holes included), at most one greatest-version claim verifies, so
// two clients — or a client and the owner — cannot be shown different
// greatest versions in one epoch. A claim of 15 or more cannot verify (its
// ladder looks up itself). It also shows why an absent label's proof
// looks up 1 as well as 0: with 0 alone, a tree holding only version 1
// would let "no version" and "greatest 1" both verify.
func TestLadderPinsGreatest(t *testing.T) {
	const k = 15
	for set := 0; set < 1<<k; set++ {
		present := func(v uint32) bool { return v < k && set&(1<<v) != 0 }
		verified := -2
		for n := -1; n < k; n++ {
			if !verifiesAgainst(ladderOf(n), n, present) {
				continue
			}
			if verified != -2 {
				t.Fatalf("versions %015b: greatest %d and %d both verify", set, verified, n)
			}
			verified = n
		}
	}
	onlyOne := func(v uint32) bool { return v == 1 }
	if !verifiesAgainst([]uint32{0}, -1, onlyOne) || !verifiesAgainst(BinaryLadder(1), 1, onlyOne) {
		t.Fatal("the counterexample for an absent proof of version 0 alone no longer holds")
	}
	if verifiesAgainst(AbsentLookups(), -1, onlyOne) {
		t.Fatal("the absent proof verifies against a tree holding version 1")
	}
}

func TestFixedLadder(t *testing.T) {
	for _, c := range []struct {
		t, n uint32
		want []uint32
	}{
		{0, 0, []uint32{0, 1}},
		{0, 9, []uint32{0, 1}},       // 1 is in the tree: 0 is not the greatest
		{2, 9, []uint32{1, 5, 2}},    // stops at 5, then looks up 2
		{2, 3, []uint32{1, 5, 3, 2}}, // 5 absent, 3 present: stops there
		{2, 2, []uint32{1, 5, 3, 2}}, // the ladder of 2
		{6, 100, []uint32{1, 5, 7, 6}},
		{8, 9, []uint32{1, 5, 7, 8, 16, 12, 10, 9}},
		{8, 1000, []uint32{1, 5, 7, 8, 16}},
	} {
		if got := FixedLadder(c.t, c.n); !slices.Equal(got, c.want) {
			t.Errorf("FixedLadder(%d, %d) = %v, want %v", c.t, c.n, got, c.want)
		}
	}
	for n := uint32(0); n < 300; n++ {
		for v := uint32(0); v <= n; v++ {
			got, full := FixedLadder(v, n), BinaryLadder(v)
			if !slices.Contains(got, v) || len(got) > len(full) {
				t.Fatalf("FixedLadder(%d, %d) = %v, ladder of %d %v", v, n, got, v, full)
			}
			if v == n && !slices.Equal(got, full) {
				t.Fatalf("FixedLadder(%d, %d) = %v, not the ladder", v, n, got)
			}
		}
	}
	if FixedLadder(3, 2) != nil || FixedLadder(0, MaxVersion+1) != nil {
		t.Fatal("FixedLadder out of range")
	}
}

// TestFixedSearchStaysInMonitoredVersions: for every set of versions below
// 15 a label can have in one tree (holes included) and every target, if
// the fixed-version search verifies (every looked-up version up to the
// target is in the tree; the ladder stops at the first one above it that
// is), then no greatest-version claim below the target verifies. So a
// fixed search cannot serve a version above the greatest that searches
// and the owner's monitoring see — a hole no ladder reaches.
func TestFixedSearchStaysInMonitoredVersions(t *testing.T) {
	const k = 15
	served := 0
	for set := 0; set < 1<<k; set++ {
		present := func(v uint32) bool { return v < k && set&(1<<v) != 0 }
		for target := uint32(0); target < k; target++ {
			lookups := fixedWalk(target, func(_ int, v uint32) bool { return present(v) })
			ok := true
			for _, v := range lookups {
				if v <= target && !present(v) {
					ok = false
				}
			}
			if !ok {
				continue
			}
			served++
			for b := -1; b < int(target); b++ {
				if verifiesAgainst(ladderOf(b), b, present) {
					t.Fatalf("versions %015b: fixed search of %d verifies, and so does greatest %d", set, target, b)
				}
			}
		}
	}
	if served < 1<<k {
		t.Fatalf("only %d fixed searches verified", served)
	}
}

// TestLadderLengthsAreMinimal backs the claim of docs/transparency.md §5
// that four lookups up to version 7 is the best any ladder can do, by
// exhaustive search over all families of lookup sets for the claims -1
// (absent) … 7 that satisfy the conflict property (any two claims share a
// version between them). Versions above 8 cannot matter to these pairs
// (a shared version is at most the larger claim), so sets over 0..8 cover
// every family. With at most four lookups each, the absent proof cannot
// have one, and no claim 0 < n ≤ 7 can have three; Parley's ladders meet
// the remaining bound (2, 2, then 4 each).
func TestLadderLengthsAreMinimal(t *testing.T) {
	feasible := func(caps [9]int) bool {
		var sets [9]uint16 // sets[n+1] is the lookup set of claim n
		var rec func(n int) bool
		rec = func(n int) bool {
			if n > 7 {
				return true
			}
			need := uint16(1) << (n + 1) // n+1, which must be absent
			if n >= 0 {
				need |= 1 << n
			}
			for s := uint16(0); s < 1<<9; s++ {
				if s&need != need || bits.OnesCount16(s) > caps[n+1] {
					continue
				}
				ok := true
				for a := -1; a < n && ok; a++ {
					between := uint16(1)<<(n+1) - uint16(1)<<(a+1) // versions a+1..n
					ok = sets[a+1]&s&between != 0
				}
				if ok {
					sets[n+1] = s
					if rec(n + 1) {
						return true
					}
				}
			}
			return false
		}
		return rec(-1)
	}
	parley := [9]int{2, 2, 4, 4, 4, 4, 4, 4, 4}
	if !feasible(parley) {
		t.Fatal("the search finds no family for Parley's own lengths")
	}
	for i, c := range parley {
		if i == 1 {
			continue // the claim 0: {0, 1} cannot shrink
		}
		tighter := parley
		tighter[i] = c - 1
		if feasible(tighter) {
			t.Errorf("a family with %d lookups for claim %d exists", c-1, i-1)
		}
	}
	lens := []int{len(AbsentLookups())}
	for n := uint32(0); n <= 7; n++ {
		lens = append(lens, len(BinaryLadder(n)))
	}
	if !slices.Equal(lens, parley[:]) {
		t.Fatalf("ladder lengths %v", lens)
	}
}
