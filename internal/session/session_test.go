package session

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/handshake"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/ratchet"
	"github.com/parleyim/parley/internal/vectortest"
	"github.com/parleyim/parley/internal/wire"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// device is one test device: its keys, its prekeys and the public prekeys
// a server would hand out.
type device struct {
	name    string
	keys    *identity.DeviceKeys
	prekeys *prekey.Set
	upload  *prekey.Upload
	next    int // next one-time prekey to hand out
}

func newDevice(t testing.TB, name string, oneTime int) *device {
	t.Helper()
	k := identity.GenerateDeviceKeys()
	set, up, err := prekey.NewSet(k.Signing, oneTime)
	if err != nil {
		t.Fatal(err)
	}
	return &device{name: name, keys: k, prekeys: set, upload: up}
}

func (d *device) pub() *identity.DevicePublic { return d.keys.Public() }

// bundle hands out a bundle as the server would: the next one-time keys
// while they last, then the last-resort PQ key and no one-time X25519 key.
func (d *device) bundle() *prekey.Bundle {
	signed, lastResort := d.prekeys.Current()
	b := &prekey.Bundle{Signed: signed, PQ: lastResort}
	if d.next < len(d.upload.OneTime) {
		ot := d.upload.OneTime[d.next]
		b.OneTime = &ot
		b.PQ = d.upload.PQ[d.next]
		d.next++
	}
	return b
}

// pair is a conversation between two devices, each with its record of the
// other.
type pair struct {
	a, b     *device
	ra, rb   *Record // a's record of b, b's record of a
	sent     int
	received map[string]bool
}

func newPair(t testing.TB) *pair {
	return &pair{a: newDevice(t, "alice", 10), b: newDevice(t, "bob", 10), ra: New(), rb: New(), received: map[string]bool{}}
}

func (p *pair) send(t testing.TB, fromA bool) (*wire.Envelope, string) {
	t.Helper()
	r := p.rb
	if fromA {
		r = p.ra
	}
	p.sent++
	msg := fmt.Sprintf("message %d", p.sent)
	env, err := r.Encrypt([]byte(msg), t0)
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	return env, msg
}

func (p *pair) recv(t testing.TB, toA bool, env *wire.Envelope, want string) {
	t.Helper()
	self, other, r := p.b, p.a, p.rb
	if toA {
		self, other, r = p.a, p.b, p.ra
	}
	got, err := r.Decrypt(env, self.keys, self.prekeys, other.pub(), t0)
	if err != nil {
		t.Fatalf("%s decrypt: %v", self.name, err)
	}
	if string(got) != want {
		t.Fatalf("%s decrypted %q, want %q", self.name, got, want)
	}
}

