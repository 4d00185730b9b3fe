package handshake_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/handshake"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
)

// device is one side of a handshake: identity keys and, for a responder,
// its prekey set and the upload the server holds.
type device struct {
	keys *identity.DeviceKeys
	pub  *identity.DevicePublic
	set  *prekey.Set
	up   *prekey.Upload
}

func newDevice(t testing.TB, n int) *device {
	t.Helper()
	k := identity.GenerateDeviceKeys()
	s, u, err := prekey.NewSet(k.Signing, n)
	if err != nil {
		t.Fatal(err)
	}
	return &device{keys: k, pub: k.Public(), set: s, up: u}
}

// bundle is what the server hands out: the signed prekey, the i-th one-time
// X25519 prekey (none if i < 0) and the j-th one-time ML-KEM prekey (the
// last-resort key if j < 0).
func (d *device) bundle(i, j int) *prekey.Bundle {
	b := &prekey.Bundle{Signed: *d.up.Signed}
	if i >= 0 {
		ot := d.up.OneTime[i]
		b.OneTime = &ot
	}
	if j >= 0 {
		b.PQ = d.up.PQ[j]
	} else {
		b.PQ = *d.up.LastResort
	}
	return b
}

// viaWire sends a header through the prekey message encoding, as the
// responder will see it.
func viaWire(t testing.TB, h *handshake.Header) *handshake.Header {
	t.Helper()
	m, err := handshake.ParsePrekeyMessage((&handshake.PrekeyMessage{Header: h, Message: []byte{1}}).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return m.Header
}

func copyHeader(h *handshake.Header) *handshake.Header {
	c := *h
	if h.OneTimeID != nil {
		id := *h.OneTimeID
		c.OneTimeID = &id
	}
	c.Ciphertext = bytes.Clone(h.Ciphertext)
	return &c
}

type bundleShape struct {
	name string
	i, j int
}

var shapes = []bundleShape{
	{"one-time", 0, 0},
	{"no one-time X25519", -1, 0},
	{"one-time X25519 and last resort", 0, -1},
	{"last resort only", -1, -1},
}

func TestHandshakeAgrees(t *testing.T) {
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			alice, bob := newDevice(t, 0), newDevice(t, 1)
			b := bob.bundle(sh.i, sh.j)
			ini, err := handshake.Initiate(alice.keys, bob.pub, b)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := handshake.Respond(bob.keys, bob.set, alice.pub, viaWire(t, ini.Header))
			if err != nil {
				t.Fatal(err)
			}
			if ini.SharedSecret != resp.SharedSecret {
				t.Fatal("shared secrets differ")
			}
			if ini.SharedSecret == ([primitives.KeySize]byte{}) {
				t.Fatal("shared secret is zero")
			}
			fa, fb := alice.pub.Fingerprint(), bob.pub.Fingerprint()
			wantAD := append(fa[:], fb[:]...)
			if !bytes.Equal(ini.AD, wantAD) || !bytes.Equal(resp.AD, wantAD) || len(wantAD) != handshake.ADSize {
				t.Errorf("AD: initiator %x, responder %x; want initiator fingerprint || responder fingerprint", ini.AD, resp.AD)
			}
			if !ini.RatchetKey.Equal(b.Signed.Key) || !resp.RatchetKey.Public().Equal(b.Signed.Key) {
				t.Error("ratchet keys are not the signed prekey")
			}
			if ini.LastResort != (sh.j < 0) {
				t.Errorf("Initiation.LastResort = %v", ini.LastResort)
			}
			h := ini.Header
			if h.Sender != alice.pub.ID() || h.Recipient != bob.pub.ID() || h.SignedID != b.Signed.ID || h.PQID != b.PQ.ID {
				t.Errorf("header names the wrong devices or prekeys: %+v", h)
			}
			if (h.OneTimeID == nil) != (b.OneTime == nil) || (h.OneTimeID != nil && *h.OneTimeID != b.OneTime.ID) {
				t.Errorf("header one-time ID %v, bundle %v", h.OneTimeID, b.OneTime)
			}
			if len(h.Ciphertext) != primitives.MLKEM1024CiphertextSize {
				t.Errorf("ciphertext of %d bytes", len(h.Ciphertext))
			}
			// Respond consumes nothing; Consume does.
			if ot, pq := bob.set.Counts(); ot != 1 || pq != 1 || bob.set.LastResortUses() != 0 {
				t.Errorf("Respond changed the prekey set")
			}
			bob.set.Consume(resp.Prekeys)
			wantOT, wantPQ, wantUses := 1, 1, 0
			if sh.i >= 0 {
				wantOT = 0
			}
			if sh.j >= 0 {
				wantPQ = 0
			} else {
				wantUses = 1
			}
			if ot, pq := bob.set.Counts(); ot != wantOT || pq != wantPQ || bob.set.LastResortUses() != wantUses {
				t.Errorf("after Consume: counts %d, %d, uses %d; want %d, %d, %d", ot, pq, bob.set.LastResortUses(), wantOT, wantPQ, wantUses)
			}

			// A second handshake from the same bundle (last resort) or a
			// fresh one gets a fresh secret: the ephemeral and the
			// encapsulation are random.
			ini2, err := handshake.Initiate(alice.keys, bob.pub, b)
			if err != nil {
				t.Fatal(err)
			}
			if ini2.SharedSecret == ini.SharedSecret || ini2.Header.Ephemeral.Equal(ini.Header.Ephemeral) {
				t.Error("two initiations share a secret or an ephemeral key")
			}
		})
	}
}

