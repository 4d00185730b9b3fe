package provision

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/wire"
)

// openAll opens frames in order and returns what came out.
func openAll(t *testing.T, r *Receiver, frames [][]byte) []any {
	t.Helper()
	var out []any
	for i, fr := range frames {
		v, err := r.Open(fr)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		out = append(out, v)
	}
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTransferRoundTrip(t *testing.T) {
	f := newFixture(t, 3, 1200, 100)
	f.history[7].Body = nil
	f.history[8].Body = bytes.Repeat([]byte{1}, wire.MaxPlaintextSize)
	frames := f.frames(t, NewSender(f.offer))
	r := NewReceiver(f.secret, "alice")
	if err := r.Finish(); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Finish before anything: %v", err)
	}
	out := openAll(t, r, frames)

	a := out[0].(*Account)
	want := f.account()
	if a.Username != want.Username || a.Server != want.Server || !bytes.Equal(a.Key.Seed(), f.key.Seed()) ||
		!bytes.Equal(a.List.Marshal(), f.v2.Marshal()) || a.Contacts != 3 || a.Messages != 1200 ||
		!reflect.DeepEqual(a.Settings, want.Settings) {
		t.Fatalf("account = %+v", a)
	}
	var contacts []Contact
	var history []HistoryMessage
	for _, v := range out[1 : len(out)-1] {
		switch v := v.(type) {
		case []Contact:
			if history != nil {
				t.Fatal("contacts after history")
			}
			contacts = append(contacts, v...)
		case []HistoryMessage:
			history = append(history, v...)
		default:
			t.Fatalf("unexpected %T", v)
		}
	}
	if len(contacts) != 3 || len(history) != 1200 {
		t.Fatalf("%d contacts, %d messages", len(contacts), len(history))
	}
	for i, c := range contacts {
		w := f.contacts[i]
		if c.Username != w.Username || c.Verified != w.Verified || !c.Added.Equal(w.Added) || !bytes.Equal(c.List.Marshal(), w.List.Marshal()) {
			t.Fatalf("contact %d = %+v, want %+v", i, c, w)
		}
	}
	for i, m := range history {
		w := f.history[i]
		if m.ID != w.ID || m.Conversation != w.Conversation || m.Sender != w.Sender || m.SenderDevice != w.SenderDevice ||
			m.Outgoing != w.Outgoing || !m.Sent.Equal(w.Sent) || !m.Received.Equal(w.Received) || m.State != w.State ||
			!bytes.Equal(m.Body, w.Body) {
			t.Fatalf("message %d differs", i)
		}
	}
	if e := out[len(out)-1].(*End); *e != (End{Contacts: 3, Messages: 1200, Frames: uint32(len(frames) - 1)}) {
		t.Fatalf("end = %+v", e)
	}
	// Every frame but the account's must have been batched by both limits:
	// three 512-message frames would exceed nothing, but the 256 KiB body
	// forces a smaller batch somewhere.
	if len(frames) < 1+1+3+1 {
		t.Fatalf("only %d frames", len(frames))
	}
	for i, fr := range frames {
		if len(fr) > MaxFrameSize {
			t.Fatalf("frame %d is %d bytes", i, len(fr))
		}
	}
}

func TestEmptyTransfer(t *testing.T) {
	f := newFixture(t, 0, 0, 0)
	frames := f.frames(t, NewSender(f.offer))
	if len(frames) != 2 {
		t.Fatalf("%d frames", len(frames))
	}
	openAll(t, NewReceiver(f.secret, "alice"), frames)
}

