package clientdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/wire"
)

func TestIdentityRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	want := sampleIdentity()
	if err := db.PutIdentity(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := db.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Identity = %+v\nwant %+v", got, want)
	}
	update(t, db, func(tx *Tx) error {
		if err := tx.PutPrekeys([]byte("prekeys v2")); err != nil {
			return err
		}
		if err := tx.PutDeviceList([]byte("list v2")); err != nil {
			return err
		}
		return tx.SetToken("tok-456", t0.Add(2*time.Hour))
	})
	want.Prekeys, want.DeviceList, want.Token, want.TokenExpiry = []byte("prekeys v2"), []byte("list v2"), "tok-456", t0.Add(2*time.Hour)
	db = reopen(t, db, path)
	got, err = db.Identity(ctx)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("after updates and reopen: %+v, %v\nwant %+v", got, err, want)
	}
	// No token, no expiry.
	update(t, db, func(tx *Tx) error { return tx.SetToken("", time.Time{}) })
	got, _ = db.Identity(ctx)
	if got.Token != "" || !got.TokenExpiry.IsZero() {
		t.Errorf("cleared token = %q, %v", got.Token, got.TokenExpiry)
	}
	if err := db.PutIdentity(ctx, &Identity{}); err == nil {
		t.Error("identity without username accepted")
	}
}

func TestIdentityUpdatesNeedIdentity(t *testing.T) {
	db, _ := newDB(t)
	err := db.Update(context.Background(), func(tx *Tx) error { return tx.PutPrekeys([]byte("x")) })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("PutPrekeys before PutIdentity: %v, want ErrNotFound", err)
	}
}

func TestContactsRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	if _, err := db.Contact(ctx, "dave"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing contact: %v", err)
	}
	if cs, err := db.Contacts(ctx); err != nil || len(cs) != 0 {
		t.Errorf("Contacts of an empty store = %v, %v", cs, err)
	}
	want := []Contact{
		{Username: "alice", DeviceList: []byte("alice's list"), Verified: true, Added: t0},
		{Username: "bob", DeviceList: []byte("bob's list"), Added: t0.Add(time.Minute)},
		{Username: "Bob", DeviceList: nil, Added: time.Time{}},
	}
	update(t, db, func(tx *Tx) error {
		for i := len(want) - 1; i >= 0; i-- {
			if err := tx.PutContact(&want[i]); err != nil {
				return err
			}
		}
		return nil
	})
	db = reopen(t, db, path)
	got, err := db.Contacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sorted := []Contact{want[2], want[0], want[1]} // "Bob" < "alice" < "bob"
	if len(got) != len(sorted) {
		t.Fatalf("Contacts = %+v\nwant %+v", got, sorted)
	}
	for i := range got {
		g, w := got[i], sorted[i]
		if g.Username != w.Username || !bytes.Equal(g.DeviceList, w.DeviceList) || g.Verified != w.Verified || !g.Added.Equal(w.Added) {
			t.Errorf("Contacts[%d] = %+v, want %+v", i, g, w)
		}
	}
	c, err := db.Contact(ctx, "bob")
	if err != nil || !reflect.DeepEqual(*c, want[1]) {
		t.Errorf("Contact(bob) = %+v, %v", c, err)
	}
	// Replace: verify bob.
	want[1].Verified = true
	update(t, db, func(tx *Tx) error { return tx.PutContact(&want[1]) })
	if c, _ := db.Contact(ctx, "bob"); c == nil || !c.Verified {
		t.Errorf("after verifying: %+v", c)
	}
	update(t, db, func(tx *Tx) error { return tx.DeleteContact("bob") })
	if _, err := db.Contact(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted contact: %v", err)
	}
}

func TestSessionsRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	if _, err := db.Session(ctx, devID(1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing session: %v", err)
	}
	update(t, db, func(tx *Tx) error {
		for i, u := range []string{"alice", "alice", "bob"} {
			if err := tx.PutSession(devID(byte(i+1)), u, []byte(fmt.Sprintf("record %d", i+1))); err != nil {
				return err
			}
		}
		return nil
	})
	db = reopen(t, db, path)
	rec, err := db.Session(ctx, devID(2))
	if err != nil || string(rec) != "record 2" {
		t.Errorf("Session(2) = %q, %v", rec, err)
	}
	m, err := db.SessionsFor(ctx, "alice")
	want := map[[16]byte][]byte{devID(1): []byte("record 1"), devID(2): []byte("record 2")}
	if err != nil || !reflect.DeepEqual(m, want) {
		t.Errorf("SessionsFor(alice) = %q, %v", m, err)
	}
	if m, err := db.SessionsFor(ctx, "nobody"); err != nil || len(m) != 0 {
		t.Errorf("SessionsFor(nobody) = %v, %v", m, err)
	}
	update(t, db, func(tx *Tx) error {
		if err := tx.PutSession(devID(1), "alice", []byte("record 1b")); err != nil {
			return err
		}
		return tx.DeleteSession(devID(2))
	})
	m, _ = db.SessionsFor(ctx, "alice")
	if len(m) != 1 || string(m[devID(1)]) != "record 1b" {
		t.Errorf("after replace and delete: %q", m)
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	if _, err := db.Setting(ctx, "theme"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing setting: %v", err)
	}
	if err := db.SetSetting(ctx, "theme", []byte("dark")); err != nil {
		t.Fatal(err)
	}
	if err := db.SetSetting(ctx, "theme", []byte("light")); err != nil {
		t.Fatal(err)
	}
	if err := db.SetSetting(ctx, "", []byte("x")); err == nil {
		t.Error("empty setting name accepted")
	}
	db = reopen(t, db, path)
	if v, err := db.Setting(ctx, "theme"); err != nil || string(v) != "light" {
		t.Errorf("Setting = %q, %v", v, err)
	}
}

func msg(id byte, conv, sender string, out bool, sent time.Time, body string) *Message {
	st := StateReceived
	if out {
		st = StatePending
	}
	return &Message{
		ID: devID(id), Conversation: conv, Sender: sender, SenderDevice: devID(0xd0 + id%16),
		Outgoing: out, Sent: sent, Received: sent.Add(time.Second), Body: []byte(body), State: st,
	}
}

func TestMessagesRoundTripAndHistory(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	var all []*Message
	update(t, db, func(tx *Tx) error {
		for i := range 10 {
			m := msg(byte(i), "alice", "alice", false, t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("hello %d", i))
			if i%2 == 1 {
				m = msg(byte(i), "alice", "carol", true, t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("reply %d", i))
			}
			all = append(all, m)
			if ok, err := tx.PutMessage(m); err != nil || !ok {
				return fmt.Errorf("PutMessage %d = %v, %v", i, ok, err)
			}
		}
		// Another conversation does not show up in alice's.
		_, err := tx.PutMessage(msg(0, "bob", "bob", false, t0, "bob's"))
		return err
	})
	db = reopen(t, db, path)
	got, err := db.History(ctx, "alice", 100, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("History returned %d messages, want 10", len(got))
	}
	for i := range got {
		if !reflect.DeepEqual(&got[i], all[i]) {
			t.Errorf("message %d = %+v\nwant %+v", i, got[i], *all[i])
		}
	}
	// Paging back: the 3 latest, then the 3 before those.
	page, _ := db.History(ctx, "alice", 3, time.Time{})
	if len(page) != 3 || !bytes.Equal(page[0].Body, all[7].Body) || !bytes.Equal(page[2].Body, all[9].Body) {
		t.Errorf("latest page = %v", bodies(page))
	}
	page, _ = db.History(ctx, "alice", 3, page[0].Sent)
	if len(page) != 3 || !bytes.Equal(page[0].Body, all[4].Body) {
		t.Errorf("second page = %v", bodies(page))
	}
	if h, _ := db.History(ctx, "bob", 10, time.Time{}); len(h) != 1 || string(h[0].Body) != "bob's" {
		t.Errorf("bob's history = %v", bodies(h))
	}
	if h, err := db.History(ctx, "nobody", 10, time.Time{}); err != nil || len(h) != 0 {
		t.Errorf("empty history = %v, %v", h, err)
	}
	if _, err := db.History(ctx, "alice", 0, time.Time{}); err == nil {
		t.Error("limit 0 accepted")
	}
}

func bodies(ms []Message) []string {
	var s []string
	for _, m := range ms {
		s = append(s, string(m.Body))
	}
	return s
}

// TestPutMessageDeduplicates: a redelivered message (same sender, same ID)
// is reported and not stored twice, even with different contents; the same
// ID from another sender is a different message.
func TestPutMessageDeduplicates(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	first := msg(7, "alice", "alice", false, t0, "original")
	var ins []bool
	update(t, db, func(tx *Tx) error {
		for _, m := range []*Message{
			first,
			msg(7, "alice", "alice", false, t0.Add(time.Hour), "replayed with other contents"),
			msg(7, "alice", "mallory", false, t0, "same id, other sender"),
		} {
			ok, err := tx.PutMessage(m)
			if err != nil {
				return err
			}
			ins = append(ins, ok)
		}
		return nil
	})
	if !reflect.DeepEqual(ins, []bool{true, false, true}) {
		t.Errorf("inserted = %v, want [true false true]", ins)
	}
	// Across transactions too.
	update(t, db, func(tx *Tx) error {
		ok, err := tx.PutMessage(first)
		if ok {
			t.Error("duplicate in a later transaction inserted")
		}
		return err
	})
	h, _ := db.History(ctx, "alice", 10, time.Time{})
	if len(h) != 2 || string(h[0].Body) != "original" {
		t.Errorf("history = %v", bodies(h))
	}
}

func TestSetMessageState(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)
	m := msg(1, "alice", "carol", true, t0, "hi")
	update(t, db, func(tx *Tx) error { _, err := tx.PutMessage(m); return err })
	update(t, db, func(tx *Tx) error { return tx.SetMessageState("carol", m.ID, StateDelivered) })
	db = reopen(t, db, path)
	h, err := db.History(ctx, "alice", 1, time.Time{})
	if err != nil || len(h) != 1 || h[0].State != StateDelivered {
		t.Errorf("after SetMessageState: %+v, %v", h, err)
	}
	err = db.Update(ctx, func(tx *Tx) error { return tx.SetMessageState("alice", m.ID, StateRead) })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("SetMessageState with the wrong sender: %v", err)
	}
	err = db.Update(ctx, func(tx *Tx) error { return tx.SetMessageState("carol", m.ID, 0) })
	if err == nil {
		t.Error("invalid state accepted")
	}
}