// TestRolesAreNotSymmetric: Alice→Bob and Bob→Alice sessions between the
// same two devices have different AD (initiator first) and unrelated
// secrets.
func TestRolesAreNotSymmetric(t *testing.T) {
	alice, bob := newDevice(t, 1), newDevice(t, 1)
	ab, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	ba, err := handshake.Initiate(bob.keys, alice.pub, alice.bundle(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ab.AD, ba.AD) || ab.SharedSecret == ba.SharedSecret {
		t.Error("the two directions share AD or secret")
	}
	if !bytes.Equal(ab.AD[:32], ba.AD[32:]) || !bytes.Equal(ab.AD[32:], ba.AD[:32]) {
		t.Error("AD is not initiator || responder")
	}
}

// TestForgedBundleRejectedByInitiator: the initiator checks every prekey
// signature against the signing key from the verified device list before
// using any of them.
func TestForgedBundleRejectedByInitiator(t *testing.T) {
	alice, bob, mallory := newDevice(t, 0), newDevice(t, 1), newDevice(t, 1)
	forged := map[string]*prekey.Bundle{}
	for _, which := range []string{"signed", "one-time", "pq"} {
		b := bob.bundle(0, 0)
		switch which {
		case "signed":
			b.Signed.Signature = bytes.Clone(b.Signed.Signature)
			b.Signed.Signature[10] ^= 1
		case "one-time":
			b.OneTime.Signature = bytes.Clone(b.OneTime.Signature)
			b.OneTime.Signature[primitives.SignatureSize-1] ^= 1
		case "pq":
			b.PQ.Signature = bytes.Clone(b.PQ.Signature)
			b.PQ.Signature[100] ^= 1
		}
		forged["flipped "+which+" signature"] = b
	}
	// The server substitutes its own prekeys (signed by Mallory's device).
	forged["Mallory's bundle"] = mallory.bundle(0, 0)
	b := bob.bundle(0, 0)
	b.PQ = mallory.up.PQ[0]
	forged["Mallory's ML-KEM prekey"] = b
	b = bob.bundle(-1, -1)
	b.Signed = *mallory.up.Signed
	forged["Mallory's signed prekey"] = b
	// A one-time ML-KEM key relabelled as last resort.
	b = bob.bundle(-1, 0)
	b.PQ.LastResort = true
	forged["one-time ML-KEM prekey as last resort"] = b

	for name, b := range forged {
		ini, err := handshake.Initiate(alice.keys, bob.pub, b)
		if !errors.Is(err, prekey.ErrBadSignature) || ini != nil {
			t.Errorf("%s: err = %v, want ErrBadSignature", name, err)
		}
	}
	// Bob's genuine bundle checked against the wrong device's keys.
	if _, err := handshake.Initiate(alice.keys, mallory.pub, bob.bundle(0, 0)); !errors.Is(err, prekey.ErrBadSignature) {
		t.Errorf("bundle checked against another device: err = %v", err)
	}
}

// TestWrongRecipientRejected: a header addressed to Bob is refused by Carol,
// even though Carol's prekey IDs may coincide with Bob's.
func TestWrongRecipientRejected(t *testing.T) {
	alice, bob, carol := newDevice(t, 0), newDevice(t, 1), newDevice(t, 1)
	ini, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	// Carol's set was generated the same way, so the IDs in the header also
	// exist in her set: only the recipient check stops her.
	if _, err := carol.set.Find(prekey.Claim{Signed: ini.Header.SignedID, OneTime: ini.Header.OneTimeID, PQ: ini.Header.PQID, Ephemeral: ini.Header.Ephemeral.Bytes()}); err != nil {
		t.Fatalf("test premise: Carol holds the same prekey IDs: %v", err)
	}
	if _, err := handshake.Respond(carol.keys, carol.set, alice.pub, ini.Header); !errors.Is(err, handshake.ErrWrongIdentity) {
		t.Errorf("Carol responds to a header for Bob: err = %v, want ErrWrongIdentity", err)
	}
	// Bob with Carol's prekeys (a mixed-up store) never gets the secret.
	if resp, err := handshake.Respond(bob.keys, carol.set, alice.pub, ini.Header); err == nil && resp.SharedSecret == ini.SharedSecret {
		t.Error("responder with the wrong prekey set derived the initiator's secret")
	}
	// Rewriting the recipient to Carol makes Carol derive an unrelated
	// secret, never Alice's.
	h := copyHeader(ini.Header)
	h.Recipient = carol.pub.ID()
	resp, err := handshake.Respond(carol.keys, carol.set, alice.pub, h)
	if err == nil && resp.SharedSecret == ini.SharedSecret {
		t.Error("Carol derived the secret of a handshake meant for Bob")
	}
}

// TestWrongSenderRejected: Bob looked up Carol's keys, but the header says
// it comes from Alice (or the other way round).
func TestWrongSenderRejected(t *testing.T) {
	alice, bob, carol := newDevice(t, 0), newDevice(t, 1), newDevice(t, 0)
	ini, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake.Respond(bob.keys, bob.set, carol.pub, ini.Header); !errors.Is(err, handshake.ErrWrongIdentity) {
		t.Errorf("header from Alice checked against Carol: err = %v, want ErrWrongIdentity", err)
	}
	// Carol rewrites the sender field of Alice's header to herself: Bob
	// uses Carol's identity key in DH1 and the transcript, so the secret
	// is not Alice's (identity misbinding fails).
	h := copyHeader(ini.Header)
	h.Sender = carol.pub.ID()
	resp, err := handshake.Respond(bob.keys, bob.set, carol.pub, h)
	if err == nil && resp.SharedSecret == ini.SharedSecret {
		t.Error("a header re-labelled as Carol's gives Alice's secret")
	}
	// A device that shares Alice's signing key but not her X25519 key (or
	// the reverse) is a different device.
	for _, mixed := range []*identity.DevicePublic{
		{Signing: alice.pub.Signing, DH: carol.pub.DH},
		{Signing: carol.pub.Signing, DH: alice.pub.DH},
	} {
		if _, err := handshake.Respond(bob.keys, bob.set, mixed, ini.Header); !errors.Is(err, handshake.ErrWrongIdentity) {
			t.Errorf("mixed device keys: err = %v, want ErrWrongIdentity", err)
		}
	}
	if _, err := handshake.Respond(bob.keys, bob.set, alice.pub, ini.Header); err != nil {
		t.Fatalf("the genuine header: %v", err)
	}
}

// TestTamperedHandshakeFieldsDiverge: changing any field of the header makes
// the responder fail or derive a different secret; never the initiator's.
func TestTamperedHandshakeFieldsDiverge(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 3)
	// Rotate so that a second valid signed prekey exists to switch to.
	bob.set.RotateSigned(bob.keys.Signing)
	cur, lr := bob.set.Current()

	for _, sh := range shapes {
		ini, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(sh.i, sh.j))
		if err != nil {
			t.Fatal(err)
		}
		other := func(id prekey.ID) *prekey.ID { return &id }
		tampers := map[string]func(h *handshake.Header){
			"ciphertext first byte": func(h *handshake.Header) { h.Ciphertext[0] ^= 1 },
			"ciphertext last byte":  func(h *handshake.Header) { h.Ciphertext[len(h.Ciphertext)-1] ^= 0x80 },
			"ciphertext middle":     func(h *handshake.Header) { h.Ciphertext[800] ^= 0x10 },
			"ciphertext from another encapsulation": func(h *handshake.Header) {
				_, ct := bob.up.PQ[0].Key.Encapsulate()
				if sh.j < 0 {
					_, ct = bob.up.LastResort.Key.Encapsulate()
				}
				h.Ciphertext = ct
			},
			"ephemeral replaced": func(h *handshake.Header) { h.Ephemeral = primitives.GenerateX25519().Public() },
			// X25519 ignores the top bit, so this ephemeral gives the very
			// same DH outputs: only the transcript tells them apart.
			"ephemeral top bit set": func(h *handshake.Header) {
				e := h.Ephemeral.Bytes()
				e[31] ^= 0x80
				k, err := primitives.NewX25519PublicKey(e)
				if err != nil {
					t.Fatal(err)
				}
				h.Ephemeral = k
			},
			"signed ID to the newer signed prekey": func(h *handshake.Header) { h.SignedID = cur.ID },
			"signed ID unknown":                    func(h *handshake.Header) { h.SignedID = 9999 },
			"one-time ID to another one-time key":  func(h *handshake.Header) { h.OneTimeID = other(bob.up.OneTime[1].ID) },
			"one-time ID dropped":                  func(h *handshake.Header) { h.OneTimeID = nil },
			"one-time ID unknown":                  func(h *handshake.Header) { h.OneTimeID = other(9999) },
			"PQ ID to another one-time key":        func(h *handshake.Header) { h.PQID = bob.up.PQ[2].ID },
			"PQ ID to the last-resort key":         func(h *handshake.Header) { h.PQID = lr.ID },
			"PQ ID unknown":                        func(h *handshake.Header) { h.PQID = 9999 },
		}
		for name, tamper := range tampers {
			h := copyHeader(ini.Header)
			tamper(h)
			if sameHeader(h, ini.Header) {
				continue // e.g. "PQ ID to the last-resort key" on a last-resort handshake
			}
			resp, err := handshake.Respond(bob.keys, bob.set, alice.pub, h)
			if err == nil && resp.SharedSecret == ini.SharedSecret {
				t.Errorf("%s: %s: tampered header gives the initiator's secret", sh.name, name)
			}
		}
		// The untampered header still works: nothing above consumed it.
		resp, err := handshake.Respond(bob.keys, bob.set, alice.pub, ini.Header)
		if err != nil || resp.SharedSecret != ini.SharedSecret {
			t.Fatalf("%s: genuine header: %v", sh.name, err)
		}
	}
}

