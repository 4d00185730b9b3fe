package kt

import (
	"slices"
	"testing"
)

// pyBaseBinaryLadder transcribes Appendix B's Python literally, as a
// reference.
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

func TestBinaryLadder(t *testing.T) {
	// §5's example: greatest version 6 is 0, 1, 3, 7, 5, 6.
	if got := BinaryLadder(6); !slices.Equal(got, []uint32{0, 1, 3, 7, 5, 6}) {
		t.Fatalf("BinaryLadder(6) = %v", got)
	}
	for n := 0; n <= 5000; n++ {
		got := BinaryLadder(uint32(n))
		want := pyBaseBinaryLadder(n)
		if len(got) != len(want) {
			t.Fatalf("BinaryLadder(%d) = %v, want %v", n, got, want)
		}
		for i := range got {
			if int(got[i]) != want[i] {
				t.Fatalf("BinaryLadder(%d) = %v, want %v", n, got, want)
			}
		}
		if !slices.Contains(got, uint32(n)) || !slices.Contains(got, uint32(n+1)) {
			t.Fatalf("BinaryLadder(%d) lacks n or n+1: %v", n, got)
		}
		c := slices.Clone(got)
		slices.Sort(c)
		if len(slices.Compact(c)) != len(got) {
			t.Fatalf("BinaryLadder(%d) repeats a version: %v", n, got)
		}
	}
	if l := BinaryLadder(MaxVersion); len(l) > 50 {
		t.Fatalf("ladder of MaxVersion has %d lookups", len(l))
	}
}

// TestLaddersConflict is the argument of docs/transparency.md made
// exhaustive for small versions: for any two different greatest versions
// a < b, some version is looked up by both ladders with opposite
// outcomes (included under b, absent under a), so one tree cannot satisfy
// both.
func TestLaddersConflict(t *testing.T) {
	for a := uint32(0); a < 300; a++ {
		la := BinaryLadder(a)
		for b := a + 1; b < 300; b++ {
			found := false
			for _, v := range BinaryLadder(b) {
				if v > a && v <= b && slices.Contains(la, v) {
					found = true
					break
				}
			}
			if !found {
				t.Fatalf("ladders of %d and %d share no conflicting version", a, b)
			}
		}
	}
}
