package vrf

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/big"
	"slices"
	"testing"

	"filippo.io/edwards25519"
)

// smallOrderPoints are the canonical encodings of the 8 points of order
// dividing 8 on edwards25519: the identity, the point of order 2 (y = -1),
// the two of order 4 (y = 0) and the four of order 8.
// TestSmallOrderPointsAreTheTorsion derives them from the curve.
var smallOrderPoints = []string{
	"0100000000000000000000000000000000000000000000000000000000000000",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0000000000000000000000000000000000000000000000000000000000000080",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
}

// nonCanonicalSmallOrder are non-canonical encodings of small-order points:
// y >= p (y = p ≡ 0, y = p + 1 ≡ 1, each with either sign bit) and x = 0
// with the sign bit set (y = 1, y = -1).
var nonCanonicalSmallOrder = []string{
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"0100000000000000000000000000000000000000000000000000000000000080",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
}

// groupOrder is L, the order of the prime-order subgroup.
var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

func leBytes(n *big.Int) []byte {
	b := n.FillBytes(make([]byte, 32))
	slices.Reverse(b)
	return b
}

func fromLE(b []byte) *big.Int {
	r := slices.Clone(b)
	slices.Reverse(r)
	return new(big.Int).SetBytes(r)
}

// TestSmallOrderPointsAreTheTorsion derives the 8-torsion from a point of
// order 8 and checks that smallOrderPoints is exactly that set, so the
// rejection tests below cover every small-order key.
func TestSmallOrderPointsAreTheTorsion(t *testing.T) {
	p8, err := new(edwards25519.Point).SetBytes(unhex(t, smallOrderPoints[4]))
	if err != nil {
		t.Fatal(err)
	}
	if new(edwards25519.Point).MultByCofactor(p8).Equal(identity) != 1 {
		t.Fatal("8*P is not the identity")
	}
	four := new(edwards25519.Point).Add(p8, p8)
	four.Add(four, four)
	if four.Equal(identity) == 1 {
		t.Fatal("P has order below 8")
	}
	var got []string
	q := edwards25519.NewIdentityPoint()
	for range 8 {
		got = append(got, hex.EncodeToString(q.Bytes()))
		q.Add(q, p8)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(smallOrderPoints))
	if !slices.Equal(got, want) {
		t.Errorf("torsion = %q, want %q", got, want)
	}
}

// TestSmallOrderPublicKeysRejected: every small-order point, canonical or
// not, is refused as a public key (RFC 9381 §5.4.5).
func TestSmallOrderPublicKeysRejected(t *testing.T) {
	for _, s := range append(slices.Clone(smallOrderPoints), nonCanonicalSmallOrder...) {
		if pk, err := NewPublicKey(unhex(t, s)); !errors.Is(err, ErrInvalidPublicKey) || pk != nil {
			t.Errorf("NewPublicKey(%s) = %v, %v; want ErrInvalidPublicKey", s, pk, err)
		}
	}
}

// TestSmallOrderKeyForgery is the attack validate_key stops: under the
// identity as public key, anyone can "prove" that every alpha maps to the
// same beta (Gamma = identity, s = k), which would put every label at one
// index of the key-transparency tree. The forged proof verifies when the
// key check is skipped, and NewPublicKey refuses the key.
func TestSmallOrderKeyForgery(t *testing.T) {
	pkString := unhex(t, smallOrderPoints[0])
	y, err := new(edwards25519.Point).SetBytes(pkString)
	if err != nil {
		t.Fatal(err)
	}
	forge := func(alpha []byte) []byte {
		h, _, ok := encodeToCurve(pkString, alpha)
		if !ok {
			t.Fatal("encodeToCurve failed")
		}
		k, err := new(edwards25519.Scalar).SetUniformBytes(bytes.Repeat([]byte{7}, 64))
		if err != nil {
			t.Fatal(err)
		}
		gamma := edwards25519.NewIdentityPoint()
		u := new(edwards25519.Point).ScalarBaseMult(k)
		v := new(edwards25519.Point).ScalarMult(k, h)
		c := challengeGeneration(pkString, h.Bytes(), gamma.Bytes(), u.Bytes(), v.Bytes())
		return slices.Concat(gamma.Bytes(), c[:], k.Bytes())
	}
	beta1, err1 := verify(pkString, y, []byte("alice"), forge([]byte("alice")))
	beta2, err2 := verify(pkString, y, []byte("bob"), forge([]byte("bob")))
	if err1 != nil || err2 != nil || beta1 != beta2 {
		t.Fatalf("the forgery does not work without validate_key (%v, %v), so this test proves nothing", err1, err2)
	}
	if _, err := NewPublicKey(pkString); !errors.Is(err, ErrInvalidPublicKey) {
		t.Fatalf("NewPublicKey accepted the identity: %v", err)
	}
}

