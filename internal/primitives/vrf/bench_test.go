package vrf

import (
	"testing"

	"filippo.io/edwards25519"

	"github.com/parleyim/parley/internal/primitives"
)

// The benchmarks put Prove and Verify beside a floor of bare edwards25519
// operations measured in the same run, and report vrf/floor, the ratio of
// ns/op of the two sub-benchmarks run back to back (docs/performance.md,
// "VRF"):
//
//	go test -run '^$' -bench . -benchmem -count 8 ./internal/primitives/vrf
//
// Prove's floor is its three scalar multiplications: ScalarBaseMult (U =
// k*B) and two ScalarMult (Gamma = x*H, V = k*H). Verify's floor is one
// ScalarBaseMult and one VarTimeDoubleScalarBaseMult. Everything else
// (try-and-increment, decoding Gamma, the cofactor multiplications, point
// encodings and SHA-512) is the package's cost above the floor.
//
// Verify's floor-tight (vrf/floor-tight) is what RFC 9381 §5.3 cannot do
// without: decoding Gamma and one candidate H, U = s*B - c*Y as a
// VarTimeDoubleScalarBaseMult and V = s*H - c*Gamma as a two-point
// VarTimeMultiScalarMult, which costs several times a ScalarBaseMult.

var (
	betaSink  [OutputSize]byte
	piSink    [ProofSize]byte
	pointSink *edwards25519.Point

	// floorNs is the ns/op of the last floor sub-benchmark of each
	// benchmark, read by the sub-benchmark that follows it.
	floorNs = map[string]float64{}
)

var benchAlpha = []byte("alice\x00\x00\x00\x00\x00\x00\x00\x01")

// benchKey is fixed, so that every round runs try-and-increment the same
// number of times: twice for benchAlpha (ctr = 1), the mean, since about
// half of all strings decode to a point.
func benchKey(b *testing.B) *PrivateKey {
	k, err := NewPrivateKey([]byte("parley vrf benchmark key 0123452"))
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func nsPerOp(b *testing.B) float64 {
	return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
}

func randomScalar(b *testing.B) *edwards25519.Scalar {
	var r [64]byte
	primitives.Random(r[:])
	s, err := new(edwards25519.Scalar).SetUniformBytes(r[:])
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func reportRatio(b *testing.B, name string) {
	if f := floorNs[name]; f > 0 {
		b.ReportMetric(nsPerOp(b)/f, "vrf/floor")
	}
	if f := floorNs[name+"-tight"]; f > 0 {
		b.ReportMetric(nsPerOp(b)/f, "vrf/floor-tight")
	}
}

func BenchmarkProve(b *testing.B) {
	b.Run("impl=floor", func(b *testing.B) {
		x, k := randomScalar(b), randomScalar(b)
		h := GenerateKey().Public().y
		gamma, u, v := new(edwards25519.Point), new(edwards25519.Point), new(edwards25519.Point)
		b.ReportAllocs()
		for b.Loop() {
			gamma.ScalarMult(x, h)
			u.ScalarBaseMult(k)
			v.ScalarMult(k, h)
		}
		pointSink = v
		floorNs["prove"] = nsPerOp(b)
	})
	b.Run("impl=vrf", func(b *testing.B) {
		k := benchKey(b)
		b.ReportAllocs()
		for b.Loop() {
			betaSink, piSink = k.Prove(benchAlpha)
		}
		reportRatio(b, "prove")
	})
}

func BenchmarkVerify(b *testing.B) {
	b.Run("impl=floor", func(b *testing.B) {
		s, c := randomScalar(b), randomScalar(b)
		y := GenerateKey().Public().y
		u, v := new(edwards25519.Point), new(edwards25519.Point)
		b.ReportAllocs()
		for b.Loop() {
			u.ScalarBaseMult(s)
			v.VarTimeDoubleScalarBaseMult(c, y, s)
		}
		pointSink = v
		floorNs["verify"] = nsPerOp(b)
	})
	if _, ctr, _ := encodeToCurve(benchKey(b).pub.b[:], benchAlpha); ctr != 1 {
		b.Fatalf("benchmark input needs ctr = %d, want 1", ctr)
	}
	b.Run("impl=floor-tight", func(b *testing.B) {
		s, c := randomScalar(b), randomScalar(b)
		k := benchKey(b)
		_, pi := k.Prove(benchAlpha)
		y := k.Public().y
		hPoint, _, _ := encodeToCurve(k.pub.b[:], benchAlpha)
		enc := hPoint.Bytes()
		gamma, h, u, v := new(edwards25519.Point), new(edwards25519.Point), new(edwards25519.Point), new(edwards25519.Point)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := gamma.SetBytes(pi[:ptLen]); err != nil {
				b.Fatal(err)
			}
			if _, err := h.SetBytes(enc); err != nil {
				b.Fatal(err)
			}
			u.VarTimeDoubleScalarBaseMult(c, y, s)
			v.VarTimeMultiScalarMult([]*edwards25519.Scalar{s, c}, []*edwards25519.Point{h, gamma})
		}
		pointSink = v
		floorNs["verify-tight"] = nsPerOp(b)
	})
	b.Run("impl=vrf", func(b *testing.B) {
		k := benchKey(b)
		_, pi := k.Prove(benchAlpha)
		pk := k.Public()
		b.ReportAllocs()
		for b.Loop() {
			beta, err := pk.Verify(benchAlpha, pi[:])
			if err != nil {
				b.Fatal(err)
			}
			betaSink = beta
		}
		reportRatio(b, "verify")
	})
}