// TestFrameRoundTripAndPrefixes checks every frame type and every payload
// encoding: decoding then encoding gives the same bytes, and every strict
// prefix is refused as malformed.
func TestFrameRoundTripAndPrefixes(t *testing.T) {
	f := newFixture(t, 2, 5, 40)
	frames := f.frames(t, NewSender(f.offer))
	seen := map[FrameType]bool{}
	for _, fr := range frames {
		p, err := parseFrame(fr)
		if err != nil {
			t.Fatal(err)
		}
		seen[p.typ] = true
		re := append(frameHeader(p.typ, p.seq, p.enc, len(p.sealed)), p.sealed...)
		if !bytes.Equal(re, fr) || !bytes.Equal(p.header, fr[:len(fr)-len(p.sealed)]) {
			t.Fatalf("%s frame does not round-trip", p.typ)
		}
		checkPrefixes(t, fr, func(b []byte) error { _, err := parseFrame(b); return err })
		// A receiver refuses every prefix too, as malformed.
		for _, n := range []int{0, 1, 5, len(fr) / 2, len(fr) - 1} {
			if _, err := NewReceiver(f.secret, "alice").Open(fr[:n]); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("%s frame cut to %d bytes: %v", p.typ, n, err)
			}
		}
	}
	if len(seen) != 4 {
		t.Fatalf("saw frame types %v", seen)
	}
	// Payloads.
	acc, err := f.account().marshal()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := marshalContacts(f.contacts)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := marshalHistory(f.history)
	if err != nil {
		t.Fatal(err)
	}
	end := (&End{Contacts: 1, Messages: 2, Frames: 3}).marshal()
	for _, c := range []struct {
		name string
		enc  []byte
		re   func([]byte) ([]byte, error)
	}{
		{"account", acc, func(b []byte) ([]byte, error) {
			a, err := parseAccount(b)
			if err != nil {
				return nil, err
			}
			return a.marshal()
		}},
		{"contacts", cs, func(b []byte) ([]byte, error) {
			c, err := parseContacts(b)
			if err != nil {
				return nil, err
			}
			return marshalContacts(c)
		}},
		{"history", hs, func(b []byte) ([]byte, error) {
			m, err := parseHistory(b)
			if err != nil {
				return nil, err
			}
			return marshalHistory(m)
		}},
		{"end", end, func(b []byte) ([]byte, error) {
			e, err := parseEnd(b)
			if err != nil {
				return nil, err
			}
			return e.marshal(), nil
		}},
	} {
		re, err := c.re(c.enc)
		if err != nil || !bytes.Equal(re, c.enc) {
			t.Fatalf("%s payload round trip: %v", c.name, err)
		}
		checkPrefixes(t, c.enc, func(b []byte) error { _, err := c.re(b); return err })
		if _, err := c.re(append(bytes.Clone(c.enc), 0)); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("%s payload with a trailing byte: %v", c.name, err)
		}
	}
}

func TestPayloadRejectsNonCanonical(t *testing.T) {
	f := newFixture(t, 1, 1, 3)
	hs, _ := marshalHistory(f.history)
	outgoingAt := 2 + 16 + 1 + len(f.history[0].Conversation) + 1 + len(f.history[0].Sender) + 16
	bad := bytes.Clone(hs)
	bad[outgoingAt] = 2
	if _, err := parseHistory(bad); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("outgoing flag 2: %v", err)
	}
	bad = bytes.Clone(hs)
	bad[outgoingAt+1] = 0x80 // sent time > MaxInt64
	if _, err := parseHistory(bad); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("sent time out of range: %v", err)
	}
	if _, err := parseHistory([]byte{0, 0}); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("empty batch: %v", err)
	}
	if _, err := parseContacts([]byte{0, 0}); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("empty contacts batch: %v", err)
	}
	a := f.account()
	a.Settings = []Setting{{Name: "b"}, {Name: "a"}}
	if _, err := a.marshal(); err == nil {
		t.Error("unsorted settings encoded")
	}
	a.Settings = []Setting{{Name: "a"}, {Name: "a"}}
	if _, err := a.marshal(); err == nil {
		t.Error("duplicate settings encoded")
	}
	// Build the unsorted encoding by hand: the decoder refuses it too.
	a.Settings = []Setting{{Name: "a"}, {Name: "b"}}
	enc, err := a.marshal()
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(enc, []byte{1, 'b'})
	enc[i+1], enc[i-3] = 'a', 'b'
	if _, err := parseAccount(enc); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("unsorted settings decoded: %v", err)
	}
}

