package backup

import (
	"bytes"
	"strings"
	"testing"
)

// TestNameCacheTellsNamesApart: the Reader's name cache compares names by
// their length and first and last words; names that agree there and
// differ anywhere else (at every position, for every length up to
// MaxNameSize) still come back as themselves, looked up in any order and
// again from the cache. Names that are not UTF-8 or too long are refused.
func TestNameCacheTellsNamesApart(t *testing.T) {
	r := &Reader{names: make(map[string]string)}
	var all []string
	for n := 1; n <= MaxNameSize; n++ {
		base := []byte(strings.Repeat("m", n))
		all = append(all, string(base))
		for i := range n {
			v := bytes.Clone(base)
			v[i] = 'a' + byte(i%26)
			all = append(all, string(v))
		}
	}
	for round := range 3 {
		for i := range all {
			// Interleave far-apart names so that slots are overwritten.
			s := all[(i*7919+round)%len(all)]
			got, ok := r.name([]byte(s))
			if !ok || got != s {
				t.Fatalf("name(%q) = %q, %v", s, got, ok)
			}
		}
	}
	for _, bad := range []string{"", "\xff", "ab\xffcd", strings.Repeat("x", MaxNameSize+1), "mmmmmmmm\xffmmmmmmmm"} {
		if got, ok := r.name([]byte(bad)); ok {
			t.Errorf("name(%q) accepted as %q", bad, got)
		}
	}
}
