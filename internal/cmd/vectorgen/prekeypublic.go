package main

import (
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
)

// Seed corpus for the server's upload decoders: a public prekey of every
// kind, each prefixed by the kind byte the fuzz target parses it as.
func init() {
	register("prekeypublic", func() any {
		signer := primitives.GenerateSigningKey()
		_, up, err := prekey.NewSet(signer, 1)
		if err != nil {
			panic("vectorgen: prekeypublic: " + err.Error())
		}
		seeds := [][]byte{
			append([]byte{byte(prekey.KindSignedX25519)}, up.Signed.Marshal(prekey.KindSignedX25519)...),
			append([]byte{byte(prekey.KindOneTimeX25519)}, up.OneTime[0].Marshal(prekey.KindOneTimeX25519)...),
			append([]byte{byte(prekey.KindOneTimeMLKEM)}, up.PQ[0].Marshal()...),
			append([]byte{byte(prekey.KindLastResortMLKEM)}, up.LastResort.Marshal()...),
		}
		addCorpus("internal/prekey", "FuzzParsePublicPrekey", seeds...)
		return nil
	})
}