// TestTransferReplayedToSecondDeviceFails: frames E sealed for one new
// device (say, recorded by the server) do not open for another new device's
// offer, even of the same account and with the same device keys.
func TestTransferReplayedToSecondDeviceFails(t *testing.T) {
	f := newFixture(t, 1, 10, 20)
	frames := f.frames(t, NewSender(f.offer))
	// A second offer by another device, and by the same device.
	for _, dev := range []*identity.DevicePublic{identity.GenerateDeviceKeys().Public(), f.n.Public()} {
		_, sec, err := NewOffer(dev, "phone", t0)
		if err != nil {
			t.Fatal(err)
		}
		r := NewReceiver(sec, "alice")
		_, err = r.Open(frames[0])
		mustIs(t, "replayed account frame", err, ErrDecrypt)
		mustIs(t, "replayed account frame", err, ErrSecurity)
		_, err = r.Open(frames[1])
		mustIs(t, "after a failure", err, ErrDecrypt)
	}
	// The genuine receiver still opens them all.
	openAll(t, NewReceiver(f.secret, "alice"), frames)
}

// TestFramesReorderedOrDroppedRejected: the server relays the frames, and
// may swap, drop, duplicate or truncate them; each is a typed error, and
// the first failure is final.
func TestFramesReorderedOrDroppedRejected(t *testing.T) {
	f := newFixture(t, 2, 1100, 10)
	frames := f.frames(t, NewSender(f.offer))
	if len(frames) < 6 {
		t.Fatalf("%d frames", len(frames))
	}
	last := len(frames) - 1
	cases := []struct {
		name   string
		frames [][]byte
		want   error
	}{
		{"swap two history frames", [][]byte{frames[0], frames[1], frames[3], frames[2]}, ErrOutOfOrder},
		{"account not first", [][]byte{frames[1]}, ErrOutOfOrder},
		{"drop a history frame", [][]byte{frames[0], frames[1], frames[2], frames[4]}, ErrOutOfOrder},
		{"duplicate a frame", [][]byte{frames[0], frames[1], frames[1]}, ErrOutOfOrder},
		{"duplicate the account frame", [][]byte{frames[0], frames[0]}, ErrOutOfOrder},
		{"end early", [][]byte{frames[0], frames[last]}, ErrOutOfOrder},
		{"frame after the end", append(append([][]byte{}, frames...), frames[last]), ErrOutOfOrder},
		{"truncated frame", [][]byte{frames[0], frames[1][:len(frames[1])-1]}, wire.ErrMalformed},
		{"drop the end", frames[:last], ErrIncomplete},
		{"drop everything after the account", frames[:1], ErrIncomplete},
	}
	for _, c := range cases {
		r := NewReceiver(f.secret, "alice")
		var err error
		for _, fr := range c.frames {
			if _, err = r.Open(fr); err != nil {
				break
			}
		}
		if err == nil {
			err = r.Finish()
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if c.want == ErrOutOfOrder && !errors.Is(err, ErrSecurity) {
			t.Errorf("%s: %v is not a security error", c.name, err)
		}
		if err := r.Finish(); err == nil {
			t.Errorf("%s: Finish = nil", c.name)
		}
		// The failure is final: the genuine next frame does not help.
		if c.want != ErrIncomplete {
			if _, err2 := r.Open(frames[0]); err2 == nil {
				t.Errorf("%s: the receiver went on after a failure", c.name)
			}
		}
	}
}

// TestTamperedFrameRejected: a bit flipped anywhere in a frame is refused;
// in the header either as malformed or out of order or as a decryption
// failure (the header is the AEAD's associated data), in the payload as a
// decryption failure.
func TestTamperedFrameRejected(t *testing.T) {
	f := newFixture(t, 1, 3, 5)
	frames := f.frames(t, NewSender(f.offer))
	for fi, fr := range frames {
		for _, i := range []int{1, 2, 5, 6, 7, 8, 9, 100, len(fr) - 17, len(fr) - 1} {
			if i >= len(fr) {
				continue
			}
			r := NewReceiver(f.secret, "alice")
			for _, prev := range frames[:fi] {
				if _, err := r.Open(prev); err != nil {
					t.Fatal(err)
				}
			}
			bad := bytes.Clone(fr)
			bad[i] ^= 0x01
			_, err := r.Open(bad)
			if err == nil {
				t.Fatalf("frame %d with byte %d flipped opened", fi, i)
			}
			if !errors.Is(err, ErrSecurity) && !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("frame %d byte %d: unclassified %v", fi, i, err)
			}
		}
	}
}

