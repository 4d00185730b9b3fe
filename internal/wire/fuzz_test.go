package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/vectortest"
)

// The seed corpora in testdata/fuzz/ are written by
// internal/cmd/vectorgen/wire.go from the vector cases.

// TestFuzzCorporaNonEmpty guards against a corpus that silently vanished
// (a renamed target or a generator that stopped writing it).
func TestFuzzCorporaNonEmpty(t *testing.T) {
	for _, target := range []string{"FuzzUnmarshalEnvelope", "FuzzUnpad"} {
		if n := vectortest.Corpus(t, target); n < 5 {
			t.Errorf("%s has only %d seeds", target, n)
		}
	}
}

// FuzzUnmarshalEnvelope: decoding never panics, every failure is a
// classified error, and whatever decodes re-encodes to the identical bytes
// (no malleability).
func FuzzUnmarshalEnvelope(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := UnmarshalEnvelope(data)
		if err != nil {
			if e != nil {
				t.Fatal("envelope returned with an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if e.Type != TypePrekey && e.Type != TypeRatchet {
			t.Fatalf("accepted type %v", e.Type)
		}
		if len(e.Body) > MaxEnvelopeBody {
			t.Fatalf("accepted a %d-byte body", len(e.Body))
		}
		if re := e.Marshal(); !bytes.Equal(re, data) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", data, re)
		}
	})
}

// FuzzUnpad: unpadding never panics, every failure is ErrMalformed, and
// whatever unpads pads back to the identical bytes (one padding per body).
func FuzzUnpad(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := Unpad(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		re, err := Pad(nil, body)
		if err != nil {
			t.Fatalf("Unpad accepted a %d-byte body that Pad refuses: %v", len(body), err)
		}
		if !bytes.Equal(re, data) {
			t.Fatalf("re-padding differs for a %d-byte body: %d bytes in, %d out", len(body), len(data), len(re))
		}
	})
}