func sameHeader(a, b *handshake.Header) bool {
	ma := (&handshake.PrekeyMessage{Header: a, Message: []byte{1}}).Marshal()
	mb := (&handshake.PrekeyMessage{Header: b, Message: []byte{1}}).Marshal()
	return bytes.Equal(ma, mb)
}

// TestHandshakeReplayAfterConsumeRejected: the same prekey message delivered
// twice starts at most one session.
func TestHandshakeReplayAfterConsumeRejected(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 2)
	cases := []struct {
		name string
		i, j int
		want error
	}{
		{"one-time", 0, 0, prekey.ErrUnknownPrekey},
		{"one-time ML-KEM only", -1, 1, prekey.ErrUnknownPrekey},
		{"one-time X25519 with last resort", 1, -1, prekey.ErrUnknownPrekey},
		{"last resort", -1, -1, prekey.ErrReplayedHandshake},
	}
	for _, c := range cases {
		ini, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(c.i, c.j))
		if err != nil {
			t.Fatal(err)
		}
		wire := (&handshake.PrekeyMessage{Header: ini.Header, Message: []byte("first")}).Marshal()
		m, err := handshake.ParsePrekeyMessage(wire)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := handshake.Respond(bob.keys, bob.set, alice.pub, m.Header)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		bob.set.Consume(resp.Prekeys)
		m, err = handshake.ParsePrekeyMessage(wire)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := handshake.Respond(bob.keys, bob.set, alice.pub, m.Header); !errors.Is(err, c.want) || resp != nil {
			t.Errorf("%s: replay: err = %v, want %v", c.name, err, c.want)
		}
		// The replay is refused after a restart too.
		restored, err := prekey.UnmarshalSet(bob.set.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := handshake.Respond(bob.keys, restored, alice.pub, m.Header); !errors.Is(err, c.want) {
			t.Errorf("%s: replay after restore: err = %v, want %v", c.name, err, c.want)
		}
	}
	// A fresh handshake against the last-resort key still works.
	ini, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(-1, -1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake.Respond(bob.keys, bob.set, alice.pub, ini.Header); err != nil {
		t.Errorf("fresh last-resort handshake: %v", err)
	}
}