// TestAccountFrameForOtherDeviceRejected: the account frame carries a
// genuine device list, but one that does not add the device that made the
// offer (it adds another, or N's keys under another name). N refuses: it
// would hold the account key without being a member, or under a name the
// person did not choose.
func TestAccountFrameForOtherDeviceRejected(t *testing.T) {
	f := newFixture(t, 0, 0, 0)
	l1, _ := f.v1.Verify(nil)
	other := signList(t, f.key, "alice", 2, f.v1, l1.Devices[0],
		identity.DeviceEntry{Device: identity.GenerateDeviceKeys().Public(), Name: "phone"})
	renamed := signList(t, f.key, "alice", 2, f.v1, l1.Devices[0],
		identity.DeviceEntry{Device: f.n.Public(), Name: "attacker's phone"})
	// A device sharing N's signing key but another X25519 key.
	half := &identity.DevicePublic{Signing: f.n.Public().Signing, DH: identity.GenerateDeviceKeys().Public().DH}
	halfList := signList(t, f.key, "alice", 2, f.v1, l1.Devices[0], identity.DeviceEntry{Device: half, Name: "phone"})
	for what, l := range map[string]*identity.SignedDeviceList{"other device": other, "renamed": renamed, "half keys": halfList, "old list": f.v1} {
		a := f.account()
		a.List = l
		// E refuses to send it…
		if _, err := NewSender(f.offer).Account(a); !errors.Is(err, ErrNotThisDevice) {
			t.Errorf("%s: Sender.Account = %v", what, err)
		}
		// …and N refuses it if a broken E sends it anyway.
		fr := forceAccount(t, f.offer, a)
		_, err := NewReceiver(f.secret, "alice").Open(fr)
		if !errors.Is(err, ErrNotThisDevice) || !errors.Is(err, ErrSecurity) {
			t.Errorf("%s: Open = %v, want ErrNotThisDevice", what, err)
		}
	}
}

// forceAccount seals an account frame without the sender's checks, as a
// broken or malicious sender would.
func forceAccount(t *testing.T, o *Offer, a *Account) []byte {
	t.Helper()
	payload, err := a.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return NewSender(o).seal(FrameAccount, payload)
}

// TestForeignAccountKeyRejected: the list is the account's genuine list
// adding N, but the key that travels is another account's: N would sign
// future lists with a key nobody trusts, or (if the list were the
// attacker's) join an account the attacker controls.
func TestForeignAccountKeyRejected(t *testing.T) {
	f := newFixture(t, 0, 0, 0)
	a := f.account()
	a.Key = identity.GenerateAccountKey()
	if _, err := NewSender(f.offer).Account(a); !errors.Is(err, ErrForeignAccountKey) {
		t.Errorf("Sender.Account = %v", err)
	}
	_, err := NewReceiver(f.secret, "alice").Open(forceAccount(t, f.offer, a))
	if !errors.Is(err, ErrForeignAccountKey) || !errors.Is(err, identity.ErrSecurity) {
		t.Errorf("Open = %v, want ErrForeignAccountKey", err)
	}
}

