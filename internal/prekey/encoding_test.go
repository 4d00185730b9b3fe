package prekey_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Bundle layout sizes (docs/protocol.md §7.4), written out here rather than
// taken from the package so that a layout change fails the test.
const (
	x25519EntrySize = 4 + 32 + 3373
	mlkemEntrySize  = 4 + 1 + 1568 + 3373
)

func bundleSize(oneTime bool) int {
	n := 1 + x25519EntrySize + 1 + mlkemEntrySize
	if oneTime {
		n += x25519EntrySize
	}
	return n
}

// pqOffset is the offset of the ML-KEM entry in a bundle encoding.
func pqOffset(oneTime bool) int { return bundleSize(oneTime) - mlkemEntrySize }

type bundleCase struct {
	name string
	b    *prekey.Bundle
}

func bundleCases(u *prekey.Upload) []bundleCase {
	return []bundleCase{
		{"one-time X25519 and one-time ML-KEM", bundleOf(u, 0, 0)},
		{"one-time X25519 and last resort", bundleOf(u, 0, -1)},
		{"no one-time X25519, one-time ML-KEM", bundleOf(u, -1, 0)},
		{"no one-time X25519, last resort", bundleOf(u, -1, -1)},
	}
}

func TestBundleRoundTrip(t *testing.T) {
	signer, _, u := newSet(t, 1)
	for _, tc := range bundleCases(u) {
		t.Run(tc.name, func(t *testing.T) {
			enc := tc.b.Marshal()
			if len(enc) != bundleSize(tc.b.OneTime != nil) {
				t.Errorf("encoding is %d bytes, want %d", len(enc), bundleSize(tc.b.OneTime != nil))
			}
			if enc[0] != wire.Version {
				t.Errorf("version byte %d", enc[0])
			}
			p, err := prekey.ParseBundle(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.Marshal(), enc) {
				t.Fatal("re-encoding differs")
			}
			if err := p.Verify(signer.Public()); err != nil {
				t.Errorf("parsed bundle does not verify: %v", err)
			}
			if p.Signed.ID != tc.b.Signed.ID || !p.Signed.Key.Equal(tc.b.Signed.Key) || !bytes.Equal(p.Signed.Signature, tc.b.Signed.Signature) {
				t.Error("signed prekey differs")
			}
			if (p.OneTime == nil) != (tc.b.OneTime == nil) {
				t.Fatal("one-time prekey presence differs")
			}
			if p.OneTime != nil && (p.OneTime.ID != tc.b.OneTime.ID || !p.OneTime.Key.Equal(tc.b.OneTime.Key)) {
				t.Error("one-time prekey differs")
			}
			if p.PQ.ID != tc.b.PQ.ID || p.PQ.LastResort != tc.b.PQ.LastResort || !bytes.Equal(p.PQ.Key.Bytes(), tc.b.PQ.Key.Bytes()) {
				t.Error("ML-KEM prekey differs")
			}
			// The parsed signatures do not alias the input.
			clear(enc)
			if err := p.Verify(signer.Public()); err != nil {
				t.Errorf("parsed bundle aliases its input: %v", err)
			}
		})
	}
}

func TestParseBundleRejectsStrictPrefixes(t *testing.T) {
	_, _, u := newSet(t, 1)
	for _, tc := range bundleCases(u) {
		enc := tc.b.Marshal()
		for n := range len(enc) {
			if _, err := prekey.ParseBundle(enc[:n]); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("%s: prefix of %d/%d bytes: err = %v, want ErrMalformed", tc.name, n, len(enc), err)
			}
		}
	}
}

