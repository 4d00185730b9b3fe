package main

import (
	"encoding/hex"

	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
)

// prekeyPublicVector is one public prekey as a device uploads it.
type prekeyPublicVector struct {
	Kind       byte   `json:"kind"`
	ID         uint32 `json:"id"`
	Key        string `json:"key"`
	Signature  string `json:"signature"`
	Encoding   string `json:"encoding"`
	SigningKey string `json:"device_signing_key"`
}

// The single public prekey encodings (docs/protocol.md §7.4) and the seed
// corpus of the server's upload decoders: a public prekey of every kind,
// each prefixed by the kind byte the fuzz target parses it as.
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
		var out []prekeyPublicVector
		spk := hex.EncodeToString(signer.Public().Bytes())
		for _, x := range []struct {
			kind prekey.Kind
			p    *prekey.X25519Public
		}{{prekey.KindSignedX25519, up.Signed}, {prekey.KindOneTimeX25519, &up.OneTime[0]}} {
			out = append(out, prekeyPublicVector{Kind: byte(x.kind), ID: uint32(x.p.ID), Key: hex.EncodeToString(x.p.Key.Bytes()),
				Signature: hex.EncodeToString(x.p.Signature), Encoding: hex.EncodeToString(x.p.Marshal(x.kind)), SigningKey: spk})
		}
		for _, m := range []*prekey.MLKEMPublic{&up.PQ[0], up.LastResort} {
			out = append(out, prekeyPublicVector{Kind: byte(m.Kind()), ID: uint32(m.ID), Key: hex.EncodeToString(m.Key.Bytes()),
				Signature: hex.EncodeToString(m.Signature), Encoding: hex.EncodeToString(m.Marshal()), SigningKey: spk})
		}
		return out
	})
}
