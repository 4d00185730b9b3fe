package handshake_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/parleyim/parley/internal/handshake"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/vectortest"
)

// The layout of testdata/vectors/handshake.json, mirroring
// internal/cmd/vectorgen/handshake.go.
type vecDevice struct {
	Entropy     string `json:"entropy"`
	PrivateKeys string `json:"private_keys"`
	PublicKeys  string `json:"public_keys"`
	Fingerprint string `json:"fingerprint"`
}

type vecCase struct {
	Name            string `json:"name"`
	Bundle          string `json:"bundle"`
	LastResort      bool   `json:"last_resort"`
	Entropy         string `json:"entropy"`
	PrekeyMessage   string `json:"prekey_message"`
	InitiatorSecret string `json:"initiator_shared_secret"`
	InitiatorAD     string `json:"initiator_ad"`
	ResponderSecret string `json:"responder_shared_secret"`
	ResponderAD     string `json:"responder_ad"`
}

type vectors struct {
	Initiator        vecDevice `json:"initiator"`
	Responder        vecDevice `json:"responder"`
	PrekeySetEntropy string    `json:"prekey_set_entropy"`
	PrekeyOneTime    int       `json:"prekey_one_time"`
	PrekeySet        string    `json:"prekey_set"`
	Cases            []vecCase `json:"cases"`
	PrekeySetAfter   string    `json:"prekey_set_after"`
}

// underEntropy runs f under a named deterministic stream, as the generator
// did.
func underEntropy(name string, f func()) {
	restore := primitives.UnsafeDeterministicEntropy(name)
	defer restore()
	f()
}

// loadDevice decodes a device's committed keys, checks that they re-encode
// identically and that its generator stream gives the same keys again.
func loadDevice(t *testing.T, name string, d vecDevice) (*identity.DeviceKeys, *identity.DevicePublic) {
	t.Helper()
	privEnc, pubEnc := vectortest.Hex(t, d.PrivateKeys), vectortest.Hex(t, d.PublicKeys)
	keys, err := identity.UnmarshalDeviceKeys(privEnc)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	pub, err := identity.ParseDevicePublic(pubEnc)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(keys.Marshal(), privEnc) || !bytes.Equal(pub.Marshal(), pubEnc) {
		t.Errorf("%s: keys do not re-encode identically", name)
	}
	if !keys.Public().Equal(pub) {
		t.Errorf("%s: public keys are not those of the private keys", name)
	}
	if fp := pub.Fingerprint(); hex.EncodeToString(fp[:]) != d.Fingerprint {
		t.Errorf("%s: fingerprint %x, want %s", name, fp, d.Fingerprint)
	}
	var regen *identity.DeviceKeys
	underEntropy(d.Entropy, func() { regen = identity.GenerateDeviceKeys() })
	if !bytes.Equal(regen.Marshal(), privEnc) {
		t.Errorf("%s: GenerateDeviceKeys under %q gives different keys", name, d.Entropy)
	}
	return keys, pub
}

