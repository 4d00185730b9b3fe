package shamir

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
)

// slowMul multiplies as polynomials over GF(2) and then reduces modulo
// 0x11b, the textbook way: an independent reference for mul.
func slowMul(a, b byte) byte {
	var p uint16
	for i := range 8 {
		if b>>i&1 == 1 {
			p ^= uint16(a) << i
		}
	}
	for i := 15; i >= 8; i-- {
		if p>>i&1 == 1 {
			p ^= 0x11b << (i - 8)
		}
	}
	return byte(p)
}

// TestFieldKnownAnswers checks the worked examples of FIPS 197 §4.2 and
// §5.1.1, then every product against the reference and every inverse.
func TestFieldKnownAnswers(t *testing.T) {
	for _, c := range []struct{ a, b, want byte }{
		{0x57, 0x83, 0xc1}, // §4.2
		{0x57, 0x13, 0xfe}, // §4.2.1
		{0x57, 0x02, 0xae},
		{0x57, 0x04, 0x47},
		{0x57, 0x08, 0x8e},
		{0x57, 0x10, 0x07},
		{0x53, 0xca, 0x01}, // §5.1.1: {53} and {ca} are inverses
	} {
		if got := mul(c.a, c.b); got != c.want {
			t.Errorf("mul(%#02x, %#02x) = %#02x, want %#02x", c.a, c.b, got, c.want)
		}
	}
	if inv(0x53) != 0xca || inv(0xca) != 0x53 {
		t.Errorf("inv(0x53) = %#02x, inv(0xca) = %#02x", inv(0x53), inv(0xca))
	}
	if inv(0) != 0 {
		t.Errorf("inv(0) = %#02x", inv(0))
	}
	for a := range 256 {
		for b := range 256 {
			if got, want := mul(byte(a), byte(b)), slowMul(byte(a), byte(b)); got != want {
				t.Fatalf("mul(%#02x, %#02x) = %#02x, want %#02x", a, b, got, want)
			}
		}
		if a != 0 && mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("%#02x · inv(%#02x) != 1", a, a)
		}
	}
}

// subsets calls fn with every k-element subset of parts.
func subsets(parts [][]byte, k int, fn func([][]byte)) {
	var rec func(start int, chosen [][]byte)
	rec = func(start int, chosen [][]byte) {
		if len(chosen) == k {
			fn(chosen)
			return
		}
		for i := start; i < len(parts); i++ {
			rec(i+1, append(chosen, parts[i]))
		}
	}
	rec(0, nil)
}

func TestAnyKOfNRecover(t *testing.T) {
	for _, c := range []struct{ n, k, size int }{
		{2, 2, 1}, {3, 2, 32}, {5, 3, 32}, {6, 6, 16}, {7, 4, 33},
	} {
		secret := make([]byte, c.size)
		primitives.Random(secret)
		parts, err := Split(secret, c.n, c.k)
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != c.n {
			t.Fatalf("%d parts, want %d", len(parts), c.n)
		}
		for i, p := range parts {
			if len(p) != c.size+1 || p[c.size] != byte(i+1) {
				t.Fatalf("part %d: length %d, x %d", i, len(p), p[len(p)-1])
			}
		}
		for m := c.k; m <= c.n; m++ {
			subsets(parts, m, func(ps [][]byte) {
				got, err := Combine(ps)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, secret) {
					t.Fatalf("n=%d k=%d: %d parts recover %x, want %x", c.n, c.k, m, got, secret)
				}
			})
		}
		// Fewer than k parts interpolate a polynomial of lower degree:
		// for a 16-byte or longer secret, never the secret itself.
		if c.size >= 16 && c.k > 2 {
			subsets(parts, c.k-1, func(ps [][]byte) {
				got, err := Combine(ps)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Equal(got, secret) {
					t.Fatalf("n=%d k=%d: %d parts recovered the secret", c.n, c.k, c.k-1)
				}
			})
		}
	}
}

func TestPartsFromAnotherSplitDoNotMix(t *testing.T) {
	secret := bytes.Repeat([]byte{0x42}, 32)
	a, _ := Split(secret, 3, 2)
	b, _ := Split(secret, 3, 2)
	// Two parts of the same secret from different splits lie on different
	// polynomials; together they interpolate something else.
	got, err := Combine([][]byte{a[0], b[1]})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, secret) {
		t.Fatal("parts of two splits recovered the secret")
	}
}