// largeOrderSmallY returns a point of large order whose y is below 19, so
// that y + p (which fits in 255 bits) is a non-canonical encoding of it.
func largeOrderSmallY(t *testing.T) (canonical, nonCanonical []byte) {
	t.Helper()
	p := fromLE(fieldP[:])
	for y := int64(2); y < 19; y++ {
		for _, sign := range []byte{0, 0x80} {
			b := leBytes(big.NewInt(y))
			b[31] |= sign
			pt, err := new(edwards25519.Point).SetBytes(b)
			if err != nil || new(edwards25519.Point).MultByCofactor(pt).Equal(identity) == 1 {
				continue
			}
			nc := leBytes(new(big.Int).Add(big.NewInt(y), p))
			nc[31] |= sign
			return b, nc
		}
	}
	t.Fatal("no point of large order with y < 19")
	return nil, nil
}

// TestNonCanonicalPublicKeyRejected: a point's encoding with y + p in place
// of y decodes to the same point in lenient decoders; RFC 8032 §5.1.3
// decoding, and so NewPublicKey, must refuse it while accepting the
// canonical encoding, so that one key has one encoding.
func TestNonCanonicalPublicKeyRejected(t *testing.T) {
	canonical, nonCanonical := largeOrderSmallY(t)
	if _, err := new(edwards25519.Point).SetBytes(nonCanonical); err != nil {
		t.Fatalf("edwards25519 refuses %x itself, so this test proves nothing", nonCanonical)
	}
	if _, err := NewPublicKey(canonical); err != nil {
		t.Fatalf("NewPublicKey(%x): %v", canonical, err)
	}
	if _, err := NewPublicKey(nonCanonical); !errors.Is(err, ErrInvalidPublicKey) {
		t.Fatalf("NewPublicKey(%x) = %v, want ErrInvalidPublicKey", nonCanonical, err)
	}
}

// TestTorsionComponentKeyAccepted documents that validation is exactly the
// RFC's: a key of large order with a torsion component (not in the
// prime-order subgroup, not of small order) is accepted.
func TestTorsionComponentKeyAccepted(t *testing.T) {
	y := GenerateKey().Public().y
	t8, err := new(edwards25519.Point).SetBytes(unhex(t, smallOrderPoints[4]))
	if err != nil {
		t.Fatal(err)
	}
	mixed := new(edwards25519.Point).Add(y, t8).Bytes()
	if _, err := NewPublicKey(mixed); err != nil {
		t.Fatalf("NewPublicKey refused a key with a torsion component: %v", err)
	}
}

// TestCanonicalYMatchesReencoding checks the byte-level canonicity test
// against its definition: a decodable encoding is canonical exactly when
// decoding and re-encoding gives the same bytes.
func TestCanonicalYMatchesReencoding(t *testing.T) {
	var cases [][]byte
	for _, s := range append(slices.Clone(smallOrderPoints), nonCanonicalSmallOrder...) {
		cases = append(cases, unhex(t, s))
	}
	c, nc := largeOrderSmallY(t)
	cases = append(cases, c, nc)
	// Every y in [p - 20, 2^255) and every y < 20, with both signs.
	p := fromLE(fieldP[:])
	for d := int64(-20); d < 19; d++ {
		for _, base := range []*big.Int{p, big.NewInt(0)} {
			y := new(big.Int).Add(base, big.NewInt(d))
			if y.Sign() < 0 || y.BitLen() > 255 {
				continue
			}
			b := leBytes(y)
			cases = append(cases, b, append(b[:31:31], b[31]|0x80))
		}
	}
	for range 200 {
		cases = append(cases, GenerateKey().Public().Bytes())
	}
	decodable := 0
	for _, b := range cases {
		pt, err := new(edwards25519.Point).SetBytes(b)
		if err != nil {
			if stringToPoint(new(edwards25519.Point), b) {
				t.Errorf("stringToPoint accepted undecodable %x", b)
			}
			continue
		}
		decodable++
		if want := bytes.Equal(pt.Bytes(), b); canonicalY(b) != want {
			t.Errorf("canonicalY(%x) = %v, want %v", b, !want, want)
		}
	}
	if decodable < 250 {
		t.Fatalf("only %d decodable cases", decodable)
	}
}

