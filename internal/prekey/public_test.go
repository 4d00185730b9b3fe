package prekey

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/vectortest"
	"github.com/parleyim/parley/internal/wire"
)

func TestPublicPrekeyEncodings(t *testing.T) {
	signer := primitives.GenerateSigningKey()
	_, up, err := NewSet(signer, 1)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		enc   []byte
		parse func([]byte) ([]byte, error)
	}{
		{"signed", up.Signed.Marshal(KindSignedX25519), func(b []byte) ([]byte, error) {
			p, err := ParseX25519Public(b, KindSignedX25519)
			if err != nil {
				return nil, err
			}
			return p.Marshal(KindSignedX25519), p.Verify(signer.Public(), KindSignedX25519)
		}},
		{"one-time", up.OneTime[0].Marshal(KindOneTimeX25519), func(b []byte) ([]byte, error) {
			p, err := ParseX25519Public(b, KindOneTimeX25519)
			if err != nil {
				return nil, err
			}
			return p.Marshal(KindOneTimeX25519), p.Verify(signer.Public(), KindOneTimeX25519)
		}},
		{"pq", up.PQ[0].Marshal(), func(b []byte) ([]byte, error) {
			p, err := ParseMLKEMPublic(b, KindOneTimeMLKEM)
			if err != nil {
				return nil, err
			}
			return p.Marshal(), p.Verify(signer.Public())
		}},
		{"last-resort", up.LastResort.Marshal(), func(b []byte) ([]byte, error) {
			p, err := ParseMLKEMPublic(b, KindLastResortMLKEM)
			if err != nil {
				return nil, err
			}
			return p.Marshal(), p.Verify(signer.Public())
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.parse(c.enc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.enc) {
				t.Fatal("does not re-encode identically")
			}
			for i := range len(c.enc) {
				if _, err := c.parse(c.enc[:i]); !errors.Is(err, wire.ErrMalformed) {
					t.Fatalf("prefix %d: %v", i, err)
				}
			}
		})
	}
	// The kind is checked: a one-time key is not accepted as the signed
	// prekey, nor a one-time ML-KEM key as the last-resort key.
	if _, err := ParseX25519Public(up.OneTime[0].Marshal(KindOneTimeX25519), KindSignedX25519); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("kind confusion accepted: %v", err)
	}
	if _, err := ParseMLKEMPublic(up.PQ[0].Marshal(), KindLastResortMLKEM); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("kind confusion accepted: %v", err)
	}
	// And even a relabelled encoding fails the signature.
	p, _ := ParseX25519Public(up.OneTime[0].Marshal(KindOneTimeX25519), KindOneTimeX25519)
	if err := p.Verify(signer.Public(), KindSignedX25519); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("relabelled prekey verified: %v", err)
	}
}

// FuzzParsePublicPrekey: the server parses every uploaded prekey. The first
// byte picks the kind to parse as; accepted inputs re-encode identically.
func FuzzParsePublicPrekey(f *testing.F) {
	vectortest.Corpus(f, "FuzzParsePublicPrekey")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		kind, enc := Kind(data[0]), data[1:]
		switch kind {
		case KindSignedX25519, KindOneTimeX25519:
			p, err := ParseX25519Public(enc, kind)
			if err == nil && !bytes.Equal(p.Marshal(kind), enc) {
				t.Fatal("accepted X25519 prekey does not re-encode identically")
			}
		case KindOneTimeMLKEM, KindLastResortMLKEM:
			p, err := ParseMLKEMPublic(enc, kind)
			if err == nil && !bytes.Equal(p.Marshal(), enc) {
				t.Fatal("accepted ML-KEM prekey does not re-encode identically")
			}
		}
	})
}

func TestPublicPrekeyCorpus(t *testing.T) { vectortest.Corpus(t, "FuzzParsePublicPrekey") }

type prekeyPublicVector struct {
	Kind       byte   `json:"kind"`
	ID         uint32 `json:"id"`
	Key        string `json:"key"`
	Signature  string `json:"signature"`
	Encoding   string `json:"encoding"`
	SigningKey string `json:"device_signing_key"`
}

// TestPublicPrekeyVectors replays the committed single-prekey encodings:
// each decodes to the committed fields, re-encodes identically and verifies
// under the committed device key.
func TestPublicPrekeyVectors(t *testing.T) {
	var vs []prekeyPublicVector
	vectortest.Load(t, "prekeypublic", &vs)
	if len(vs) != 4 {
		t.Fatalf("%d vectors, want one per kind", len(vs))
	}
	for _, v := range vs {
		signer, err := primitives.NewSigningPublicKey(vectortest.Hex(t, v.SigningKey))
		if err != nil {
			t.Fatal(err)
		}
		enc := vectortest.Hex(t, v.Encoding)
		kind := Kind(v.Kind)
		var id ID
		var key, sig, again []byte
		switch kind {
		case KindSignedX25519, KindOneTimeX25519:
			p, err := ParseX25519Public(enc, kind)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Verify(signer, kind); err != nil {
				t.Fatal(err)
			}
			id, key, sig, again = p.ID, p.Key.Bytes(), p.Signature, p.Marshal(kind)
		default:
			p, err := ParseMLKEMPublic(enc, kind)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Verify(signer); err != nil {
				t.Fatal(err)
			}
			id, key, sig, again = p.ID, p.Key.Bytes(), p.Signature, p.Marshal()
		}
		if uint32(id) != v.ID || !bytes.Equal(key, vectortest.Hex(t, v.Key)) || !bytes.Equal(sig, vectortest.Hex(t, v.Signature)) || !bytes.Equal(again, enc) {
			t.Fatalf("%s vector does not round-trip", kind)
		}
	}
}
