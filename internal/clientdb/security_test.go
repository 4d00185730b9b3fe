package clientdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/primitives"
)

// Tests named after the attack each one stops.

func randomBytes(n int) []byte {
	b := make([]byte, n)
	primitives.Random(b)
	return b
}

// readFiles returns the database file and its -wal and -shm files, as a
// thief copying the directory would get them.
func readFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(path + suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(path+suffix)] = b
	}
	return out
}

// TestStolenDatabaseFileRevealsNothing: a thief who copies the store's files
// (while the app runs, so the WAL is full, and after it closes) finds none
// of the plaintexts, key bytes, usernames or the storage key in them.
func TestStolenDatabaseFileRevealsNothing(t *testing.T) {
	ctx := context.Background()
	db, path := newDB(t)

	secrets := map[string][]byte{}
	add := func(name string, b []byte) []byte { secrets[name] = b; return b }
	own := string(add("own username", []byte("own-username-quixotic")))
	contact := string(add("contact username", []byte("contact-username-zanzibar")))
	id := &Identity{
		Username:       own,
		ServerURL:      string(add("server url", []byte("https://private-server.example.org"))),
		AccountKeySeed: add("account key seed", randomBytes(32)),
		DeviceKeys:     add("device keys", randomBytes(96)),
		Prekeys:        add("prekey set", randomBytes(512)),
		DeviceList:     append([]byte("list of "), own...),
		Token:          string(add("auth token", []byte("token-4f1e8c0b9d"))),
		TokenExpiry:    t0,
	}
	if err := db.PutIdentity(ctx, id); err != nil {
		t.Fatal(err)
	}
	remote := [16]byte(add("remote device id", randomBytes(16)))
	record := add("session record", randomBytes(300))
	body := add("message body", []byte("meet me at the old lighthouse at midnight"))
	reply := add("reply body", []byte("bring the blue folder and come alone"))
	msgID := [16]byte(add("message id", randomBytes(16)))
	update(t, db, func(tx *Tx) error {
		if err := tx.PutContact(&Contact{Username: contact, DeviceList: append([]byte("list of "), contact...), Verified: true, Added: t0}); err != nil {
			return err
		}
		if err := tx.PutSession(remote, contact, record); err != nil {
			return err
		}
		if _, err := tx.PutMessage(&Message{ID: msgID, Conversation: contact, Sender: contact, SenderDevice: remote, Sent: t0, Received: t0, Body: body, State: StateReceived}); err != nil {
			return err
		}
		if _, err := tx.PutMessage(&Message{ID: devID(1), Conversation: contact, Sender: own, SenderDevice: devID(2), Outgoing: true, Sent: t0, Received: t0, Body: reply, State: StateSent}); err != nil {
			return err
		}
		return tx.SetSetting("backup-recovery-hint", add("setting value", []byte("recovery-hint-under-the-mat")))
	})

	var wrapped []byte
	if err := db.sql.QueryRow("SELECT wrapped FROM keyring").Scan(&wrapped); err != nil {
		t.Fatal(err)
	}
	sk, _, err := UnwrapKey(wrapped, testPass)
	if err != nil {
		t.Fatal(err)
	}
	add("storage key", sk[:])
	add("seal key", bytes.Clone(db.keys.sealKey[:]))
	add("index key", bytes.Clone(db.keys.indexKey[:]))
	add("passphrase", testPass)

	scan := func(when string) {
		files := readFiles(t, path)
		if len(files) == 0 {
			t.Fatal("no files to scan")
		}
		found := false
		for name, b := range files {
			// Positive control: the scan reads the bytes the store wrote.
			if bytes.Contains(b, wrapped) {
				found = true
			}
			for what, s := range secrets {
				if bytes.Contains(b, s) {
					t.Errorf("%s: %s contains the %s", when, name, what)
				}
			}
		}
		if !found {
			t.Errorf("%s: the wrapped key is in none of %d files; the scan reads the wrong bytes", when, len(files))
		}
	}
	if b := readFiles(t, path)["parley.db-wal"]; len(b) == 0 {
		t.Error("the WAL is empty while the store is open; the scan would miss what it holds")
	}
	scan("while open")
	db.Close()
	scan("after close")
}

// TestInsecureStoreHoldsItsKey is the control for the test above: an
// insecure store does hold its storage key in the file, as documented.
func TestInsecureStoreHoldsItsKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := Create(path, nil, Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	var wrapped []byte
	db.sql.QueryRow("SELECT wrapped FROM keyring").Scan(&wrapped)
	db.Close()
	sk, _, _ := UnwrapKey(wrapped, nil)
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, sk[:]) {
		t.Error("insecure store does not hold its key in the clear")
	}
}