func proveFresh(t *testing.T) (*PublicKey, []byte, []byte) {
	t.Helper()
	k := GenerateKey()
	alpha := []byte("alice\x00\x00\x00\x01")
	_, pi := k.Prove(alpha)
	return k.Public(), alpha, pi[:]
}

// TestVerifyRejectsTamperedProof: flipping any bit of any byte of a valid
// proof is rejected. Flips in Gamma change the point (or break it), flips
// in c or s break the challenge, high flips in s make it unreduced.
func TestVerifyRejectsTamperedProof(t *testing.T) {
	pk, alpha, pi := proveFresh(t)
	if _, err := pk.Verify(alpha, pi); err != nil {
		t.Fatal(err)
	}
	for i := range ProofSize {
		for bit := range 8 {
			bad := slices.Clone(pi)
			bad[i] ^= 1 << bit
			if beta, err := pk.Verify(alpha, bad); !errors.Is(err, ErrInvalidProof) || beta != [OutputSize]byte{} {
				t.Errorf("byte %d bit %d: Verify = %x, %v; want ErrInvalidProof and no output", i, bit, beta[:4], err)
			}
		}
	}
}

// TestVerifyRejectsMalleatedScalar: s + L is the same scalar mod L, so a
// verifier that reduced s instead of rejecting it would accept a second
// encoding of the same proof (RFC 9381 §5.4.4 step 8).
func TestVerifyRejectsMalleatedScalar(t *testing.T) {
	pk, alpha, pi := proveFresh(t)
	s := fromLE(pi[ptLen+cLen:])
	mal := slices.Concat(pi[:ptLen+cLen], leBytes(new(big.Int).Add(s, groupOrder)))
	if _, err := pk.Verify(alpha, mal); !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("Verify accepted s + L: %v", err)
	}
	// The same forgery is accepted once s is reduced, so the check is what
	// stops it.
	red, err := new(edwards25519.Scalar).SetUniformBytes(append(slices.Clone(mal[ptLen+cLen:]), make([]byte, 32)...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pk.Verify(alpha, slices.Concat(mal[:ptLen+cLen], red.Bytes())); err != nil {
		t.Fatalf("reduced s does not verify: %v", err)
	}
}

// TestVerifyRejectsNonCanonicalGamma: Gamma must be a canonical encoding
// (RFC 9381 §5.4.4 step 4, string_to_point).
func TestVerifyRejectsNonCanonicalGamma(t *testing.T) {
	pk, alpha, pi := proveFresh(t)
	_, nc := largeOrderSmallY(t)
	for _, g := range append([][]byte{nc}, unhex(t, nonCanonicalSmallOrder[4]), unhex(t, nonCanonicalSmallOrder[0])) {
		bad := slices.Concat(g, pi[ptLen:])
		if _, _, _, err := decodeProof(bad); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("decodeProof accepted Gamma %x: %v", g, err)
		}
		if _, err := pk.Verify(alpha, bad); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("Verify accepted Gamma %x: %v", g, err)
		}
	}
}

// TestVerifyRejectsWrongAlpha: a proof for one input does not verify for
// another (the key-transparency index of one label cannot be passed off
// as another's).
func TestVerifyRejectsWrongAlpha(t *testing.T) {
	pk, alpha, pi := proveFresh(t)
	for _, other := range [][]byte{nil, []byte("alice"), []byte("alice\x00\x00\x00\x02"), append(slices.Clone(alpha), 0)} {
		if _, err := pk.Verify(other, pi); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("Verify(%q) = %v, want ErrInvalidProof", other, err)
		}
	}
}