// TestForgedAccountRejected: anyone who knows the offer (the server) can
// seal frames to it; a device list it signs for the account with its own
// key is refused when the list's signature does not verify, when it is for
// another account, or (by the caller, against key transparency) when its
// key is not the account's.
func TestForgedAccountRejected(t *testing.T) {
	f := newFixture(t, 0, 0, 0)
	nEntry := identity.DeviceEntry{Device: f.n.Public(), Name: "phone"}
	// The server's own account named mallory, with N in it.
	mk := identity.GenerateAccountKey()
	mallory := signList(t, mk, "mallory", 1, nil, nEntry)
	a := f.account()
	a.Username, a.Key, a.List = "mallory", mk, mallory
	_, err := NewReceiver(f.secret, "alice").Open(forceAccount(t, f.offer, a))
	mustIs(t, "another account", err, ErrWrongAccount)
	// The username says alice, the list says mallory.
	a.Username = "alice"
	_, err = NewReceiver(f.secret, "alice").Open(forceAccount(t, f.offer, a))
	mustIs(t, "list of another account", err, ErrWrongAccount)
	// Alice's genuine list with its signature corrupted.
	enc := f.v2.Marshal()
	enc[len(enc)-1] ^= 1
	bad, err := identity.ParseSignedDeviceList(enc)
	if err != nil {
		t.Fatal(err)
	}
	a = f.account()
	a.List = bad
	_, err = NewReceiver(f.secret, "alice").Open(forceAccount(t, f.offer, a))
	mustIs(t, "bad signature", err, ErrBadDeviceList)
	mustIs(t, "bad signature", err, identity.ErrBadSignature)
	// The receiver was told to link to bob.
	_, err = NewReceiver(f.secret, "bob").Open(f.frames(t, NewSender(f.offer))[0])
	mustIs(t, "linking to bob", err, ErrWrongAccount)
}