// populated makes a store with two rows in every table.
func populated(t *testing.T) *DB {
	t.Helper()
	db, _ := newDB(t)
	if err := db.PutIdentity(context.Background(), sampleIdentity()); err != nil {
		t.Fatal(err)
	}
	update(t, db, func(tx *Tx) error {
		for _, u := range []string{"alice", "bob"} {
			if err := tx.PutContact(&Contact{Username: u, DeviceList: []byte(u + "'s list"), Added: t0}); err != nil {
				return err
			}
			if err := tx.SetSetting(u+"-setting", []byte(u+"'s value")); err != nil {
				return err
			}
		}
		if err := tx.PutSession(devID(1), "alice", []byte("alice's record")); err != nil {
			return err
		}
		if err := tx.PutSession(devID(2), "bob", []byte("bob's record")); err != nil {
			return err
		}
		for i, u := range []string{"alice", "alice", "bob"} {
			if _, err := tx.PutMessage(msg(byte(i), u, u, false, t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("%s message %d", u, i))); err != nil {
				return err
			}
		}
		return nil
	})
	return db
}

// reads runs every reader and returns the first error.
func reads(db *DB) error {
	ctx := context.Background()
	if _, err := db.Identity(ctx); err != nil {
		return err
	}
	if _, err := db.Contacts(ctx); err != nil {
		return err
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := db.Contact(ctx, u); err != nil {
			return err
		}
		if _, err := db.SessionsFor(ctx, u); err != nil {
			return err
		}
		if _, err := db.History(ctx, u, 10, time.Time{}); err != nil {
			return err
		}
		if _, err := db.Setting(ctx, u+"-setting"); err != nil {
			return err
		}
	}
	for _, d := range []byte{1, 2} {
		if _, err := db.Session(ctx, devID(d)); err != nil {
			return err
		}
	}
	return nil
}

// mustCorrupt applies a change to the file behind the store's back and
// checks that the readers report ErrCorrupt (never a panic, never a value).
func mustCorrupt(t *testing.T, db *DB, what string, stmts ...string) {
	t.Helper()
	if err := reads(db); err != nil {
		t.Fatalf("%s: store unreadable before tampering: %v", what, err)
	}
	for _, s := range stmts {
		if _, err := db.sql.Exec(s); err != nil {
			t.Fatalf("%s: %s: %v", what, s, err)
		}
	}
	if err := reads(db); !errors.Is(err, ErrCorrupt) {
		t.Errorf("%s: readers return %v, want ErrCorrupt", what, err)
	}
}

// TestTamperedSealedValue: changing any sealed byte is detected.
func TestTamperedSealedValue(t *testing.T) {
	for _, c := range [][2]string{
		{"identity", "username"}, {"identity", "server_url"}, {"identity", "account_key_seed"},
		{"identity", "device_keys"}, {"identity", "prekeys"}, {"identity", "device_list"}, {"identity", "token"},
		{"contacts", "username"}, {"contacts", "device_list"},
		{"sessions", "ident"}, {"sessions", "record"},
		{"messages", "meta"}, {"messages", "body"},
		{"settings", "value"},
	} {
		db := populated(t)
		// Flip one bit in the middle of the value in every row.
		rows, err := db.sql.Query(fmt.Sprintf("SELECT %s, %s FROM %s", pkOf(c[0]), c[1], c[0]))
		if err != nil {
			t.Fatal(err)
		}
		type kv struct {
			k any
			v []byte
		}
		var all []kv
		for rows.Next() {
			var r kv
			if err := rows.Scan(&r.k, &r.v); err != nil {
				t.Fatal(err)
			}
			all = append(all, r)
		}
		rows.Close()
		if len(all) == 0 {
			t.Fatalf("%s.%s: no rows", c[0], c[1])
		}
		if err := reads(db); err != nil {
			t.Fatal(err)
		}
		for _, r := range all {
			v := bytes.Clone(r.v)
			v[len(v)/2] ^= 0x01
			q := fmt.Sprintf("UPDATE %s SET %s = ? WHERE %s = ?", c[0], c[1], pkOf(c[0]))
			if _, err := db.sql.Exec(q, v, r.k); err != nil {
				t.Fatal(err)
			}
		}
		if err := reads(db); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s.%s changed: readers return %v, want ErrCorrupt", c[0], c[1], err)
		}
	}
}

func pkOf(table string) string {
	switch table {
	case "contacts", "settings":
		return "name_hash"
	case "sessions":
		return "device_hash"
	case "messages":
		return "seq"
	}
	return "id"
}

