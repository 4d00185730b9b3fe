package vrf

import (
	"bytes"
	"crypto/sha512"
	"errors"
	"testing"

	"filippo.io/edwards25519"

	"github.com/parleyim/parley/internal/vectortest"
)

// The seed corpora in testdata/fuzz/ are written by
// internal/cmd/vectorgen/vrf.go.

// TestFuzzCorporaNonEmpty guards against a corpus that silently vanished
// (a renamed target or a generator that stopped writing it).
func TestFuzzCorporaNonEmpty(t *testing.T) {
	for _, target := range []string{"FuzzVerify", "FuzzNewPublicKey"} {
		if n := vectortest.Corpus(t, target); n < 5 {
			t.Errorf("%s has only %d seeds", target, n)
		}
	}
}

// FuzzVerify reads data as public key (32) || pi (up to 80) || alpha.
// Verification never panics, every failure is a typed error and returns
// no output, and an accepted proof has a canonical Gamma, a reduced s and
// the output RFC 9381 §5.2 derives from Gamma, computed here independently.
func FuzzVerify(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		pkLen := min(len(data), PublicKeySize)
		pk, err := NewPublicKey(data[:pkLen])
		if err != nil {
			if !errors.Is(err, ErrInvalidPublicKey) || pk != nil {
				t.Fatalf("NewPublicKey: %v, %v", pk, err)
			}
			return
		}
		rest := data[pkLen:]
		pi := rest[:min(len(rest), ProofSize)]
		alpha := rest[len(pi):]
		beta, err := pk.Verify(alpha, pi)
		if err != nil {
			if !errors.Is(err, ErrInvalidProof) {
				t.Fatalf("unclassified error %v", err)
			}
			if beta != [OutputSize]byte{} {
				t.Fatal("output returned with an error")
			}
			return
		}
		gamma, err := new(edwards25519.Point).SetBytes(pi[:ptLen])
		if err != nil || !bytes.Equal(gamma.Bytes(), pi[:ptLen]) {
			t.Fatalf("accepted a non-canonical Gamma %x", pi[:ptLen])
		}
		if _, err := new(edwards25519.Scalar).SetCanonicalBytes(pi[ptLen+cLen:]); err != nil {
			t.Fatalf("accepted an unreduced s %x", pi[ptLen+cLen:])
		}
		in := append([]byte{0x03, 0x03}, new(edwards25519.Point).MultByCofactor(gamma).Bytes()...)
		if want := sha512.Sum512(append(in, 0x00)); beta != want {
			t.Fatalf("beta %x, want %x", beta, want)
		}
	})
}

// FuzzNewPublicKey: decoding never panics, every failure is
// ErrInvalidPublicKey, and an accepted key is 32 bytes, re-encodes to the
// identical bytes through edwards25519 (no second encoding of one key) and
// is not of small order.
func FuzzNewPublicKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		pk, err := NewPublicKey(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPublicKey) || pk != nil {
				t.Fatalf("NewPublicKey: %v, %v", pk, err)
			}
			return
		}
		if !bytes.Equal(pk.Bytes(), data) {
			t.Fatalf("Bytes %x, input %x", pk.Bytes(), data)
		}
		y, err := new(edwards25519.Point).SetBytes(data)
		if err != nil || !bytes.Equal(y.Bytes(), data) {
			t.Fatalf("accepted a non-canonical encoding %x", data)
		}
		if new(edwards25519.Point).MultByCofactor(y).Equal(edwards25519.NewIdentityPoint()) == 1 {
			t.Fatalf("accepted a small-order point %x", data)
		}
	})
}