func TestParseBundleRejectsMalformed(t *testing.T) {
	_, _, u := newSet(t, 1)
	withOT := bundleOf(u, 0, 0).Marshal()
	withoutOT := bundleOf(u, -1, -1).Marshal()
	flagsAt := 1 + x25519EntrySize

	mutate := func(enc []byte, f func(b []byte) []byte) []byte { return f(bytes.Clone(enc)) }
	cases := map[string][]byte{
		"trailing byte":         append(bytes.Clone(withOT), 0),
		"two bundles":           append(bytes.Clone(withoutOT), withoutOT...),
		"trailing byte, no OTK": append(bytes.Clone(withoutOT), 0),
		// The flag says a one-time prekey follows when none does, and the
		// reverse.
		"one-time flag without key": mutate(withoutOT, func(b []byte) []byte { b[flagsAt] = 1; return b }),
		"key without one-time flag": mutate(withOT, func(b []byte) []byte { b[flagsAt] = 0; return b }),
		"last-resort byte 0xff":     mutate(withoutOT, func(b []byte) []byte { b[pqOffset(false)+4] = 0xff; return b }),
	}
	for bit := 1; bit < 8; bit++ {
		cases[fmt.Sprintf("unknown flag bit %d with OTK", bit)] = mutate(withOT, func(b []byte) []byte { b[flagsAt] |= 1 << bit; return b })
		cases[fmt.Sprintf("unknown flag bit %d", bit)] = mutate(withoutOT, func(b []byte) []byte { b[flagsAt] |= 1 << bit; return b })
	}
	for _, oneTime := range []bool{false, true} {
		enc, suffix := withoutOT, ""
		if oneTime {
			enc, suffix = withOT, " with OTK"
		}
		cases["last-resort byte 2"+suffix] = mutate(enc, func(b []byte) []byte { b[pqOffset(oneTime)+4] = 2; return b })
		// ML-KEM encapsulation keys pack 12-bit coefficients; the first
		// coefficient set to 4095 ≥ q = 3329 fails the FIPS 203 §7.2
		// modulus check.
		cases["ML-KEM coefficient ≥ q"+suffix] = mutate(enc, func(b []byte) []byte {
			k := pqOffset(oneTime) + 5
			b[k], b[k+1] = 0xff, b[k+1]|0x0f
			return b
		})
		// The last coefficient set to exactly q.
		cases["ML-KEM last coefficient = q"+suffix] = mutate(enc, func(b []byte) []byte {
			// The last coefficient is the top 12 bits of the 3 bytes before ρ.
			k := pqOffset(oneTime) + 5 + 1568 - 32 - 1
			const q = 3329
			b[k-1] = b[k-1]&0x0f | byte(q&0x0f)<<4
			b[k] = byte(q >> 4)
			return b
		})
	}
	for name, enc := range cases {
		if _, err := prekey.ParseBundle(enc); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	// The coefficient mutations must be the only thing wrong: restoring the
	// bytes gives a valid key (guards against testing the wrong offset).
	if _, err := primitives.NewMLKEM1024PublicKey(withOT[pqOffset(true)+5 : pqOffset(true)+5+1568]); err != nil {
		t.Fatalf("the ML-KEM key is not where the test expects: %v", err)
	}

	for _, v := range []byte{0, 2, 0xff} {
		enc := mutate(withOT, func(b []byte) []byte { b[0] = v; return b })
		_, err := prekey.ParseBundle(enc)
		if !errors.Is(err, wire.ErrUnsupportedVersion) {
			t.Errorf("version %d: err = %v, want ErrUnsupportedVersion", v, err)
		}
	}
}

// FuzzParseBundle: no input panics, and every accepted input re-encodes to
// exactly the same bytes (no malleability).
func FuzzParseBundle(f *testing.F) {
	_, _, u := newSet(f, 1)
	for _, tc := range bundleCases(u) {
		f.Add(tc.b.Marshal())
	}
	f.Add([]byte{})
	f.Add([]byte{wire.Version})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := prekey.ParseBundle(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnsupportedVersion) {
				t.Fatalf("error matches neither ErrMalformed nor ErrUnsupportedVersion: %v", err)
			}
			return
		}
		if got := b.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", data, got)
		}
	})
}