func TestPutMessageValidation(t *testing.T) {
	db, _ := newDB(t)
	for name, m := range map[string]*Message{
		"nil":             nil,
		"no conversation": {Sender: "a", State: StateReceived},
		"no sender":       {Conversation: "a", State: StateReceived},
		"bad state":       {Conversation: "a", Sender: "a", State: 99},
		"year 3000":       {Conversation: "a", Sender: "a", State: StateReceived, Sent: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		err := db.Update(context.Background(), func(tx *Tx) error { _, err := tx.PutMessage(m); return err })
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDeliveryStateString(t *testing.T) {
	for s := StatePending; s <= StateRead; s++ {
		if s.String() == "" || s.String()[0] == 'D' {
			t.Errorf("state %d has no name", s)
		}
	}
	if DeliveryState(0).String() != "DeliveryState(0)" {
		t.Errorf("unknown state prints %q", DeliveryState(0).String())
	}
}

// TestUpdateIsAtomic: an error (or a panic) inside Update keeps nothing it
// wrote — the message, the session and the prekeys of one receive commit
// together or not at all.
func TestUpdateIsAtomic(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	if err := db.PutIdentity(ctx, sampleIdentity()); err != nil {
		t.Fatal(err)
	}
	receive := func(tx *Tx) error {
		if _, err := tx.PutMessage(msg(1, "alice", "alice", false, t0, "hi")); err != nil {
			return err
		}
		if err := tx.PutSession(devID(1), "alice", []byte("advanced record")); err != nil {
			return err
		}
		if err := tx.PutPrekeys([]byte("set without the used prekey")); err != nil {
			return err
		}
		return tx.PutContact(&Contact{Username: "alice", Added: t0})
	}
	boom := errors.New("ack failed before commit")
	err := db.Update(ctx, func(tx *Tx) error {
		if err := receive(tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the callback's error", err)
	}
	checkNothing := func() {
		t.Helper()
		if h, _ := db.History(ctx, "alice", 10, time.Time{}); len(h) != 0 {
			t.Error("message survived a rolled-back Update")
		}
		if _, err := db.Session(ctx, devID(1)); !errors.Is(err, ErrNotFound) {
			t.Error("session survived a rolled-back Update")
		}
		if id, _ := db.Identity(ctx); string(id.Prekeys) != "prekey set blob" {
			t.Error("prekeys changed by a rolled-back Update")
		}
		if _, err := db.Contact(ctx, "alice"); !errors.Is(err, ErrNotFound) {
			t.Error("contact survived a rolled-back Update")
		}
	}
	checkNothing()

	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic swallowed")
			}
		}()
		db.Update(ctx, func(tx *Tx) error {
			if err := receive(tx); err != nil {
				return err
			}
			panic("crash mid-receive")
		})
	}()
	checkNothing()

	// And the store still works.
	update(t, db, receive)
	if h, _ := db.History(ctx, "alice", 10, time.Time{}); len(h) != 1 {
		t.Errorf("after a committed receive, history has %d messages", len(h))
	}
	// Reads inside the transaction see its own writes.
	update(t, db, func(tx *Tx) error {
		if err := tx.PutSession(devID(9), "zed", []byte("r")); err != nil {
			return err
		}
		if r, err := tx.Session(devID(9)); err != nil || string(r) != "r" {
			t.Errorf("Tx.Session = %q, %v", r, err)
		}
		return nil
	})
}

// TestMessageBodyPadded: sealed bodies are padded as on the wire, so short
// messages of different lengths take the same space in the file; a body
// too large to send is refused.
func TestMessageBodyPadded(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	update(t, db, func(tx *Tx) error {
		for i, b := range []string{"", "y", "no", "a somewhat longer message, still in the first bucket"} {
			if _, err := tx.PutMessage(msg(byte(i), "alice", "alice", false, t0.Add(time.Duration(i)), b)); err != nil {
				return err
			}
		}
		return nil
	})
	rows, err := db.sql.Query("SELECT DISTINCT length(body) FROM messages")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for rows.Next() {
		n++
	}
	rows.Close()
	if n != 1 {
		t.Errorf("sealed bodies have %d distinct lengths, want 1", n)
	}
	h, err := db.History(ctx, "alice", 10, time.Time{})
	if err != nil || len(h) != 4 || len(h[0].Body) != 0 || string(h[2].Body) != "no" {
		t.Errorf("History = %q, %v", bodies(h), err)
	}
	big := msg(9, "alice", "alice", false, t0, "")
	big.Body = make([]byte, wire.MaxPlaintextSize+1)
	err = db.Update(ctx, func(tx *Tx) error { _, err := tx.PutMessage(big); return err })
	if !errors.Is(err, wire.ErrPlaintextTooLarge) {
		t.Errorf("oversized body: %v", err)
	}
}