// TestVerifyRejectsWrongPublicKey: a proof made under one key does not
// verify under another (a server cannot present indexes computed with a key
// the client did not pin).
func TestVerifyRejectsWrongPublicKey(t *testing.T) {
	_, alpha, pi := proveFresh(t)
	if _, err := GenerateKey().Public().Verify(alpha, pi); !errors.Is(err, ErrInvalidProof) {
		t.Fatalf("Verify under another key = %v, want ErrInvalidProof", err)
	}
}

// TestWrongLengths: every input of the wrong length is a typed error.
func TestWrongLengths(t *testing.T) {
	pk, alpha, pi := proveFresh(t)
	for _, n := range []int{0, 1, ProofSize - 1, ProofSize + 1, 2 * ProofSize} {
		bad := make([]byte, n)
		copy(bad, pi)
		if _, err := pk.Verify(alpha, bad); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("Verify(%d-byte proof) = %v, want ErrInvalidProof", n, err)
		}
	}
	good := pk.Bytes()
	for _, n := range []int{0, 1, PublicKeySize - 1, PublicKeySize + 1, 64} {
		bad := make([]byte, n)
		copy(bad, good)
		if p, err := NewPublicKey(bad); !errors.Is(err, ErrInvalidPublicKey) || p != nil {
			t.Errorf("NewPublicKey(%d bytes) = %v, %v; want ErrInvalidPublicKey", n, p, err)
		}
	}
}

// TestZeroPublicKey: a nil or zero PublicKey is an error, not a panic.
func TestZeroPublicKey(t *testing.T) {
	_, alpha, pi := proveFresh(t)
	for _, p := range []*PublicKey{nil, {}} {
		if _, err := p.Verify(alpha, pi); !errors.Is(err, ErrInvalidPublicKey) {
			t.Errorf("Verify on %#v = %v, want ErrInvalidPublicKey", p, err)
		}
	}
}

// TestDegenerateProofsRejected: the all-zero proof and the
// identity-Gamma proof with zero scalars are rejected under a real key.
func TestDegenerateProofsRejected(t *testing.T) {
	pk, alpha, _ := proveFresh(t)
	zero := make([]byte, ProofSize)
	ident := slices.Concat(unhex(t, smallOrderPoints[0]), make([]byte, cLen+qLen))
	for _, pi := range [][]byte{zero, ident} {
		if _, err := pk.Verify(alpha, pi); !errors.Is(err, ErrInvalidProof) {
			t.Errorf("Verify(%x) = %v, want ErrInvalidProof", pi, err)
		}
	}
}

// TestEncodePointsMatchesBytes: Verify encodes H, U, V and cofactor*Gamma
// with one shared inversion; each encoding must be exactly
// edwards25519's point_to_string, for points reached by additions (so with
// Z ≠ 1), the identity and the other small-order points, in any position.
func TestEncodePointsMatchesBytes(t *testing.T) {
	var pts []*edwards25519.Point
	g := edwards25519.NewGeneratorPoint()
	acc := edwards25519.NewIdentityPoint()
	for range 12 {
		acc = new(edwards25519.Point).Add(acc, g)
		acc.Add(acc, acc)
		pts = append(pts, new(edwards25519.Point).Set(acc))
	}
	for _, h := range smallOrderPoints {
		p, err := new(edwards25519.Point).SetBytes(mustHex(t, h))
		if err != nil {
			t.Fatal(err)
		}
		// Scaled by a point operation so that Z is not 1.
		pts = append(pts, new(edwards25519.Point).Add(p, edwards25519.NewIdentityPoint()).Add(p, new(edwards25519.Point).Subtract(g, g)))
	}
	for i := 0; i+4 <= len(pts); i++ {
		quad := [4]*edwards25519.Point{pts[i], pts[(i+5)%len(pts)], pts[(i+11)%len(pts)], pts[(i+17)%len(pts)]}
		got := encodePoints(quad)
		for j, p := range quad {
			if !bytes.Equal(got[j][:], p.Bytes()) {
				t.Fatalf("point %d of set %d: %x, want %x", j, i, got[j], p.Bytes())
			}
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
