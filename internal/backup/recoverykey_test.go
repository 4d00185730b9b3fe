package backup

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

func sampleKey() RecoveryKey {
	var k RecoveryKey
	for i := range k {
		k[i] = byte(i*37 + 11)
	}
	return k
}

func TestRecoveryKeyForm(t *testing.T) {
	s := sampleKey().String()
	if len(s) != recoveryKeyLen {
		t.Fatalf("len %d, want %d", len(s), recoveryKeyLen)
	}
	groups := strings.Split(s, "-")
	if len(groups) != 15 {
		t.Fatalf("%d groups, want 15", len(groups))
	}
	for _, g := range groups {
		if len(g) != 4 || strings.Trim(g, crockford) != "" {
			t.Fatalf("group %q is not 4 Crockford characters", g)
		}
	}
}

func TestCrockfordAlphabet(t *testing.T) {
	for v := range 32 {
		c := crockfordChar(byte(v))
		if c != crockford[v] {
			t.Fatalf("crockfordChar(%d) = %q, want %q", v, c, crockford[v])
		}
		for _, in := range []byte{c, c | 0x20} {
			if got, ok := crockfordValue(in); !ok || got != byte(v) {
				t.Fatalf("crockfordValue(%q) = %d, %v", in, got, ok)
			}
		}
	}
	for in, want := range map[byte]byte{'O': 0, 'o': 0, 'I': 1, 'i': 1, 'L': 1, 'l': 1} {
		if got, ok := crockfordValue(in); !ok || got != want {
			t.Errorf("crockfordValue(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for c := range 256 {
		_, ok := crockfordValue(byte(c))
		want := strings.ContainsRune(crockford+"OIL"+strings.ToLower(crockford+"OIL"), rune(c))
		if ok != want {
			t.Errorf("crockfordValue(%#02x) valid = %v, want %v", c, ok, want)
		}
	}
}

func TestRecoveryKeyRoundTrip(t *testing.T) {
	for range 200 {
		k := NewRecoveryKey()
		got, err := ParseRecoveryKey(k.String())
		if err != nil || got != k {
			t.Fatalf("ParseRecoveryKey(%s) = %x, %v", k, got, err)
		}
	}
	for _, k := range []RecoveryKey{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		if got, err := ParseRecoveryKey(k.String()); err != nil || got != k {
			t.Fatalf("ParseRecoveryKey(%s) = %x, %v", k, got, err)
		}
	}
}

// TestRecoveryKeyTolerantInput: what a person plausibly types for the same
// key — lower case, spaces for dashes, no separators, line breaks, the
// look-alikes O, I, L — all parse to the key.
func TestRecoveryKeyTolerantInput(t *testing.T) {
	k := sampleKey()
	s := k.String()
	lookalike := strings.NewReplacer("0", "O", "1", "l").Replace(s)
	for _, in := range []string{
		strings.ToLower(s),
		strings.ReplaceAll(s, "-", " "),
		strings.ReplaceAll(s, "-", ""),
		"  " + strings.ReplaceAll(s, "-", " - ") + "\n",
		strings.Replace(s, "-", "\n", 7),
		lookalike,
		strings.ToLower(strings.NewReplacer("1", "I").Replace(s)),
	} {
		got, err := ParseRecoveryKey(in)
		if err != nil || got != k {
			t.Errorf("ParseRecoveryKey(%q) = %x, %v", in, got, err)
		}
	}
}

func wantTypo(t *testing.T, in string, group int) {
	t.Helper()
	_, err := ParseRecoveryKey(in)
	if !errors.Is(err, ErrRecoveryKeyTypo) {
		t.Fatalf("ParseRecoveryKey(%q): %v, want ErrRecoveryKeyTypo", in, err)
	}
	var e *RecoveryKeyError
	if !errors.As(err, &e) {
		t.Fatalf("%v is not a *RecoveryKeyError", err)
	}
	if group >= 0 && e.Group != group {
		t.Fatalf("ParseRecoveryKey(%q): group %d, want %d (%v)", in, e.Group, group, err)
	}
	if clean := strings.ReplaceAll(in, "-", ""); len(clean) >= 8 && strings.Contains(err.Error(), clean[:8]) {
		t.Fatalf("error %q repeats the key", err)
	}
}

// TestRecoveryKeyEverySubstitutionCaught substitutes every character of
// sample keys by every other character of the alphabet: each one is
// refused, and the error names the group it is in.
func TestRecoveryKeyEverySubstitutionCaught(t *testing.T) {
	for _, k := range []RecoveryKey{sampleKey(), NewRecoveryKey(), {}} {
		s := []byte(k.String())
		for pos := range s {
			if s[pos] == '-' {
				continue
			}
			group := pos/(groupSize+1) + 1
			orig := s[pos]
			for _, c := range []byte(crockford) {
				if c == orig {
					continue
				}
				s[pos] = c
				wantTypo(t, string(s), group)
			}
			s[pos] = orig
		}
	}
}

// TestRecoveryKeyTranspositionsCaught swaps every pair of neighbouring
// characters: within a group the error names the group; across a dash it
// is still refused.
func TestRecoveryKeyTranspositionsCaught(t *testing.T) {
	for range 20 {
		k := NewRecoveryKey()
		chars := []byte(strings.ReplaceAll(k.String(), "-", ""))
		for i := 0; i+1 < len(chars); i++ {
			if chars[i] == chars[i+1] {
				continue
			}
			chars[i], chars[i+1] = chars[i+1], chars[i]
			group := -1 // across groups: refused, group not promised
			if i/groupSize == (i+1)/groupSize {
				group = i/groupSize + 1
			}
			wantTypo(t, string(chars), group)
			chars[i], chars[i+1] = chars[i+1], chars[i]
		}
	}
}

// TestRecoveryKeyTwoGroupErrorsCaught: mistakes in two different groups
// are always refused (the code's distance is 3).
func TestRecoveryKeyTwoGroupErrorsCaught(t *testing.T) {
	var r [4]byte
	for range 5000 {
		k := NewRecoveryKey()
		chars := []byte(strings.ReplaceAll(k.String(), "-", ""))
		primitives.Random(r[:])
		i, j := int(r[0])%keyChars, int(r[1])%keyChars
		if i/groupSize == j/groupSize {
			continue
		}
		chars[i] = crockford[(strings.IndexByte(crockford, chars[i])+1+int(r[2])%31)%32]
		chars[j] = crockford[(strings.IndexByte(crockford, chars[j])+1+int(r[3])%31)%32]
		wantTypo(t, string(chars), -1)
	}
}

func TestRecoveryKeyMalformedInput(t *testing.T) {
	s := sampleKey().String()
	groups := strings.Split(s, "-")
	dropped := strings.Join(append(append([]string{}, groups[:5]...), groups[5][:3]), "-") + "-" + strings.Join(groups[6:], "-")
	extra := strings.Replace(s, groups[9], groups[9]+"7", 1)
	for _, c := range []struct {
		in    string
		group int
	}{
		{"", 0},
		{"hello", 0},
		{s[:len(s)-5], 0}, // a whole group missing
		{dropped, 6},      // group 6 has 3 characters
		{extra, 10},       // group 10 has 5 characters
		{strings.Replace(s, string(s[12]), "U", 1), -1}, // U is not Crockford
		{s[:20] + "é" + s[21:], 5},
		{s[:20] + "*" + s[21:], 5},
		{s + "-ABCD-é", 0}, // found by FuzzParseRecoveryKey: past the last group
		{s + "-ABCD-*", 0},
	} {
		wantTypo(t, c.in, c.group)
	}
	if _, err := ParseRecoveryKey(s + s); !errors.Is(err, ErrRecoveryKeyTypo) {
		t.Errorf("two keys: %v", err)
	}
}

// TestRecoveryKeyNonZeroPadding: a word that satisfies the check but has
// non-zero pad bits is not a key this package writes.
func TestRecoveryKeyNonZeroPadding(t *testing.T) {
	k := sampleKey()
	syms := k.symbols()
	syms[dataGroups-1] |= 1
	syms[dataGroups], syms[dataGroups+1] = checkSymbols(syms[:dataGroups])
	var b strings.Builder
	for g, s := range syms {
		if g > 0 {
			b.WriteByte('-')
		}
		for i := groupSize - 1; i >= 0; i-- {
			b.WriteByte(crockfordChar(byte(s>>(5*i)) & 31))
		}
	}
	wantTypo(t, b.String(), 0)
}

// TestFieldIsGF2_20: the reduction polynomial is primitive (α = x has
// order 2^20 − 1), which the code's distance argument relies on, and the
// check symbols zero the syndromes.
func TestFieldIsGF2_20(t *testing.T) {
	pow := func(a uint32, e int) uint32 {
		r := uint32(1)
		for ; e > 0; e >>= 1 {
			if e&1 == 1 {
				r = gfMul(r, a)
			}
			a = gfMul(a, a)
		}
		return r
	}
	const order = 1<<20 - 1 // 3 · 5² · 11 · 31 · 41
	if pow(2, order) != 1 {
		t.Fatal("α^(2^20−1) != 1")
	}
	for _, p := range []int{3, 5, 11, 31, 41} {
		if pow(2, order/p) == 1 {
			t.Fatalf("α has order dividing (2^20−1)/%d", p)
		}
	}
	for _, a := range []uint32{1, 2, 3, 0x12345, 0xfffff} {
		if gfMul(a, gfInv(a)) != 1 {
			t.Fatalf("%#x · inv != 1", a)
		}
	}
	syms := NewRecoveryKey().symbols()
	if s1, s2 := syndromes(syms[:]); s1 != 0 || s2 != 0 {
		t.Fatalf("syndromes of a valid key %#x %#x", s1, s2)
	}
}

func TestRecoveryKeyStringIsNotTheAgeIdentity(t *testing.T) {
	k := sampleKey()
	if bytes.Contains([]byte(k.AgeIdentityString()), []byte(strings.ReplaceAll(k.String(), "-", "")[:8])) {
		t.Fatal("the age identity shares characters with the written key")
	}
}