// Low-order points of Curve25519 (and non-canonical encodings of them), as
// listed by libsodium and the X25519 test vectors of Wycheproof: every one
// makes some DH output all zeros.
var lowOrderPoints = []string{
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0100000000000000000000000000000000000000000000000000000000000000",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p-1
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p+1
	"0000000000000000000000000000000000000000000000000000000000000080", // 0 with the top bit
	"0100000000000000000000000000000000000000000000000000000000000080",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
}

func lowOrderKeys(t *testing.T) []*primitives.X25519PublicKey {
	var out []*primitives.X25519PublicKey
	for _, s := range lowOrderPoints {
		b, _ := hex.DecodeString(s)
		k, err := primitives.NewX25519PublicKey(b)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		out = append(out, k)
	}
	return out
}

// TestLowOrderEphemeralRejected: an initiator who sends a low-order
// ephemeral key would make DH2..DH4 all zeros, contributing nothing; the
// responder refuses instead of deriving a secret. The same holds for
// low-order identity keys on either side.
func TestLowOrderEphemeralRejected(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 1)
	for _, sh := range shapes {
		ini, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(sh.i, sh.j))
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range lowOrderKeys(t) {
			h := copyHeader(ini.Header)
			h.Ephemeral = k
			// Through the wire format: the parser accepts the point (any 32
			// bytes are an X25519 key), the key agreement refuses it.
			h = viaWire(t, h)
			resp, err := handshake.Respond(bob.keys, bob.set, alice.pub, h)
			if !errors.Is(err, handshake.ErrInvalidKeyAgreement) || resp != nil {
				t.Errorf("%s: low-order ephemeral %d: err = %v, want ErrInvalidKeyAgreement", sh.name, i, err)
			}
		}
	}
	if ot, pq := bob.set.Counts(); ot != 1 || pq != 1 || bob.set.LastResortUses() != 0 {
		t.Error("refused handshakes consumed prekeys")
	}
	// A low-order X25519 identity key in a (lying) device list.
	for i, k := range lowOrderKeys(t) {
		badBob := &identity.DevicePublic{Signing: bob.pub.Signing, DH: k}
		if _, err := handshake.Initiate(alice.keys, badBob, bob.bundle(0, 0)); !errors.Is(err, handshake.ErrInvalidKeyAgreement) {
			t.Errorf("low-order responder identity key %d: err = %v, want ErrInvalidKeyAgreement", i, err)
		}
		badAlice := &identity.DevicePublic{Signing: alice.pub.Signing, DH: k}
		ini, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(-1, -1))
		if err != nil {
			t.Fatal(err)
		}
		ini.Header.Sender = badAlice.ID()
		if _, err := handshake.Respond(bob.keys, bob.set, badAlice, ini.Header); !errors.Is(err, handshake.ErrInvalidKeyAgreement) {
			t.Errorf("low-order initiator identity key %d: err = %v, want ErrInvalidKeyAgreement", i, err)
		}
	}
}