// TestKMinusOnePartsRevealNothing enumerates every polynomial for one
// secret byte and checks that the k−1 part values are uniformly
// distributed — every tuple of values occurs exactly once — whatever the
// secret. So the k−1 parts are independent of the secret: seeing them
// tells an attacker nothing (perfect secrecy).
func TestKMinusOnePartsRevealNothing(t *testing.T) {
	for _, k := range []int{2, 3} {
		for _, s := range []byte{0x00, 0x01, 0x5a, 0xff} {
			counts := make([]int, 1<<(8*(k-1)))
			coeffs := make([]byte, k-1)
			for c := range 1 << (8 * (k - 1)) {
				for i := range coeffs {
					coeffs[i] = byte(c >> (8 * i))
				}
				parts, err := split([]byte{s}, k, k, func(b []byte) { copy(b, coeffs) })
				if err != nil {
					t.Fatal(err)
				}
				idx := 0
				for i := range k - 1 {
					idx |= int(parts[i][0]) << (8 * i)
				}
				counts[idx]++
			}
			for v, n := range counts {
				if n != 1 {
					t.Fatalf("k=%d secret %#02x: the first %d part values %#x occur %d times, want once", k, s, k-1, v, n)
				}
			}
		}
	}
}

// lagrangeAt evaluates at x the polynomial through the points, by the
// textbook formula (an independent reference for Combine).
func lagrangeAt(xs, ys []byte, x byte) byte {
	var y byte
	for i := range xs {
		term := ys[i]
		for j := range xs {
			if j != i {
				term = slowMul(term, slowMul(x^xs[j], inv(xs[i]^xs[j])))
			}
		}
		y ^= term
	}
	return y
}

// TestEveryCandidateSecretIsConsistent: for k−1 real parts and every
// candidate secret byte there is a polynomial of degree k−1 through the
// parts with that constant term, so an attacker holding k−1 parts can
// complete them to a full set for any secret.
func TestEveryCandidateSecretIsConsistent(t *testing.T) {
	secret := []byte{0x37}
	parts, err := Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	held := parts[1:3] // k−1 = 2 parts, at x = 2 and 3
	for s := range 256 {
		xs := []byte{0, held[0][1], held[1][1]}
		ys := []byte{byte(s), held[0][0], held[1][0]}
		// The third point of the degree-2 polynomial through (0, s) and
		// the held parts, at x = 5.
		forged := []byte{lagrangeAt(xs, ys, 5), 5}
		got, err := Combine([][]byte{held[0], held[1], forged})
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != byte(s) {
			t.Fatalf("candidate %#02x: completed parts give %#02x", s, got[0])
		}
	}
}

func TestSplitRefusesBadParameters(t *testing.T) {
	for _, c := range []struct {
		size, n, k int
	}{
		{0, 3, 2}, {32, 3, 1}, {32, 2, 3}, {32, 256, 2}, {32, 1, 1}, {32, 3, 0}, {32, -1, 2},
	} {
		if _, err := Split(make([]byte, c.size), c.n, c.k); !errors.Is(err, ErrParameters) {
			t.Errorf("Split(%d bytes, n=%d, k=%d): %v, want ErrParameters", c.size, c.n, c.k, err)
		}
	}
	if _, err := Split(make([]byte, 1), 255, 255); err != nil {
		t.Errorf("Split with n = k = 255: %v", err)
	}
}

func TestCombineRefusesBadParts(t *testing.T) {
	parts, _ := Split([]byte("secret"), 4, 2)
	short := append([]byte(nil), parts[1][:3]...)
	zero := append([]byte(nil), parts[1]...)
	zero[len(zero)-1] = 0
	dup := append([]byte(nil), parts[1]...)
	dup[0] ^= 1
	tooMany := make([][]byte, 256)
	for i := range tooMany {
		tooMany[i] = []byte{1, byte(i)}
	}
	for _, c := range []struct {
		name  string
		parts [][]byte
		want  error
	}{
		{"none", nil, ErrTooFewParts},
		{"one", parts[:1], ErrTooFewParts},
		{"different lengths", [][]byte{parts[0], short}, ErrMalformedPart},
		{"x only", [][]byte{{1}, {2}}, ErrMalformedPart},
		{"x is zero", [][]byte{parts[0], zero}, ErrMalformedPart},
		{"same x twice", [][]byte{parts[0], parts[1], dup}, ErrDuplicatePart},
		{"the same part twice", [][]byte{parts[2], parts[2]}, ErrDuplicatePart},
		{"more than 255", tooMany, ErrMalformedPart},
	} {
		if _, err := Combine(c.parts); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestCombineDoesNotModifyParts(t *testing.T) {
	parts, _ := Split([]byte("secret"), 3, 2)
	saved := [][]byte{bytes.Clone(parts[0]), bytes.Clone(parts[2])}
	if _, err := Combine([][]byte{parts[0], parts[2]}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(saved[0], parts[0]) || !bytes.Equal(saved[1], parts[2]) {
		t.Fatal("Combine modified its input")
	}
}
