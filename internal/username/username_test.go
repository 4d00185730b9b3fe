package username

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	good := map[string]string{
		"alice":                        "alice",
		"Alice":                        "alice",
		"BOB_42":                       "bob_42",
		"a.b-c":                        "a.b-c",
		"abc":                          "abc",
		strings.Repeat("x", MaxLength): strings.Repeat("x", MaxLength),
	}
	for in, want := range good {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{
		"", "ab", strings.Repeat("x", MaxLength+1), "1alice", "_alice", "alice.", "alice-",
		"al ice", "alicé", "al\x00ice", "ali/ce", "ADMIN", "root", "parley", "alice\n",
		"аlice", // Cyrillic а: a homograph of "alice"
	}
	for _, in := range bad {
		if got, err := Normalize(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Normalize(%q) = %q, %v; want ErrInvalid", in, got, err)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"alice", "Alice", "a.b", "1x", "ADMIN", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			return
		}
		// Normal forms are fixed points and case-insensitive.
		if again, err := Normalize(n); err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q, %v", s, n, n, again, err)
		}
		if n != strings.ToLower(s) {
			t.Fatalf("Normalize(%q) = %q is not its lower case", s, n)
		}
	})
}
