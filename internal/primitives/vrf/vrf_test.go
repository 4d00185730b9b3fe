package vrf

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/edwards25519"
)

// rfcVector is one example of RFC 9381 Appendix B.3
// (testdata/rfc9381-b3.json).
type rfcVector struct {
	Name  string `json:"name"`
	SK    string `json:"sk"`
	PK    string `json:"pk"`
	Alpha string `json:"alpha"`
	X     string `json:"x"`
	Ctr   int    `json:"ctr"`
	H     string `json:"h"`
	K     string `json:"k"`
	U     string `json:"u"`
	V     string `json:"v"`
	Pi    string `json:"pi"`
	Beta  string `json:"beta"`
}

func loadRFCVectors(t testing.TB) []rfcVector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rfc9381-b3.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Source  string      `json:"source"`
		Vectors []rfcVector `json:"vectors"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	// Appendix B.3 has exactly three examples; a file that lost one must
	// not pass.
	if len(f.Vectors) != 3 {
		t.Fatalf("testdata/rfc9381-b3.json has %d vectors, want the 3 of RFC 9381 Appendix B.3", len(f.Vectors))
	}
	return f.Vectors
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkHex(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if g := hex.EncodeToString(got); g != want {
		t.Errorf("%s = %s, want %s", what, g, want)
	}
}

// TestRFC9381Vectors checks every value of RFC 9381 Appendix B.3 byte for
// byte: the key expansion (PK, x), try-and-increment (ctr, H), the nonce
// (k), the commitments (U, V), the proof pi and the output beta, from
// Prove and from Verify.
func TestRFC9381Vectors(t *testing.T) {
	for _, v := range loadRFCVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			k, err := NewPrivateKey(unhex(t, v.SK))
			if err != nil {
				t.Fatal(err)
			}
			checkHex(t, "Seed", k.Seed(), v.SK)
			checkHex(t, "PK", k.Public().Bytes(), v.PK)

			// x is printed clamped and unreduced; the key holds it mod L.
			x := unhex(t, v.X)
			if x[0]&7 != 0 || x[31]&0xc0 != 0x40 {
				t.Fatalf("vector x %s is not clamped", v.X)
			}
			wantX, err := new(edwards25519.Scalar).SetBytesWithClamping(x)
			if err != nil {
				t.Fatal(err)
			}
			if k.x.Equal(wantX) != 1 {
				t.Errorf("x = %x, want %s mod L", k.x.Bytes(), v.X)
			}

			alpha := unhex(t, v.Alpha)
			h, ctr, ok := encodeToCurve(unhex(t, v.PK), alpha)
			if !ok || ctr != v.Ctr {
				t.Errorf("encodeToCurve: ctr %d, ok %v; want ctr %d", ctr, ok, v.Ctr)
			}
			if ok {
				checkHex(t, "encodeToCurve H", h.Bytes(), v.H)
			}

			var tr proofTrace
			beta, pi := k.prove(alpha, &tr)
			if tr.ctr != v.Ctr {
				t.Errorf("prove: ctr %d, want %d", tr.ctr, v.Ctr)
			}
			checkHex(t, "H", tr.h, v.H)
			checkHex(t, "k", tr.kString[:], v.K)
			checkHex(t, "U", tr.u, v.U)
			checkHex(t, "V", tr.v, v.V)
			checkHex(t, "pi", pi[:], v.Pi)
			checkHex(t, "beta", beta[:], v.Beta)

			// The public path gives the same.
			beta2, pi2 := k.Prove(alpha)
			if beta2 != beta || pi2 != pi {
				t.Error("Prove differs from the traced prove")
			}

			pk, err := NewPublicKey(unhex(t, v.PK))
			if err != nil {
				t.Fatal(err)
			}
			got, err := pk.Verify(alpha, unhex(t, v.Pi))
			if err != nil {
				t.Fatalf("Verify of the RFC proof: %v", err)
			}
			checkHex(t, "Verify beta", got[:], v.Beta)
		})
	}
}

// TestProveVerifyRoundTrip: fresh keys prove and verify, proofs are
// deterministic, a key rebuilt from its seed proves the same, and distinct
// inputs give distinct outputs.
func TestProveVerifyRoundTrip(t *testing.T) {
	alphas := [][]byte{nil, {0}, []byte("alice"), bytes.Repeat([]byte{0xab}, 1000)}
	for range 4 {
		k := GenerateKey()
		pk, err := NewPublicKey(k.Public().Bytes())
		if err != nil {
			t.Fatal(err)
		}
		k2, err := NewPrivateKey(k.Seed())
		if err != nil {
			t.Fatal(err)
		}
		seen := map[[OutputSize]byte]bool{}
		for _, a := range alphas {
			beta, pi := k.Prove(a)
			if b2, p2 := k.Prove(a); b2 != beta || p2 != pi {
				t.Fatal("Prove is not deterministic")
			}
			if b2, p2 := k2.Prove(a); b2 != beta || p2 != pi {
				t.Fatal("a key rebuilt from its seed proves differently")
			}
			got, err := pk.Verify(a, pi[:])
			if err != nil {
				t.Fatalf("Verify(%x): %v", a, err)
			}
			if got != beta {
				t.Fatal("Verify returned a different beta than Prove")
			}
			if seen[beta] {
				t.Fatal("two inputs gave the same output")
			}
			seen[beta] = true
		}
	}
}

// TestGenerateKeyDistinct: two generated keys differ (randomness is used).
func TestGenerateKeyDistinct(t *testing.T) {
	a, b := GenerateKey(), GenerateKey()
	if bytes.Equal(a.Seed(), b.Seed()) || bytes.Equal(a.Public().Bytes(), b.Public().Bytes()) {
		t.Fatal("two generated keys are equal")
	}
}

// TestAccessorsReturnCopies: callers cannot change a key through the
// slices it returns.
func TestAccessorsReturnCopies(t *testing.T) {
	k := GenerateKey()
	s, p := k.Seed(), k.Public()
	want := p.Bytes()
	s[0] ^= 1
	p.Bytes()[0] ^= 1
	k.Public().Bytes()[0] ^= 1
	if bytes.Equal(k.Seed(), s) {
		t.Error("Seed returned the key's own buffer")
	}
	if !bytes.Equal(p.Bytes(), want) || !bytes.Equal(k.Public().Bytes(), want) {
		t.Error("Bytes returned the key's own buffer")
	}
}

func TestNewPrivateKeyWrongLength(t *testing.T) {
	for _, n := range []int{0, 1, SeedSize - 1, SeedSize + 1, 64} {
		if k, err := NewPrivateKey(make([]byte, n)); !errors.Is(err, ErrInvalidPrivateKey) || k != nil {
			t.Errorf("NewPrivateKey(%d bytes) = %v, %v; want ErrInvalidPrivateKey", n, k, err)
		}
	}
}
