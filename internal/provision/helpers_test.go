package provision

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/wire"
)

// t0 is the fixed clock of the tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is one account with an existing device E, a new device N that
// made an offer, and the signed device list (version 2) that adds N.
type fixture struct {
	username string
	key      *identity.AccountKey
	e, n     *identity.DeviceKeys
	v1, v2   *identity.SignedDeviceList
	offer    *Offer
	secret   *OfferSecret
	contacts []Contact
	history  []HistoryMessage
}

func signList(t testing.TB, k *identity.AccountKey, account string, version uint64, prev *identity.SignedDeviceList, devs ...identity.DeviceEntry) *identity.SignedDeviceList {
	t.Helper()
	l := &identity.DeviceList{Account: account, Version: version, Devices: devs}
	if prev != nil {
		l.Prev = prev.Hash()
	}
	s, err := identity.SignDeviceList(k, l)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newFixture builds the fixture with nContacts contacts and nMessages
// messages of bodySize bytes each.
func newFixture(t testing.TB, nContacts, nMessages, bodySize int) *fixture {
	t.Helper()
	f := &fixture{username: "alice", key: identity.GenerateAccountKey(),
		e: identity.GenerateDeviceKeys(), n: identity.GenerateDeviceKeys()}
	eEntry := identity.DeviceEntry{Device: f.e.Public(), Name: "laptop", Added: uint64(t0.Add(-time.Hour).Unix())}
	f.v1 = signList(t, f.key, f.username, 1, nil, eEntry)
	var err error
	f.offer, f.secret, err = NewOffer(f.n.Public(), "phone", t0)
	if err != nil {
		t.Fatal(err)
	}
	f.v2 = signList(t, f.key, f.username, 2, f.v1, eEntry,
		identity.DeviceEntry{Device: f.n.Public(), Name: "phone", Added: uint64(t0.Unix())})
	for i := range nContacts {
		name := fmt.Sprintf("contact%d", i)
		l := signList(t, identity.GenerateAccountKey(), name, 1, nil,
			identity.DeviceEntry{Device: identity.GenerateDeviceKeys().Public(), Name: "d"})
		f.contacts = append(f.contacts, Contact{Username: name, List: l, Verified: i%2 == 0, Added: t0.Add(-time.Duration(i) * time.Minute)})
	}
	f.history = makeHistory(nMessages, bodySize)
	return f
}

func makeHistory(n, bodySize int) []HistoryMessage {
	ms := make([]HistoryMessage, n)
	for i := range ms {
		m := &ms[i]
		m.ID[0], m.ID[1], m.ID[2] = byte(i>>16), byte(i>>8), byte(i)
		m.Conversation = "bob"
		m.Sender = "alice"
		if i%3 == 0 {
			m.Sender = "bob"
		}
		m.SenderDevice[0] = byte(i)
		m.Outgoing = m.Sender == "alice"
		m.Sent = t0.Add(time.Duration(i) * time.Second)
		m.Received = m.Sent.Add(150 * time.Millisecond)
		m.State = uint8(1 + i%6)
		m.Body = bytes.Repeat([]byte{byte('a' + i%26)}, bodySize)
	}
	return ms
}

func (f *fixture) account() *Account {
	return &Account{
		Username: f.username, Server: "https://parley.example", Key: f.key, List: f.v2,
		Contacts: uint32(len(f.contacts)), Messages: uint32(len(f.history)),
		Settings: []Setting{{Name: "notifications", Value: []byte("on")}, {Name: "theme", Value: []byte("dark")}},
	}
}

// frames runs a whole transfer from E with s and returns its frames.
func (f *fixture) frames(t testing.TB, s *Sender) [][]byte {
	t.Helper()
	var out [][]byte
	add := func(b []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	add(s.Account(f.account()))
	for cs := f.contacts; len(cs) > 0; {
		n := FitContacts(cs)
		add(s.Contacts(cs[:n]))
		cs = cs[n:]
	}
	for ms := f.history; len(ms) > 0; {
		n := FitHistory(ms)
		add(s.History(ms[:n]))
		ms = ms[n:]
	}
	add(s.End())
	return out
}

// checkPrefixes checks that every strict prefix of enc is refused with a
// decoding error.
func checkPrefixes(t *testing.T, enc []byte, parse func([]byte) error) {
	t.Helper()
	for n := range len(enc) {
		err := parse(enc[:n])
		if err == nil {
			t.Fatalf("prefix of %d of %d bytes accepted", n, len(enc))
		}
		if !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("prefix of %d bytes: %v does not match wire.ErrMalformed", n, err)
		}
	}
}

// mustIs fails unless errors.Is(err, target).
func mustIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}
