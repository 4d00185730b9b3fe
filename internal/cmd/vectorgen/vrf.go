package main

import (
	"bytes"
	"slices"

	"github.com/parleyim/parley/internal/primitives/vrf"
)

// The seed corpora of the VRF fuzz targets. The VRF's known-answer vectors
// are RFC 9381's own (internal/primitives/vrf/testdata/rfc9381-b3.json), so
// this generator writes no vector file.
//
// FuzzVerify reads public key || pi || alpha: valid proofs for several
// keys and inputs, then the same with a flipped challenge bit, an unreduced
// s, a small-order key, and truncations. FuzzNewPublicKey gets valid keys,
// small-order points, non-canonical encodings and wrong lengths.
func init() {
	register("vrf", func() any {
		var verify, keys [][]byte
		alphas := [][]byte{nil, []byte("alice\x00\x00\x00\x01"), bytes.Repeat([]byte{0x5a}, 200)}
		var pk, pi0, alpha0 []byte
		for i := range 3 {
			k := vrf.GenerateKey()
			pub := k.Public().Bytes()
			keys = append(keys, pub)
			_, pi := k.Prove(alphas[i])
			verify = append(verify, slices.Concat(pub, pi[:], alphas[i]))
			if i == 1 {
				pk, pi0, alpha0 = pub, pi[:], alphas[i]
			}
		}
		flipped := slices.Clone(pi0)
		flipped[40] ^= 0x01 // in c
		unreduced := slices.Clone(pi0)
		unreduced[vrf.ProofSize-1] = 0xff // s >= L
		identity := make([]byte, vrf.PublicKeySize)
		identity[0] = 1
		verify = append(verify,
			slices.Concat(pk, flipped, alpha0),
			slices.Concat(pk, unreduced, alpha0),
			slices.Concat(identity, pi0, alpha0),
			slices.Concat(pk, pi0[:vrf.ProofSize-1]),
			slices.Clone(pk),
		)
		addCorpus("internal/primitives/vrf", "FuzzVerify", verify...)

		minusOne := bytes.Repeat([]byte{0xff}, vrf.PublicKeySize) // y = p - 1, order 2
		minusOne[0], minusOne[31] = 0xec, 0x7f
		pPlusOne := slices.Clone(minusOne) // y = p + 1 ≡ 1: the identity, non-canonical
		pPlusOne[0] = 0xee
		signedIdentity := slices.Clone(identity) // x = 0 with the sign bit
		signedIdentity[31] = 0x80
		keys = append(keys, identity, minusOne, pPlusOne, signedIdentity, nil, keys[0][:31])
		addCorpus("internal/primitives/vrf", "FuzzNewPublicKey", keys...)
		return nil
	})
}