// TestVectors replays testdata/vectors/handshake.json: every encoding parses
// and re-encodes identically; regenerating each step under its recorded
// stream gives the committed bytes; and a responder rebuilt only from the
// committed prekey set and device keys derives the committed secrets.
func TestVectors(t *testing.T) {
	var v vectors
	vectortest.Load(t, "handshake", &v)
	if len(v.Cases) < 4 {
		t.Fatalf("only %d handshake cases", len(v.Cases))
	}
	aliceKeys, alicePub := loadDevice(t, "initiator", v.Initiator)
	bobKeys, bobPub := loadDevice(t, "responder", v.Responder)

	setEnc := vectortest.Hex(t, v.PrekeySet)
	set, err := prekey.UnmarshalSet(setEnc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(set.Marshal(), setEnc) {
		t.Fatal("prekey set does not re-encode identically")
	}
	underEntropy(v.PrekeySetEntropy, func() {
		regen, _, err := prekey.NewSet(bobKeys.Signing, v.PrekeyOneTime)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(regen.Marshal(), setEnc) {
			t.Error("NewSet under the recorded stream gives a different set")
		}
	})

	shapes := map[[2]bool]bool{}
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			bundleEnc := vectortest.Hex(t, c.Bundle)
			b, err := prekey.ParseBundle(bundleEnc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Marshal(), bundleEnc) {
				t.Error("bundle does not re-encode identically")
			}
			if err := b.Verify(bobPub.Signing); err != nil {
				t.Errorf("bundle does not verify under the responder's key: %v", err)
			}
			if b.PQ.LastResort != c.LastResort {
				t.Errorf("bundle last-resort flag %v, vector says %v", b.PQ.LastResort, c.LastResort)
			}
			shapes[[2]bool{b.OneTime != nil, b.PQ.LastResort}] = true

			msgEnc := vectortest.Hex(t, c.PrekeyMessage)
			m, err := handshake.ParsePrekeyMessage(msgEnc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Marshal(), msgEnc) {
				t.Error("prekey message does not re-encode identically")
			}

			// The initiator, replayed under the recorded stream.
			var ini *handshake.Initiation
			underEntropy(c.Entropy, func() { ini, err = handshake.Initiate(aliceKeys, bobPub, b) })
			if err != nil {
				t.Fatal(err)
			}
			got := (&handshake.PrekeyMessage{Header: ini.Header, Message: m.Message}).Marshal()
			if !bytes.Equal(got, msgEnc) {
				t.Errorf("Initiate under %q gives a different header:\n got  %x\n want %x", c.Entropy, got[:120], msgEnc[:120])
			}
			if hex.EncodeToString(ini.SharedSecret[:]) != c.InitiatorSecret || hex.EncodeToString(ini.AD) != c.InitiatorAD {
				t.Errorf("initiator: secret %x AD %x; want %s, %s", ini.SharedSecret, ini.AD, c.InitiatorSecret, c.InitiatorAD)
			}
			if ini.LastResort != c.LastResort {
				t.Errorf("Initiation.LastResort = %v", ini.LastResort)
			}

			// The responder, from the committed encodings only.
			resp, err := handshake.Respond(bobKeys, set, alicePub, m.Header)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(resp.SharedSecret[:]) != c.ResponderSecret || hex.EncodeToString(resp.AD) != c.ResponderAD {
				t.Errorf("responder: secret %x AD %x; want %s, %s", resp.SharedSecret, resp.AD, c.ResponderSecret, c.ResponderAD)
			}
			if c.InitiatorSecret != c.ResponderSecret || c.InitiatorAD != c.ResponderAD {
				t.Error("the vector's two sides disagree")
			}
			fa, fb := alicePub.Fingerprint(), bobPub.Fingerprint()
			if c.ResponderAD != hex.EncodeToString(fa[:])+hex.EncodeToString(fb[:]) {
				t.Error("AD is not initiator fingerprint || responder fingerprint")
			}
			set.Consume(resp.Prekeys)
		})
	}
	if len(shapes) != 4 {
		t.Errorf("the cases cover %d of the 4 bundle shapes", len(shapes))
	}
	if got := hex.EncodeToString(set.Marshal()); got != v.PrekeySetAfter {
		t.Error("the set after consuming every case differs from prekey_set_after")
	}
	after, err := prekey.UnmarshalSet(vectortest.Hex(t, v.PrekeySetAfter))
	if err != nil {
		t.Fatal(err)
	}
	// Every case is now a replay.
	for _, c := range v.Cases {
		m, err := handshake.ParsePrekeyMessage(vectortest.Hex(t, c.PrekeyMessage))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := handshake.Respond(bobKeys, after, alicePub, m.Header); err == nil {
			t.Errorf("%s: replay against prekey_set_after accepted", c.Name)
		}
	}
}

func TestFuzzCorpus(t *testing.T) {
	vectortest.Corpus(t, "FuzzParsePrekeyMessage")
}