// TestRotatedSignedPrekeyStillAccepted: a handshake built from a bundle
// fetched just before a rotation completes, until MaxSignedPrekeys
// rotations have pushed its signed prekey out.
func TestRotatedSignedPrekeyStillAccepted(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 0)
	ini, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(-1, -1))
	if err != nil {
		t.Fatal(err)
	}
	for r := 1; r <= prekey.MaxSignedPrekeys; r++ {
		bob.set.RotateSigned(bob.keys.Signing)
		resp, err := handshake.Respond(bob.keys, bob.set, alice.pub, ini.Header)
		if r < prekey.MaxSignedPrekeys {
			if err != nil {
				t.Fatalf("after %d rotations: %v", r, err)
			}
			if resp.SharedSecret != ini.SharedSecret || !resp.RatchetKey.Public().Equal(ini.RatchetKey) {
				t.Fatalf("after %d rotations: different secret or ratchet key", r)
			}
			continue
		}
		if !errors.Is(err, prekey.ErrUnknownPrekey) {
			t.Errorf("after %d rotations: err = %v, want ErrUnknownPrekey", r, err)
		}
	}
	// A bundle with the newest signed prekey works.
	signed, lr := bob.set.Current()
	ini, err = handshake.Initiate(alice.keys, bob.pub, &prekey.Bundle{Signed: signed, PQ: lr})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := handshake.Respond(bob.keys, bob.set, alice.pub, ini.Header); err != nil || resp.SharedSecret != ini.SharedSecret {
		t.Errorf("current signed prekey: %v", err)
	}
}

