package shamir

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/parleyim/parley/internal/vectortest"
)

// fuzzParts decodes the fuzz input: each part is one length byte followed
// by that many bytes (the vector generator writes the seed corpus in this
// form); a short last part keeps what is there.
func fuzzParts(data []byte) [][]byte {
	var parts [][]byte
	for len(data) > 0 {
		n := min(int(data[0]), len(data)-1)
		parts = append(parts, data[1:1+n])
		data = data[1+n:]
	}
	return parts
}

func TestFuzzCorpusLoads(t *testing.T) {
	if n := vectortest.Corpus(t, "FuzzCombine"); n < 4 {
		t.Errorf("FuzzCombine has only %d seeds", n)
	}
}

// FuzzCombine: Combine never panics, every failure is one of the package's
// errors, and a success does not depend on the order of the parts and is
// reproduced by the textbook interpolation.
func FuzzCombine(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		parts := fuzzParts(data)
		secret, err := Combine(parts)
		if err != nil {
			if !errors.Is(err, ErrTooFewParts) && !errors.Is(err, ErrMalformedPart) && !errors.Is(err, ErrDuplicatePart) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if len(secret) != len(parts[0])-1 {
			t.Fatalf("secret of %d bytes from parts of %d", len(secret), len(parts[0]))
		}
		reversed := slices.Clone(parts)
		slices.Reverse(reversed)
		again, err := Combine(reversed)
		if err != nil || !bytes.Equal(again, secret) {
			t.Fatalf("reversed parts: %x, %v; want %x", again, err, secret)
		}
		xs := make([]byte, len(parts))
		ys := make([]byte, len(parts))
		for b := range secret {
			for i, p := range parts {
				xs[i], ys[i] = p[len(p)-1], p[b]
			}
			if want := lagrangeAt(xs, ys, 0); secret[b] != want {
				t.Fatalf("byte %d: %#02x, textbook interpolation gives %#02x", b, secret[b], want)
			}
		}
	})
}
