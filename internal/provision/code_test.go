package provision

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

func TestCRC12CheckValue(t *testing.T) {
	// The catalogue check value of CRC-12/DECT.
	if got := crc12([]byte("123456789")); got != 0xF5B {
		t.Fatalf("crc12(123456789) = %#x, want 0xf5b", got)
	}
}

func randomAddress() [AddressSize]byte {
	var a [AddressSize]byte
	primitives.Random(a[:])
	return a
}

func TestCodeRoundTrip(t *testing.T) {
	format := regexp.MustCompile(`^[a-z2-7]{4}(-[a-z2-7]{4}){6}$`)
	addrs := [][AddressSize]byte{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	for range 200 {
		addrs = append(addrs, randomAddress())
	}
	for _, a := range addrs {
		c := Code(a)
		if !format.MatchString(c) {
			t.Fatalf("code %q has the wrong shape", c)
		}
		for _, typed := range []string{c, strings.ToUpper(c), strings.ReplaceAll(c, "-", ""), strings.ReplaceAll(c, "-", " "),
			" " + strings.ToUpper(c[:10]) + c[10:] + " "} {
			got, err := ParseCode(typed)
			if err != nil || got != a {
				t.Fatalf("ParseCode(%q) = %x, %v; want %x", typed, got, err, a)
			}
		}
	}
}

// TestCodeTypoCaught: every single mistyped character and every swap of
// two neighbouring characters is refused before any network call (the CRC
// guarantees it, this checks it exhaustively for sample addresses), as are
// a missing or extra character and characters outside the alphabet.
func TestCodeTypoCaught(t *testing.T) {
	for range 20 {
		a := randomAddress()
		c := strings.ReplaceAll(Code(a), "-", "")
		typo := func(what, s string) {
			t.Helper()
			got, err := ParseCode(s)
			var ce *CodeError
			if !errors.As(err, &ce) {
				t.Fatalf("%s: ParseCode(%q) = %x, %v; want a *CodeError", what, s, got, err)
			}
			if got != ([AddressSize]byte{}) {
				t.Fatalf("%s: returned an address with an error", what)
			}
		}
		for i := range c {
			for _, r := range base32Alphabet {
				if byte(r) != c[i] {
					typo("substitution", c[:i]+string(r)+c[i+1:])
				}
			}
			if i+1 < len(c) && c[i] != c[i+1] {
				typo("transposition", c[:i]+c[i+1:i+2]+c[i:i+1]+c[i+2:])
			}
			typo("deletion", c[:i]+c[i+1:])
			typo("insertion", c[:i]+"a"+c[i:])
		}
		typo("digit 0", "0"+c[1:])
		typo("digit 1", c[:5]+"1"+c[6:])
		typo("punctuation", c[:5]+"."+c[6:])
		typo("empty", "")
	}
}

func TestQRRoundTrip(t *testing.T) {
	f := newFixture(t, 0, 0, 0)
	q := f.offer.QR()
	if !regexp.MustCompile(`^PARLEY1:[A-Z2-7]{4}(-[A-Z2-7]{4}){6}$`).MatchString(q) || len(q) != 42 {
		t.Fatalf("QR payload %q", q)
	}
	for _, s := range []string{q, strings.ToLower(q)} {
		a, err := ParseQR(s)
		if err != nil || a != f.offer.Address() {
			t.Fatalf("ParseQR(%q) = %x, %v", s, a, err)
		}
	}
	if _, err := ParseQR(strings.Replace(q, "PARLEY1", "PARLEY2", 1)); !errors.Is(err, wire.ErrUnsupportedVersion) {
		t.Errorf("version 2: %v", err)
	}
	for _, bad := range []string{"", "PARLEY1", "PARLEY:" + q[8:], "PARLEY01:" + q[8:], "HTTPS://X", f.offer.Code(), q[:len(q)-1]} {
		var ce *CodeError
		if _, err := ParseQR(bad); !errors.As(err, &ce) {
			t.Errorf("ParseQR(%q) = %v, want a *CodeError", bad, err)
		}
	}
}
