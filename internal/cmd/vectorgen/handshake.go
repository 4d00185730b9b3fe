package main

import (
	"encoding/hex"
	"strconv"

	"github.com/parleyim/parley/internal/handshake"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
)

// The handshake vectors (testdata/vectors/handshake.json) pin the prekey
// bundle, prekey set and prekey message encodings and the PQXDH-class key
// agreement of docs/protocol.md §3.5, §4 and §7.4–7.5: two devices, the
// responder's prekey set, and one handshake for each bundle shape. Every
// randomized step runs under its own named deterministic stream, recorded in
// the file, so that internal/handshake/vectors_test.go can replay each step on
// its own.

type hsDevice struct {
	Entropy     string `json:"entropy"`      // identity.GenerateDeviceKeys under this stream
	PrivateKeys string `json:"private_keys"` // DeviceKeys.Marshal (test keys, never use them)
	PublicKeys  string `json:"public_keys"`  // DevicePublic.Marshal
	Fingerprint string `json:"fingerprint"`
}

type hsCase struct {
	Name string `json:"name"`
	// Bundle is the bundle the initiator fetched (Bundle.Marshal).
	Bundle     string `json:"bundle"`
	LastResort bool   `json:"last_resort"`
	// Entropy is the stream under which Initiate (ephemeral key, then
	// encapsulation) produced the header.
	Entropy string `json:"entropy"`
	// PrekeyMessage is PrekeyMessage{Header, Message}.Marshal; the ratchet
	// message is a fixed placeholder (the handshake does not read it).
	PrekeyMessage   string `json:"prekey_message"`
	InitiatorSecret string `json:"initiator_shared_secret"`
	InitiatorAD     string `json:"initiator_ad"`
	ResponderSecret string `json:"responder_shared_secret"`
	ResponderAD     string `json:"responder_ad"`
}

type hsVectors struct {
	Comment   string   `json:"comment"`
	Initiator hsDevice `json:"initiator"`
	Responder hsDevice `json:"responder"`
	// PrekeySet is the responder's set (Set.Marshal) as NewSet(responder
	// signing key, PrekeyOneTime) made it under PrekeySetEntropy.
	PrekeySetEntropy string `json:"prekey_set_entropy"`
	PrekeyOneTime    int    `json:"prekey_one_time"`
	PrekeySet        string `json:"prekey_set"`
	// Cases run in order against PrekeySet; the responder consumes each
	// case's prekeys after it, which leaves PrekeySetAfter.
	Cases          []hsCase `json:"cases"`
	PrekeySetAfter string   `json:"prekey_set_after"`
}

// hsEntropyName names a deterministic stream of the handshake vectors.
func hsEntropyName(what string) string { return "parley vectors handshake/" + what }

// underHSEntropy runs f under the named stream and restores crypto/rand.
func underHSEntropy(name string, f func()) {
	restore := primitives.UnsafeDeterministicEntropy(name)
	defer restore()
	f()
}

// hsPlaceholderMessage stands in for the first ratchet message.
var hsPlaceholderMessage = []byte("parley handshake vector: first ratchet message")

func init() {
	register("handshake", genHandshake)
}

func hsDeviceVector(entropy string) (*identity.DeviceKeys, hsDevice) {
	var k *identity.DeviceKeys
	underHSEntropy(entropy, func() { k = identity.GenerateDeviceKeys() })
	pub := k.Public()
	fp := pub.Fingerprint()
	return k, hsDevice{
		Entropy:     entropy,
		PrivateKeys: hex.EncodeToString(k.Marshal()),
		PublicKeys:  hex.EncodeToString(pub.Marshal()),
		Fingerprint: hex.EncodeToString(fp[:]),
	}
}

func hsMust(err error) {
	if err != nil {
		panic("vectorgen: handshake: " + err.Error())
	}
}

func genHandshake() any {
	v := &hsVectors{
		Comment: "Known-answer vectors for internal/prekey and internal/handshake (docs/protocol.md §3.5, §4, §7.4, §7.5). " +
			"All byte strings are hex; each entropy field names the deterministic stream " +
			"(primitives.UnsafeDeterministicEntropy) a step ran under. Regenerate with: go run ./internal/cmd/vectorgen",
		PrekeyOneTime: 2,
	}
	alice, av := hsDeviceVector(hsEntropyName("initiator device keys"))
	bob, bv := hsDeviceVector(hsEntropyName("responder device keys"))
	v.Initiator, v.Responder = av, bv

	v.PrekeySetEntropy = hsEntropyName("responder prekey set")
	var set *prekey.Set
	var up *prekey.Upload
	underHSEntropy(v.PrekeySetEntropy, func() {
		var err error
		set, up, err = prekey.NewSet(bob.Signing, v.PrekeyOneTime)
		hsMust(err)
	})
	setEnc := set.Marshal()
	v.PrekeySet = hex.EncodeToString(setEnc)

	shapes := []struct {
		name string
		i, j int // one-time X25519 and ML-KEM prekey indices; -1: none / last resort
	}{
		{"one-time X25519 and one-time ML-KEM prekey", 0, 0},
		{"one-time ML-KEM prekey, no one-time X25519 prekey", -1, 1},
		{"one-time X25519 prekey and last-resort ML-KEM prekey", 1, -1},
		{"last-resort ML-KEM prekey only", -1, -1},
	}
	var bundles, messages [][]byte
	for n, sh := range shapes {
		b := &prekey.Bundle{Signed: *up.Signed}
		if sh.i >= 0 {
			ot := up.OneTime[sh.i]
			b.OneTime = &ot
		}
		if sh.j >= 0 {
			b.PQ = up.PQ[sh.j]
		} else {
			b.PQ = *up.LastResort
		}
		benc := b.Marshal()
		bundles = append(bundles, benc)

		c := hsCase{Name: sh.name, Bundle: hex.EncodeToString(benc), LastResort: sh.j < 0,
			Entropy: hsEntropyName("initiate " + strconv.Itoa(n))}
		var ini *handshake.Initiation
		underHSEntropy(c.Entropy, func() {
			var err error
			ini, err = handshake.Initiate(alice, bob.Public(), b)
			hsMust(err)
		})
		menc := (&handshake.PrekeyMessage{Header: ini.Header, Message: hsPlaceholderMessage}).Marshal()
		messages = append(messages, menc)
		m, err := handshake.ParsePrekeyMessage(menc)
		hsMust(err)
		// Responding draws no randomness.
		resp, err := handshake.Respond(bob, set, alice.Public(), m.Header)
		hsMust(err)
		set.Consume(resp.Prekeys)
		c.PrekeyMessage = hex.EncodeToString(menc)
		c.InitiatorSecret, c.InitiatorAD = hex.EncodeToString(ini.SharedSecret[:]), hex.EncodeToString(ini.AD)
		c.ResponderSecret, c.ResponderAD = hex.EncodeToString(resp.SharedSecret[:]), hex.EncodeToString(resp.AD)
		v.Cases = append(v.Cases, c)
	}
	after := set.Marshal()
	v.PrekeySetAfter = hex.EncodeToString(after)

	addCorpus("internal/prekey", "FuzzParseBundle", bundles...)
	addCorpus("internal/prekey", "FuzzUnmarshalSet", setEnc, after)
	addCorpus("internal/handshake", "FuzzParsePrekeyMessage", messages...)
	return v
}
