// Package shamir implements Shamir's secret sharing over GF(2^8), as
// specified in docs/backup.md §6 (A. Shamir, "How to share a secret",
// CACM 22(11), 1979).
//
// Each byte of the secret is the constant term of its own random polynomial
// of degree k−1 over GF(2^8), the AES field (reduction polynomial
// x^8 + x^4 + x^3 + x + 1, 0x11b). Part i is the polynomials' values at
// x = i, for i = 1..n, followed by the one byte x:
//
//	part = y_0 || y_1 || ... || y_{len(secret)-1} || x
//
// which is the layout of HashiCorp Vault's shamir package (Vault picks the x
// coordinates at random; here they are 1..n, which reveals nothing the
// count of parts does not). Any k parts give back the secret by Lagrange
// interpolation at x = 0; any k−1 parts are consistent with every possible
// secret, each equally likely, so they reveal nothing about it.
//
// Field arithmetic is constant time: multiplication is shift-and-add with
// masks and inversion is exponentiation by a fixed exponent, so no table is
// indexed by a secret byte and no branch depends on one.
package shamir

import (
	"errors"

	"github.com/parleyim/parley/internal/primitives"
)

// MaxParts is the largest number of parts: x runs over the 255 non-zero
// field elements.
const MaxParts = 255

var (
	// ErrParameters reports a Split call without 2 ≤ k ≤ n ≤ MaxParts or with
	// an empty secret.
	ErrParameters = errors.New("shamir: need 2 ≤ threshold ≤ parts ≤ 255 and a non-empty secret")
	// ErrTooFewParts reports a Combine call with fewer than two parts: no
	// split made by Split can be recovered from one.
	ErrTooFewParts = errors.New("shamir: at least two parts are needed")
	// ErrMalformedPart reports parts of different lengths, a part too short
	// to hold a value and an x coordinate, an x coordinate of zero (the
	// secret's own coordinate) or more than MaxParts parts.
	ErrMalformedPart = errors.New("shamir: malformed part")
	// ErrDuplicatePart reports two parts with the same x coordinate.
	ErrDuplicatePart = errors.New("shamir: two parts have the same x coordinate")
)

// Split divides secret into n parts of which any k recover it. Each part is
// len(secret)+1 bytes. The polynomial coefficients come from
// primitives.Random and are cleared before Split returns.
func Split(secret []byte, n, k int) ([][]byte, error) {
	return split(secret, n, k, primitives.Random)
}

// split is Split with its randomness injected, so that tests can enumerate
// every polynomial.
func split(secret []byte, n, k int, random func([]byte)) ([][]byte, error) {
	if len(secret) == 0 || k < 2 || n < k || n > MaxParts {
		return nil, ErrParameters
	}
	// coeffs[j*(k-1) : (j+1)*(k-1)] are the coefficients of x^1..x^(k-1)
	// of byte j's polynomial.
	coeffs := make([]byte, len(secret)*(k-1))
	random(coeffs)
	defer clear(coeffs)
	parts := make([][]byte, n)
	for i := range parts {
		x := byte(i + 1)
		p := make([]byte, len(secret)+1)
		for j, s := range secret {
			p[j] = eval(s, coeffs[j*(k-1):(j+1)*(k-1)], x)
		}
		p[len(secret)] = x
		parts[i] = p
	}
	return parts, nil
}

// eval returns c0 + c[0]·x + c[1]·x^2 + ... by Horner's rule.
func eval(c0 byte, c []byte, x byte) byte {
	var y byte
	for i := len(c) - 1; i >= 0; i-- {
		y = mul(y, x) ^ c[i]
	}
	return mul(y, x) ^ c0
}

// Combine interpolates the parts at x = 0 and returns the secret. It cannot
// tell k parts from fewer: given fewer parts than the threshold, or a part
// from another split, it returns bytes unrelated to the secret without an
// error, so callers check the result (internal/backup compares a key ID).
func Combine(parts [][]byte) ([]byte, error) {
	if len(parts) < 2 {
		return nil, ErrTooFewParts
	}
	if len(parts) > MaxParts {
		return nil, ErrMalformedPart
	}
	size := len(parts[0])
	if size < 2 {
		return nil, ErrMalformedPart
	}
	xs := make([]byte, len(parts))
	for i, p := range parts {
		if len(p) != size {
			return nil, ErrMalformedPart
		}
		xs[i] = p[size-1]
		if xs[i] == 0 {
			return nil, ErrMalformedPart
		}
		for _, x := range xs[:i] {
			if x == xs[i] {
				return nil, ErrDuplicatePart
			}
		}
	}
	secret := make([]byte, size-1)
	for i, p := range parts {
		// The Lagrange basis polynomial of part i at 0:
		// ∏_{j≠i} (0 − x_j)/(x_i − x_j), which in characteristic 2 is
		// ∏_{j≠i} x_j/(x_i + x_j). The x coordinates are public.
		num, den := byte(1), byte(1)
		for j, x := range xs {
			if j != i {
				num = mul(num, x)
				den = mul(den, xs[i]^x)
			}
		}
		l := mul(num, inv(den))
		for b := range secret {
			secret[b] ^= mul(l, p[b])
		}
	}
	return secret, nil
}

// mul multiplies in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 without branches
// or tables: each step adds a when b's low bit is set (a mask, not a
// branch), then doubles a, reducing by 0x1b when its top bit falls off.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a
		b >>= 1
		a = a<<1 ^ 0x1b&-(a>>7)
	}
	return p
}

// inv returns a^254, which is a^−1 for a ≠ 0 (the multiplicative group has
// order 255) and 0 for a = 0. The exponent is fixed, so the sequence of
// multiplications is the same for every a.
func inv(a byte) byte {
	r := byte(1)
	for i := 7; i >= 0; i-- {
		r = mul(r, r)
		if 254>>i&1 == 1 {
			r = mul(r, a)
		}
	}
	return r
}