func TestConversation(t *testing.T) {
	p := newPair(t)
	if _, err := p.ra.Encrypt([]byte("x"), t0); !errors.Is(err, ErrNoSession) {
		t.Fatalf("encrypt without session: %v, want ErrNoSession", err)
	}
	if err := p.ra.Initiate(p.a.keys, p.b.pub(), p.b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	// Until Bob answers, every message of Alice's is a prekey message.
	for range 3 {
		env, msg := p.send(t, true)
		if env.Type != wire.TypePrekey {
			t.Fatalf("unconfirmed session sent %v, want prekey message", env.Type)
		}
		p.recv(t, false, env, msg)
	}
	if n, _ := p.b.prekeys.Counts(); n != 9 {
		t.Fatalf("bob has %d one-time prekeys after one handshake, want 9", n)
	}
	env, msg := p.send(t, false)
	if env.Type != wire.TypeRatchet {
		t.Fatalf("responder sent %v, want ratchet message", env.Type)
	}
	p.recv(t, true, env, msg)
	env, msg = p.send(t, true)
	if env.Type != wire.TypeRatchet {
		t.Fatalf("confirmed session sent %v, want ratchet message", env.Type)
	}
	p.recv(t, false, env, msg)
}

// TestPrekeyMessageReplayRejected: a recorded prekey message replayed to a
// device that already accepted it is a duplicate, and to a device that lost
// the session it names a consumed one-time prekey.
func TestPrekeyMessageReplayRejected(t *testing.T) {
	p := newPair(t)
	if err := p.ra.Initiate(p.a.keys, p.b.pub(), p.b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	env, msg := p.send(t, true)
	p.recv(t, false, env, msg)
	if _, err := p.rb.Decrypt(env, p.b.keys, p.b.prekeys, p.a.pub(), t0); !errors.Is(err, ratchet.ErrDuplicate) {
		t.Fatalf("replay on the same record: %v, want ErrDuplicate", err)
	}
	if _, err := New().Decrypt(env, p.b.keys, p.b.prekeys, p.a.pub(), t0); !errors.Is(err, prekey.ErrUnknownPrekey) {
		t.Fatalf("replay on a fresh record: %v, want ErrUnknownPrekey", err)
	}
}

// TestLastResortPrekeyMessageReplayRejected: with one-time prekeys
// exhausted, a replayed handshake against the last-resort key is refused,
// while a new handshake against it succeeds and is recorded.
func TestLastResortPrekeyMessageReplayRejected(t *testing.T) {
	a, b := newDevice(t, "alice", 0), newDevice(t, "bob", 0)
	ra := New()
	if err := ra.Initiate(a.keys, b.pub(), b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	env, err := ra.Encrypt([]byte("hi"), t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New().Decrypt(env, b.keys, b.prekeys, a.pub(), t0); err != nil {
		t.Fatal(err)
	}
	if b.prekeys.LastResortUses() != 1 {
		t.Fatalf("last-resort uses = %d, want 1", b.prekeys.LastResortUses())
	}
	if _, err := New().Decrypt(env, b.keys, b.prekeys, a.pub(), t0); !errors.Is(err, prekey.ErrReplayedHandshake) {
		t.Fatalf("replay: %v, want ErrReplayedHandshake", err)
	}
	ra2 := New()
	if err := ra2.Initiate(a.keys, b.pub(), b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	env2, _ := ra2.Encrypt([]byte("again"), t0)
	if _, err := New().Decrypt(env2, b.keys, b.prekeys, a.pub(), t0); err != nil {
		t.Fatalf("second handshake on the last-resort key: %v", err)
	}
	if b.prekeys.LastResortUses() != 2 {
		t.Fatalf("last-resort uses = %d, want 2", b.prekeys.LastResortUses())
	}
}

// TestImpersonatedSenderRejected: Mallory, a device not in Alice's device
// list, starts a session with Bob claiming to be Alice's device.
func TestImpersonatedSenderRejected(t *testing.T) {
	p := newPair(t)
	mallory := newDevice(t, "mallory", 1)
	rm := New()
	if err := rm.Initiate(mallory.keys, p.b.pub(), p.b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	env, _ := rm.Encrypt([]byte("I am alice"), t0)
	before := p.b.prekeys.Marshal()
	_, err := p.rb.Decrypt(env, p.b.keys, p.b.prekeys, p.a.pub(), t0)
	if !errors.Is(err, handshake.ErrWrongIdentity) {
		t.Fatalf("impersonation: %v, want ErrWrongIdentity", err)
	}
	if !bytes.Equal(before, p.b.prekeys.Marshal()) || p.rb.HasSession() {
		t.Fatal("a refused handshake changed state")
	}
}

// TestTamperedPrekeyMessageUsesNothingUp: a prekey message whose ratchet
// part was tampered with is refused, and neither the record nor the prekey
// set changes (an attacker cannot burn one-time prekeys with forgeries).
func TestTamperedPrekeyMessageUsesNothingUp(t *testing.T) {
	p := newPair(t)
	if err := p.ra.Initiate(p.a.keys, p.b.pub(), p.b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	env, msg := p.send(t, true)
	bad := &wire.Envelope{Type: env.Type, Body: bytes.Clone(env.Body)}
	bad.Body[len(bad.Body)-1] ^= 1
	before := p.b.prekeys.Marshal()
	if _, err := p.rb.Decrypt(bad, p.b.keys, p.b.prekeys, p.a.pub(), t0); err == nil {
		t.Fatal("tampered prekey message decrypted")
	}
	if !bytes.Equal(before, p.b.prekeys.Marshal()) || p.rb.HasSession() {
		t.Fatal("a refused prekey message changed state")
	}
	p.recv(t, false, env, msg)
}

// TestSimultaneousInitiationConverges: both devices start a session before
// hearing from the other; whatever the delivery order, both end on the
// same session, every message decrypts, and afterwards both send plain
// ratchet messages.
func TestSimultaneousInitiationConverges(t *testing.T) {
	for _, order := range []string{"a-first", "b-first"} {
		t.Run(order, func(t *testing.T) {
			p := newPair(t)
			if err := p.ra.Initiate(p.a.keys, p.b.pub(), p.b.bundle(), t0); err != nil {
				t.Fatal(err)
			}
			if err := p.rb.Initiate(p.b.keys, p.a.pub(), p.a.bundle(), t0); err != nil {
				t.Fatal(err)
			}
			ea, ma := p.send(t, true)
			eb, mb := p.send(t, false)
			if order == "a-first" {
				p.recv(t, false, ea, ma)
				p.recv(t, true, eb, mb)
			} else {
				p.recv(t, true, eb, mb)
				p.recv(t, false, ea, ma)
			}
			if p.ra.active.base != p.rb.active.base {
				t.Fatal("the two devices chose different sessions")
			}
			// A few rounds both ways; the session becomes confirmed.
			for range 3 {
				e, m := p.send(t, true)
				p.recv(t, false, e, m)
				e, m = p.send(t, false)
				p.recv(t, true, e, m)
			}
			e, _ := p.send(t, true)
			f, _ := p.send(t, false)
			if e.Type != wire.TypeRatchet || f.Type != wire.TypeRatchet {
				t.Fatalf("after convergence: %v and %v, want ratchet messages", e.Type, f.Type)
			}
		})
	}
}

// TestResetStartsNewSession: after a reset, a new handshake replaces the
// confirmed session at the peer, and messages in flight on the old session
// still decrypt from the archive.
func TestResetStartsNewSession(t *testing.T) {
	p := newPair(t)
	if err := p.ra.Initiate(p.a.keys, p.b.pub(), p.b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	e, m := p.send(t, true)
	p.recv(t, false, e, m)
	e, m = p.send(t, false)
	p.recv(t, true, e, m)
	inflight, inflightMsg := p.send(t, false) // on the old session

	p.ra.Reset()
	if p.ra.HasSession() {
		t.Fatal("reset left an active session")
	}
	if err := p.ra.Initiate(p.a.keys, p.b.pub(), p.b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	e, m = p.send(t, true)
	if e.Type != wire.TypePrekey {
		t.Fatal("message after reset is not a prekey message")
	}
	p.recv(t, false, e, m)
	if p.ra.active.base != p.rb.active.base {
		t.Fatal("bob did not switch to the new session")
	}
	p.recv(t, true, inflight, inflightMsg)
	e, m = p.send(t, false)
	p.recv(t, true, e, m)
}

// TestRecordSurvivesRestart: a conversation continues across Marshal and
// Unmarshal of both records at every step.
func TestRecordSurvivesRestart(t *testing.T) {
	p := newPair(t)
	if err := p.ra.Initiate(p.a.keys, p.b.pub(), p.b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	reload := func(r *Record) *Record {
		enc := r.Marshal()
		got, err := Unmarshal(enc)
		if err != nil {
			t.Fatalf("unmarshal: %v", err)
		}
		if !bytes.Equal(got.Marshal(), enc) {
			t.Fatal("record does not re-encode identically")
		}
		return got
	}
	for i := range 20 {
		fromA := i%3 != 1 // alice speaks first: bob has no session yet
		e, m := p.send(t, fromA)
		p.ra, p.rb = reload(p.ra), reload(p.rb)
		p.recv(t, !fromA, e, m)
	}
}

func TestRecordRejectsEveryStrictPrefix(t *testing.T) {
	p := newPair(t)
	if err := p.ra.Initiate(p.a.keys, p.b.pub(), p.b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	e, m := p.send(t, true)
	p.recv(t, false, e, m)
	p.ra.Reset()
	if err := p.ra.Initiate(p.a.keys, p.b.pub(), p.b.bundle(), t0); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Record{p.ra, p.rb, New()} {
		enc := r.Marshal()
		for i := range len(enc) {
			if _, err := Unmarshal(enc[:i]); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("prefix of %d/%d bytes: %v, want ErrMalformed", i, len(enc), err)
			}
		}
		if _, err := Unmarshal(append(bytes.Clone(enc), 0)); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
}

type sessionVectors struct {
	Time        string            `json:"time"`
	AliceKeys   string            `json:"alice_device_keys"`
	BobKeys     string            `json:"bob_device_keys"`
	BobPrekeys  string            `json:"bob_prekey_set_before"`
	Bundle      string            `json:"bundle"`
	Messages    []sessionMessage  `json:"messages"`
	Records     map[string]string `json:"records_after"`
	BobPrekeys2 string            `json:"bob_prekey_set_after"`
}

type sessionMessage struct {
	From           string `json:"from"`
	Plaintext      string `json:"plaintext"`
	Envelope       string `json:"envelope"`
	ReceiverRecord string `json:"receiver_record_before"`
	ReceiverSet    string `json:"receiver_prekey_set_before,omitempty"`
}

// TestVectors replays the committed session transcript independently of
// the generator: Bob, rebuilt from his committed keys and prekey set,
// decrypts Alice's committed envelopes, and the committed records decode
// and re-encode byte for byte.
func TestVectors(t *testing.T) {
	var v sessionVectors
	vectortest.Load(t, "session", &v)
	now, err := time.Parse(time.RFC3339, v.Time)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := identity.UnmarshalDeviceKeys(vectortest.Hex(t, v.AliceKeys))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := identity.UnmarshalDeviceKeys(vectortest.Hex(t, v.BobKeys))
	if err != nil {
		t.Fatal(err)
	}
	set, err := prekey.UnmarshalSet(vectortest.Hex(t, v.BobPrekeys))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prekey.ParseBundle(vectortest.Hex(t, v.Bundle)); err != nil {
		t.Fatal(err)
	}
	// Bob's first messages decrypt from a fresh record and his committed
	// prekey set; every message also decrypts from the receiver's committed
	// record (a replay cannot re-create the receiver's random ratchet keys).
	rb := New()
	for i, m := range v.Messages {
		env, err := wire.UnmarshalEnvelope(vectortest.Hex(t, m.Envelope))
		if err != nil {
			t.Fatal(err)
		}
		self, peer := bob, alice.Public()
		if m.From == "bob" {
			self, peer = alice, bob.Public()
		}
		rec, err := Unmarshal(vectortest.Hex(t, m.ReceiverRecord))
		if err != nil {
			t.Fatal(err)
		}
		var recSet *prekey.Set
		if m.ReceiverSet != "" {
			if recSet, err = prekey.UnmarshalSet(vectortest.Hex(t, m.ReceiverSet)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := rec.Decrypt(env, self, recSet, peer, now)
		if err != nil || string(got) != m.Plaintext {
			t.Fatalf("message %d: got %q, %v; want %q", i, got, err, m.Plaintext)
		}
		if i < 2 { // before bob's first answer
			got, err := rb.Decrypt(env, bob, set, alice.Public(), now)
			if err != nil || string(got) != m.Plaintext {
				t.Fatalf("message %d from a fresh record: got %q, %v; want %q", i, got, err, m.Plaintext)
			}
		}
	}
	for name, rec := range v.Records {
		enc := vectortest.Hex(t, rec)
		r, err := Unmarshal(enc)
		if err != nil {
			t.Fatalf("%s record: %v", name, err)
		}
		if !bytes.Equal(r.Marshal(), enc) {
			t.Fatalf("%s record does not re-encode identically", name)
		}
	}
	// Bob consumed exactly the one-time prekeys of one handshake.
	before, err := prekey.UnmarshalSet(vectortest.Hex(t, v.BobPrekeys))
	if err != nil {
		t.Fatal(err)
	}
	b1, p1 := before.Counts()
	b2, p2 := set.Counts()
	if b1-b2 != 1 || p1-p2 != 1 {
		t.Fatalf("one-time prekeys used: %d X25519, %d ML-KEM; want 1 and 1", b1-b2, p1-p2)
	}
	if !bytes.Equal(set.Marshal(), vectortest.Hex(t, v.BobPrekeys2)) {
		t.Fatal("bob's prekey set after the handshake differs from the vectors")
	}
}

func FuzzUnmarshalRecord(f *testing.F) {
	vectortest.Corpus(f, "FuzzUnmarshalRecord")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Unmarshal(data)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Marshal(), data) {
			t.Fatal("accepted record does not re-encode identically")
		}
	})
}

func TestFuzzCorpora(t *testing.T) {
	vectortest.Corpus(t, "FuzzUnmarshalRecord")
}