// TestLimits: batches over their limits are refused by the sender; a
// sender that sends more than it announced (too many frames) is refused by
// the receiver; a transfer may not announce more than the limits.
func TestLimits(t *testing.T) {
	f := newFixture(t, 1, MaxHistoryBatch+1, 1)
	s := NewSender(f.offer)
	if _, err := s.Account(f.account()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Contacts(make([]Contact, MaxContactsBatch+1)); !errors.Is(err, ErrLimit) {
		t.Errorf("contacts over the announced count: %v", err)
	}
	if _, err := s.History(f.history); !errors.Is(err, ErrLimit) {
		t.Errorf("history batch of %d: %v", len(f.history), err)
	}
	big := makeHistory(5, wire.MaxPlaintextSize)
	if _, err := marshalHistory(big); !errors.Is(err, ErrLimit) {
		t.Errorf("history batch of 5 × 256 KiB: %v", err)
	}
	if n := FitHistory(big); n != 3 {
		t.Errorf("FitHistory(5 × 256 KiB) = %d, want 3", n)
	}
	if n := FitHistory(f.history); n != MaxHistoryBatch {
		t.Errorf("FitHistory(%d small) = %d", len(f.history), n)
	}
	if n := FitHistory(nil); n != 0 {
		t.Errorf("FitHistory(nil) = %d", n)
	}
	over := makeHistory(1, wire.MaxPlaintextSize+1)
	if _, err := marshalHistory(over); err == nil {
		t.Error("a body over wire.MaxPlaintextSize was encoded")
	}
	if _, err := s.End(); err == nil {
		t.Error("End before the announced contacts and messages were sent")
	}

	// A lying sender: announces 1 message, sends 2 (more frames than
	// announced), or ends with wrong counts.
	f = newFixture(t, 0, 2, 1)
	a := f.account()
	a.Messages = 1
	s = NewSender(f.offer)
	acc, err := s.Account(a)
	if err != nil {
		t.Fatal(err)
	}
	s.wantMessages = 2
	h1, _ := s.History(f.history[:1])
	h2, _ := s.History(f.history[1:])
	r := NewReceiver(f.secret, "alice")
	for _, fr := range [][]byte{acc, h1} {
		if _, err := r.Open(fr); err != nil {
			t.Fatal(err)
		}
	}
	_, err = r.Open(h2)
	mustIs(t, "more messages than announced", err, ErrCountMismatch)

	s = NewSender(f.offer)
	acc, _ = s.Account(a)
	s.wantMessages = 0
	e, _ := s.End()
	r = NewReceiver(f.secret, "alice")
	if _, err := r.Open(acc); err != nil {
		t.Fatal(err)
	}
	_, err = r.Open(e)
	mustIs(t, "end before the announced messages", err, ErrCountMismatch)

	a.Messages = MaxHistoryMessages + 1
	if _, err := NewSender(f.offer).Account(a); err == nil {
		t.Error("announced more than MaxHistoryMessages")
	}
	if MaxFrameSize >= 1<<24+frameHeaderSize+EncapsulatedKeySize {
		t.Error("MaxFrameSize does not fit the u24 length")
	}
}

func TestSenderOrder(t *testing.T) {
	f := newFixture(t, 1, 1, 1)
	s := NewSender(f.offer)
	if _, err := s.Contacts(f.contacts); err == nil {
		t.Error("Contacts before Account")
	}
	if _, err := s.End(); err == nil {
		t.Error("End before Account")
	}
	if _, err := s.Account(f.account()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Account(f.account()); err == nil {
		t.Error("Account twice")
	}
	if _, err := s.History(f.history); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Contacts(f.contacts); err == nil {
		t.Error("Contacts after History")
	}
	if _, err := s.History(nil); err == nil {
		t.Error("empty history batch")
	}
}

// TestReceiverConcurrentUse: Open and Finish may be called from several
// goroutines (under -race); frames still open only in order.
func TestReceiverConcurrentUse(t *testing.T) {
	f := newFixture(t, 0, 40, 10)
	frames := f.frames(t, NewSender(f.offer))
	r := NewReceiver(f.secret, "alice")
	if _, err := r.Open(frames[0]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _ = r.Finish() })
	}
	wg.Wait()
	openAllFrom(t, r, frames[1:])
}

func openAllFrom(t *testing.T, r *Receiver, frames [][]byte) {
	t.Helper()
	for _, fr := range frames {
		if _, err := r.Open(fr); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Finish(); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	for _, e := range []error{ErrAddressMismatch, ErrDecrypt, ErrOutOfOrder, ErrCountMismatch, ErrNotThisDevice,
		ErrWrongAccount, ErrForeignAccountKey, ErrBadDeviceList} {
		if !errors.Is(e, ErrSecurity) || !errors.Is(e, identity.ErrSecurity) || errors.Is(e, wire.ErrMalformed) {
			t.Errorf("%v is not classified as a security error", e)
		}
		if !strings.HasPrefix(e.Error(), "provision: ") {
			t.Errorf("%q lacks the package prefix", e)
		}
	}
	for _, e := range []error{ErrStaleOffer, ErrIncomplete, &CodeError{"x"}, &LimitError{"x", 1}} {
		if errors.Is(e, ErrSecurity) {
			t.Errorf("%v is classified as a security error", e)
		}
	}
}

// TestContactListOfAnotherAccountRejected: a contact whose device list is
// another account's (or does not verify) is refused, so N never stores a
// contact's keys it could not have verified itself.
func TestContactListOfAnotherAccountRejected(t *testing.T) {
	f := newFixture(t, 2, 0, 0)
	f.contacts[1].List = f.contacts[0].List
	frames := f.frames(t, NewSender(f.offer))
	r := NewReceiver(f.secret, "alice")
	if _, err := r.Open(frames[0]); err != nil {
		t.Fatal(err)
	}
	_, err := r.Open(frames[1])
	mustIs(t, "contact with another account's list", err, ErrBadDeviceList)
	mustIs(t, "contact with another account's list", err, ErrSecurity)
}