// TestMalformedHeaderFieldsRejected: a header built in memory (not parsed)
// with a ciphertext of the wrong size fails cleanly.
func TestMalformedHeaderFieldsRejected(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 1)
	ini, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, primitives.MLKEM1024CiphertextSize - 1, primitives.MLKEM1024CiphertextSize + 1, primitives.MLKEM768CiphertextSize} {
		h := copyHeader(ini.Header)
		h.Ciphertext = make([]byte, n)
		copy(h.Ciphertext, ini.Header.Ciphertext)
		if resp, err := handshake.Respond(bob.keys, bob.set, alice.pub, h); err == nil || resp != nil {
			t.Errorf("ciphertext of %d bytes accepted", n)
		}
	}
}

// TestConcurrentHandshakes: Initiate and Respond keep no hidden shared state;
// many handshakes against one bundle, with shared device keys, run under the
// race detector.
func TestConcurrentHandshakes(t *testing.T) {
	alice, bob := newDevice(t, 0), newDevice(t, 0)
	b := bob.bundle(-1, -1)
	const n = 8
	inis := make([]*handshake.Initiation, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			inis[i], err = handshake.Initiate(alice.keys, bob.pub, b)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[[primitives.KeySize]byte]bool{}
	for _, ini := range inis {
		resp, err := handshake.Respond(bob.keys, bob.set, alice.pub, ini.Header)
		if err != nil {
			t.Fatal(err)
		}
		if resp.SharedSecret != ini.SharedSecret || seen[ini.SharedSecret] {
			t.Fatal("concurrent initiations disagree with the responder or repeat a secret")
		}
		seen[ini.SharedSecret] = true
		bob.set.Consume(resp.Prekeys)
	}
	if bob.set.LastResortUses() != n {
		t.Errorf("LastResortUses() = %d, want %d", bob.set.LastResortUses(), n)
	}
}
