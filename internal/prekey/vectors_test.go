package prekey_test

import (
	"bytes"
	"testing"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/vectortest"
)

// The prekey parts of testdata/vectors/handshake.json (written by
// internal/cmd/vectorgen/handshake.go); internal/handshake replays the rest.
type vectors struct {
	Responder struct {
		PublicKeys string `json:"public_keys"`
	} `json:"responder"`
	PrekeySet      string `json:"prekey_set"`
	PrekeySetAfter string `json:"prekey_set_after"`
	Cases          []struct {
		Name   string `json:"name"`
		Bundle string `json:"bundle"`
	} `json:"cases"`
}

// TestVectors: the committed bundles and sets parse, re-encode byte for
// byte, and the bundles verify under the responder's signing key.
func TestVectors(t *testing.T) {
	var v vectors
	vectortest.Load(t, "handshake", &v)
	pub, err := identity.ParseDevicePublic(vectortest.Hex(t, v.Responder.PublicKeys))
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) == 0 {
		t.Fatal("no bundles in the vectors")
	}
	for _, c := range v.Cases {
		enc := vectortest.Hex(t, c.Bundle)
		b, err := prekey.ParseBundle(enc)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if !bytes.Equal(b.Marshal(), enc) {
			t.Errorf("%s: bundle does not re-encode identically", c.Name)
		}
		if err := b.Verify(pub.Signing); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	for _, s := range []string{v.PrekeySet, v.PrekeySetAfter} {
		enc := vectortest.Hex(t, s)
		set, err := prekey.UnmarshalSet(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(set.Marshal(), enc) {
			t.Error("prekey set does not re-encode identically")
		}
	}
}

func TestFuzzCorpora(t *testing.T) {
	vectortest.Corpus(t, "FuzzParseBundle")
	vectortest.Corpus(t, "FuzzUnmarshalSet")
}
