package vrf

import (
	"bytes"
	"crypto/sha512"
	"fmt"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// The ECVRF subroutines of RFC 9381 §5, for ECVRF-EDWARDS25519-SHA512-TAI
// (§5.5). Names follow the RFC.

const (
	suiteString = 0x03 // ECVRF-EDWARDS25519-SHA512-TAI

	ptLen = 32 // point_to_string output
	qLen  = 32 // scalars mod q (the group order L)
	cLen  = 16 // challenge

	// Domain separators (§5.2, §5.4.1.1, §5.4.3).
	encodeToCurveFront = 0x01
	challengeFront     = 0x02
	proofToHashFront   = 0x03
	separatorBack      = 0x00

	// maxTries bounds try-and-increment: ctr_string is int_to_string(ctr, 1),
	// one octet. Each try fails with probability about 1/2, so all 256 fail
	// with probability about 2^-256.
	maxTries = 256
)

var identity = edwards25519.NewIdentityPoint()

// stringToPoint is string_to_point (§5.5): RFC 8032 §5.1.3 decoding, which
// fails on non-canonical encodings. edwards25519's SetBytes accepts the two
// kinds of non-canonical encoding, so they are rejected here first:
// y >= p, and x = 0 (y = ±1) with the sign bit set. It sets dst and
// reports success; on failure dst is unchanged.
func stringToPoint(dst *edwards25519.Point, b []byte) bool {
	if len(b) != ptLen || !canonicalY(b) {
		return false
	}
	_, err := dst.SetBytes(b)
	return err == nil
}

// fieldP is p = 2^255 - 19, little-endian.
var fieldP = [32]byte{
	0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
}

// canonicalY reports whether the 32-byte encoding b has y < p and does not
// set the sign bit on a point with x = 0, that is y = 1 or y = p - 1 (from
// -x² + y² = 1 + dx²y², x = 0 exactly when y² = 1). These are RFC 8032
// §5.1.3 steps 1 and 4. Encodings are public: no constant time needed.
func canonicalY(b []byte) bool {
	var y [32]byte
	copy(y[:], b)
	sign := y[31] >> 7
	y[31] &= 0x7f
	// y < p, comparing little-endian from the most significant byte.
	less := false
	for i := 31; i >= 0; i-- {
		if y[i] != fieldP[i] {
			less = y[i] < fieldP[i]
			break
		}
	}
	if !less {
		return false
	}
	if sign == 1 {
		var one, minusOne [32]byte
		one[0] = 1
		minusOne = fieldP
		minusOne[0]--
		if y == one || y == minusOne {
			return false
		}
	}
	return true
}

// validateKey is ECVRF_validate_key (§5.4.5): Y must decode, and
// cofactor*Y must not be the identity. Keys with a torsion component that
// are not of small order pass, as in the RFC.
func validateKey(pk []byte) (*edwards25519.Point, error) {
	y := new(edwards25519.Point)
	if !stringToPoint(y, pk) {
		return nil, fmt.Errorf("%w: not a canonical point encoding", ErrInvalidPublicKey)
	}
	if new(edwards25519.Point).MultByCofactor(y).Equal(identity) == 1 {
		return nil, fmt.Errorf("%w: point of small order", ErrInvalidPublicKey)
	}
	return y, nil
}

// encodeToCurve is ECVRF_encode_to_curve_try_and_increment (§5.4.1.1) with
// encode_to_curve_salt = PK_string (§5.5). It also returns the ctr it
// succeeded on, for the vector tests. It fails only if all 256 counters
// fail (probability about 2^-256). Its running time depends on alpha, which
// is why the RFC says to avoid this suite where alpha is secret (§5.4.1.1).
func encodeToCurve(salt, alpha []byte) (h *edwards25519.Point, ctr int, ok bool) {
	// suite_string || 0x01 || salt || alpha_string || ctr_string || 0x00,
	// built once; each try rewrites ctr_string.
	var stack [128]byte
	msg := append(stack[:0], suiteString, encodeToCurveFront)
	msg = append(msg, salt...)
	msg = append(msg, alpha...)
	msg = append(msg, 0, separatorBack)
	p := new(edwards25519.Point)
	for ctr = 0; ctr < maxTries; ctr++ {
		msg[len(msg)-2] = byte(ctr)
		sum := sha512.Sum512(msg)
		// interpret_hash_value_as_a_point(s) = string_to_point(s[0]...s[31]).
		if !stringToPoint(p, sum[:ptLen]) {
			continue
		}
		p.MultByCofactor(p)
		if p.Equal(identity) == 1 {
			continue
		}
		return p, ctr, true
	}
	return nil, ctr, false
}

// nonceString is steps 1–3 of ECVRF_nonce_generation_RFC8032 (§5.4.2.2):
// k_string = Hash(truncated_hashed_sk_string || h_string), where prefix is
// truncated_hashed_sk_string. Step 4 (k = string_to_int(k_string) mod q) is
// SetUniformBytes.
func nonceString(prefix *[32]byte, hString []byte) [sha512.Size]byte {
	var msg [32 + ptLen]byte
	copy(msg[:], prefix[:])
	copy(msg[32:], hString)
	k := sha512.Sum512(msg[:])
	clear(msg[:32])
	return k
}

// challengeGeneration is ECVRF_challenge_generation (§5.4.3) over the
// encoded points P1..P5 = Y, H, Gamma, U, V (ptLen octets each): the first
// cLen octets of
// Hash(suite_string || 0x02 || P1 || ... || P5 || 0x00).
func challengeGeneration(y, h, gamma, u, v []byte) [cLen]byte {
	var msg [2 + 5*ptLen + 1]byte
	msg[0], msg[1] = suiteString, challengeFront
	for i, p := range [5][]byte{y, h, gamma, u, v} {
		copy(msg[2+i*ptLen:2+(i+1)*ptLen], p)
	}
	msg[len(msg)-1] = separatorBack
	sum := sha512.Sum512(msg[:])
	return [cLen]byte(sum[:cLen])
}

// challengeScalar is string_to_int(c_string) for a cLen-octet challenge:
// little-endian, always below q.
func challengeScalar(c *[cLen]byte) *edwards25519.Scalar {
	var b [32]byte
	copy(b[:], c[:])
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(b[:])
	if err != nil {
		panic("vrf: internal error: a 128-bit challenge is not a canonical scalar")
	}
	return s
}

// decodeProof is ECVRF_decode_proof (§5.4.4): Gamma must be a canonical
// point encoding and s must be below q. pi has ProofSize octets.
func decodeProof(pi []byte) (gamma *edwards25519.Point, c [cLen]byte, s *edwards25519.Scalar, err error) {
	gamma = new(edwards25519.Point)
	if !stringToPoint(gamma, pi[:ptLen]) {
		return nil, c, nil, fmt.Errorf("%w: Gamma is not a canonical point encoding", ErrInvalidProof)
	}
	c = [cLen]byte(pi[ptLen : ptLen+cLen])
	s, err = new(edwards25519.Scalar).SetCanonicalBytes(pi[ptLen+cLen:])
	if err != nil {
		return nil, c, nil, fmt.Errorf("%w: s is not below the group order", ErrInvalidProof)
	}
	return gamma, c, s, nil
}

// proofToHash is steps 3–5 of ECVRF_proof_to_hash (§5.2), given the
// decoded Gamma: beta = Hash(suite_string || 0x03 ||
// point_to_string(cofactor * Gamma) || 0x00).
func proofToHash(gamma *edwards25519.Point) [OutputSize]byte {
	return hashCofactorGamma(new(edwards25519.Point).MultByCofactor(gamma).Bytes())
}

// hashCofactorGamma is proofToHash given point_to_string(cofactor * Gamma).
func hashCofactorGamma(enc []byte) [OutputSize]byte {
	var msg [2 + ptLen + 1]byte
	msg[0], msg[1] = suiteString, proofToHashFront
	copy(msg[2:], enc)
	msg[len(msg)-1] = separatorBack
	return sha512.Sum512(msg[:])
}

// encodePoints is point_to_string of each of four points, with one field
// inversion for all of them (Montgomery's trick) instead of one each: the
// encoding of (X:Y:Z) is y = Y/Z with the sign of x = X/Z in the top bit,
// as edwards25519's Point.Bytes computes it. Points are public (this is
// for verification), and Z is never zero for a point.
func encodePoints(ps [4]*edwards25519.Point) (out [4][ptLen]byte) {
	var xs, ys, zs, prefix [4]field.Element
	for i, p := range ps {
		x, y, z, _ := p.ExtendedCoordinates()
		xs[i], ys[i], zs[i] = *x, *y, *z
		if i == 0 {
			prefix[i] = zs[i]
		} else {
			prefix[i].Multiply(&prefix[i-1], &zs[i])
		}
	}
	var inv, zInv, x, y field.Element
	inv.Invert(&prefix[len(ps)-1]) // 1 / (Z_0 ... Z_3)
	for i := len(ps) - 1; i >= 0; i-- {
		if i > 0 {
			zInv.Multiply(&inv, &prefix[i-1]) // 1 / Z_i
			inv.Multiply(&inv, &zs[i])        // 1 / (Z_0 ... Z_i-1)
		} else {
			zInv = inv
		}
		x.Multiply(&xs[i], &zInv)
		y.Multiply(&ys[i], &zInv)
		copy(out[i][:], y.Bytes())
		out[i][31] |= byte(x.IsNegative() << 7)
	}
	return out
}

// proofTrace receives the intermediate values of a proof, for the RFC
// 9381 Appendix B.3 vector tests.
type proofTrace struct {
	ctr     int
	h       []byte
	kString [sha512.Size]byte
	u, v    []byte
}

// prove is ECVRF_prove (§5.1) followed by proof_to_hash (§5.2). Secret
// values (x, k) go only through constant-time operations: ScalarMult,
// ScalarBaseMult, SetUniformBytes and MultiplyAdd.
func (k *PrivateKey) prove(alpha []byte, tr *proofTrace) (beta [OutputSize]byte, pi [ProofSize]byte) {
	k.mustBeValid()
	// 1. (x is k.x.)
	// 2. H = ECVRF_encode_to_curve(encode_to_curve_salt, alpha_string)
	h, ctr, ok := encodeToCurve(k.pub.b[:], alpha)
	if !ok {
		panic("vrf: internal error: try-and-increment found no point in 256 tries")
	}
	// 3. h_string = point_to_string(H)
	hString := h.Bytes()
	// 4. Gamma = x*H
	gamma := new(edwards25519.Point).ScalarMult(&k.x, h)
	gammaString := gamma.Bytes()
	// 5. k = ECVRF_nonce_generation(SK, h_string)
	kString := nonceString(&k.prefix, hString)
	nonce, err := new(edwards25519.Scalar).SetUniformBytes(kString[:])
	if err != nil {
		panic("vrf: internal error: " + err.Error())
	}
	// 6. c = ECVRF_challenge_generation(Y, H, Gamma, k*B, k*H)
	u := new(edwards25519.Point).ScalarBaseMult(nonce).Bytes()
	v := new(edwards25519.Point).ScalarMult(nonce, h).Bytes()
	c := challengeGeneration(k.pub.b[:], hString, gammaString, u, v)
	// 7. s = (k + c*x) mod q
	s := new(edwards25519.Scalar).MultiplyAdd(challengeScalar(&c), &k.x, nonce)
	// 8. pi_string = point_to_string(Gamma) || int_to_string(c, cLen) || int_to_string(s, qLen)
	copy(pi[:ptLen], gammaString)
	copy(pi[ptLen:], c[:])
	copy(pi[ptLen+cLen:], s.Bytes())
	if tr != nil {
		*tr = proofTrace{ctr: ctr, h: hString, kString: kString, u: u, v: v}
	}
	clear(kString[:])
	nonce.Set(edwards25519.NewScalar())
	return proofToHash(gamma), pi
}

// verify is ECVRF_verify (§5.3) from step 4 on, for the validated public
// key y with encoding pk (steps 1–3 are NewPublicKey). pi has ProofSize
// octets.
func verify(pk []byte, y *edwards25519.Point, alpha, pi []byte) (beta [OutputSize]byte, err error) {
	// 4.–6. D = ECVRF_decode_proof(pi_string); (Gamma, c, s) = D
	gamma, c, s, err := decodeProof(pi)
	if err != nil {
		return beta, err
	}
	// 7. H = ECVRF_encode_to_curve(encode_to_curve_salt, alpha_string)
	h, _, ok := encodeToCurve(pk, alpha)
	if !ok {
		return beta, fmt.Errorf("%w: no curve point for alpha", ErrInvalidProof)
	}
	negC := new(edwards25519.Scalar).Negate(challengeScalar(&c))
	// 8. U = s*B - c*Y
	u := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(negC, y, s)
	// 9. V = s*H - c*Gamma
	v := new(edwards25519.Point).VarTimeMultiScalarMult([]*edwards25519.Scalar{s, negC}, []*edwards25519.Point{h, gamma})
	// The encodings of H, U, V (step 10) and cofactor*Gamma (for beta),
	// with one inversion.
	enc := encodePoints([4]*edwards25519.Point{h, u, v, new(edwards25519.Point).MultByCofactor(gamma)})
	// 10. c' = ECVRF_challenge_generation(Y, H, Gamma, U, V)
	// Gamma decoded canonically, so its encoding is pi[:ptLen].
	cPrime := challengeGeneration(pk, enc[0][:], pi[:ptLen], enc[1][:], enc[2][:])
	// 11. Valid if c = c'. Nothing here is secret, so a plain comparison.
	if !bytes.Equal(c[:], cPrime[:]) {
		return beta, fmt.Errorf("%w: challenge mismatch", ErrInvalidProof)
	}
	return hashCofactorGamma(enc[3][:]), nil
}
