package nats

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/vectortest"
)

// The seed corpora in testdata/fuzz/ are written by
// internal/cmd/vectorgen/busnats.go from the vector cases. Every input a
// node decodes comes from the network: any client of the NATS server can
// publish on parley.>.

// TestFuzzCorporaNonEmpty guards against a corpus that silently vanished
// (a renamed target or a generator that stopped writing it).
func TestFuzzCorporaNonEmpty(t *testing.T) {
	for _, target := range []string{"FuzzParseMail", "FuzzParseClaim", "FuzzParseSubject"} {
		if n := vectortest.Corpus(t, target); n < 5 {
			t.Errorf("%s has only %d seeds", target, n)
		}
	}
}

// FuzzParseMail: parseMail never panics and accepts exactly the payloads of
// originSize or mailSize bytes, returning zeros for any other. What it
// accepts re-encodes as follows:
//   - a mailSize payload: appendMail(origin, seq) is the identical bytes;
//   - an originSize payload (an older release): seq is 0 and origin is the
//     payload, so appendMail(origin, seq) is the payload followed by eight
//     zero bytes, the current encoding of "seq unknown".
//
// So two payloads decode alike only if they are an origin alone and that
// origin with seq 0, which mean the same.
func FuzzParseMail(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		origin, seq, ok := parseMail(data)
		switch len(data) {
		case mailSize:
			if !ok {
				t.Fatalf("rejected a %d-byte payload", len(data))
			}
			if re := appendMail(nil, origin, seq); !bytes.Equal(re, data) {
				t.Fatalf("re-encoding differs:\n in  %x\n out %x", data, re)
			}
		case originSize:
			if !ok || seq != 0 || !bytes.Equal(origin[:], data) {
				t.Fatalf("origin-only payload %x parsed as %x, %d, %v; want itself, 0, true", data, origin, seq, ok)
			}
			want := append(bytes.Clone(data), make([]byte, 8)...)
			if re := appendMail(nil, origin, seq); !bytes.Equal(re, want) {
				t.Fatalf("origin-only payload re-encodes to %x, want %x", re, want)
			}
		default:
			if ok || origin != ([originSize]byte{}) || seq != 0 {
				t.Fatalf("%d-byte payload parsed as %x, %d, %v; want rejected", len(data), origin, seq, ok)
			}
		}
	})
}

// FuzzParseClaim: parseClaim never panics, accepts exactly the claimSize
// payloads that start with claimVersion (returning zeros for any other),
// and whatever it accepts re-encodes with appendClaim to the identical
// bytes (one encoding per claim).
func FuzzParseClaim(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		origin, s, ok := parseClaim(data)
		if want := len(data) == claimSize && data[0] == claimVersion; ok != want {
			t.Fatalf("parseClaim(%x) ok = %v, want %v", data, ok, want)
		}
		if !ok {
			if origin != ([originSize]byte{}) || s != (stamp{}) {
				t.Fatalf("rejected claim %x returned %x, %+v", data, origin, s)
			}
			return
		}
		if re := appendClaim(nil, origin, s); !bytes.Equal(re, data) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", data, re)
		}
	})
}

// FuzzParseSubject: parseSubject never panics; under each prefix it
// accepts exactly the prefix followed by 32 lower-case hex digits (checked
// against this independent description), so at most one of the two
// prefixes accepts a subject; and whatever it accepts re-encodes with
// subject to the identical string (one subject per device).
func FuzzParseSubject(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		subj := string(data)
		accepted := 0
		for _, prefix := range []string{mailPrefix, claimPrefix} {
			id, ok := parseSubject(subj, prefix)
			if want := isSubject(subj, prefix); ok != want {
				t.Fatalf("parseSubject(%q, %q) ok = %v, want %v", subj, prefix, ok, want)
			}
			if !ok {
				continue
			}
			accepted++
			if re := subject(prefix, id); re != subj {
				t.Fatalf("re-encoding differs:\n in  %q\n out %q", subj, re)
			}
		}
		if accepted > 1 {
			t.Fatalf("%q accepted under both prefixes", subj)
		}
	})
}

// isSubject reports whether subj is prefix followed by a device id in
// lower-case hex.
func isSubject(subj, prefix string) bool {
	hexID, ok := strings.CutPrefix(subj, prefix)
	if !ok || len(hexID) != 2*len(store.DeviceID{}) {
		return false
	}
	for _, c := range []byte(hexID) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