// TestSealedValueMovedBetweenRows: a sealed value copied into another row
// or column is refused, so a thief cannot make one contact's device list,
// one device's session or one conversation's message appear as another's.
func TestSealedValueMovedBetweenRows(t *testing.T) {
	cases := []struct {
		name  string
		stmts []string
	}{
		{"session record to another device", []string{
			"UPDATE sessions SET record = (SELECT record FROM sessions WHERE name_hash != s.name_hash) FROM sessions AS s WHERE sessions.device_hash = s.device_hash",
		}},
		{"message body to another message", []string{
			"UPDATE messages SET body = (SELECT body FROM messages WHERE seq = 3) WHERE seq = 1",
		}},
		{"contact device list to another contact", []string{
			"UPDATE contacts SET device_list = (SELECT device_list FROM contacts ORDER BY name_hash LIMIT 1) WHERE name_hash = (SELECT name_hash FROM contacts ORDER BY name_hash DESC LIMIT 1)",
		}},
		{"setting value to another setting", []string{
			"UPDATE settings SET value = (SELECT value FROM settings ORDER BY name_hash LIMIT 1) WHERE name_hash = (SELECT name_hash FROM settings ORDER BY name_hash DESC LIMIT 1)",
		}},
		{"device keys into the account key column", []string{
			"UPDATE identity SET account_key_seed = device_keys",
		}},
	}
	for _, c := range cases {
		mustCorrupt(t, populated(t), c.name, c.stmts...)
	}
	// A whole row moved under another key: the keyed hash is bound, so
	// renaming alice's session row to bob's device is refused.
	db := populated(t)
	var bobDevice []byte
	if err := db.sql.QueryRow("SELECT device_hash FROM sessions WHERE name_hash = ?", db.keys.username("bob")).Scan(&bobDevice); err != nil {
		t.Fatal(err)
	}
	mustCorrupt(t, db, "alice's session row renamed to bob's device",
		"DELETE FROM sessions WHERE device_hash = x'"+fmt.Sprintf("%x", bobDevice)+"'",
		"UPDATE sessions SET device_hash = x'"+fmt.Sprintf("%x", bobDevice)+"'")
}

// TestClearColumnTampering: the clear columns next to sealed values (the
// verified flag, the conversation, times, state) are bound into the
// sealed values, so editing them is detected instead of believed.
func TestClearColumnTampering(t *testing.T) {
	ctx := context.Background()
	mustCorrupt(t, populated(t), "contact marked verified", "UPDATE contacts SET verified = 1")
	mustCorrupt(t, populated(t), "contact added time", "UPDATE contacts SET added = added + 1")
	mustCorrupt(t, populated(t), "message sent time", "UPDATE messages SET sent = sent - 1")
	mustCorrupt(t, populated(t), "message received time", "UPDATE messages SET received = received + 1")
	mustCorrupt(t, populated(t), "message direction", "UPDATE messages SET outgoing = 1 - outgoing")
	mustCorrupt(t, populated(t), "message state", "UPDATE messages SET state = 6")
	mustCorrupt(t, populated(t), "message state out of range", "UPDATE messages SET state = 300")

	// bob's message moved into alice's conversation.
	db := populated(t)
	if _, err := db.sql.Exec("UPDATE messages SET conversation = ? WHERE conversation = ?", db.keys.username("alice"), db.keys.username("bob")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.History(ctx, "alice", 10, time.Time{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("message moved between conversations: %v", err)
	}
	// bob's session listed as alice's.
	db = populated(t)
	if _, err := db.sql.Exec("UPDATE sessions SET name_hash = ?", db.keys.username("alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SessionsFor(ctx, "alice"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("session moved between users: %v", err)
	}
	// SetMessageState must not launder a tampered row into a valid one.
	db = populated(t)
	if _, err := db.sql.Exec("UPDATE messages SET outgoing = 1 WHERE seq = 1"); err != nil {
		t.Fatal(err)
	}
	err := db.Update(ctx, func(tx *Tx) error { return tx.SetMessageState("alice", devID(0), StateRead) })
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("SetMessageState on a tampered row: %v", err)
	}
}

// TestConcurrentUse runs writers, readers and a passphrase change at once
// (run with -race), then checks that nothing was lost and no goroutine
// outlives Close.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := Create(path, testPass, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				err := db.Update(ctx, func(tx *Tx) error {
					m := msg(byte(i), "alice", fmt.Sprintf("sender%d", w), false, t0.Add(time.Duration(i)*time.Second), "x")
					if _, err := tx.PutMessage(m); err != nil {
						return err
					}
					return tx.PutSession(devID(byte(w)), "alice", []byte(fmt.Sprintf("record %d", i)))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 30 {
				if _, err := db.History(ctx, "alice", 50, time.Time{}); err != nil {
					errs <- err
					return
				}
				if _, err := db.SessionsFor(ctx, "alice"); err != nil {
					errs <- err
					return
				}
				db.Insecure()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := db.ChangePassphrase(testPass, []byte("rotated")); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h, err := db.History(ctx, "alice", MaxHistory, time.Time{})
	if err != nil || len(h) != writers*perWriter {
		t.Errorf("history has %d messages, %v; want %d", len(h), err, writers*perWriter)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before", n, before)
	}
	if db2, err := Open(path, []byte("rotated")); err != nil {
		t.Errorf("reopen with the rotated passphrase: %v", err)
	} else {
		db2.Close()
	}
}
