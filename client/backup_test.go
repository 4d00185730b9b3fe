package client

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/backup"
)

func (ts *testServer) opts(device string) Options {
	return Options{Insecure: true, HTTPClient: ts.hs.Client(), DeviceName: device}
}

func send(t *testing.T, c *Client, to, text string) {
	t.Helper()
	if _, err := c.Send(context.Background(), to, text); err != nil {
		t.Fatalf("%s → %s: %v", c.Username(), to, err)
	}
}

func texts(ms []*Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

// converse gives alice a history with bob and carol and returns alice's
// recovery key.
func converse(t *testing.T, alice, bob, carol *Client) string {
	t.Helper()
	ctx := context.Background()
	send(t, alice, "bob", "hi bob")
	send(t, bob, "alice", "hi alice, bob here")
	send(t, alice, "carol", "hi carol")
	send(t, carol, "alice", "carol says hello")
	drain(t, bob)
	drain(t, carol)
	drain(t, alice)
	if err := alice.MarkVerified(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	key, err := alice.EnableBackups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Backup(ctx, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestRestoreThenConversationCarriesOn: a fresh device restored from the
// backup has the history, contacts and verification states, and messages
// flow both ways with every contact on new sessions.
func TestRestoreThenConversationCarriesOn(t *testing.T) {
	ts := newTestServer(t)
	alice, bob, carol := ts.register(t, "alice"), ts.register(t, "bob"), ts.register(t, "carol")
	key := converse(t, alice, bob, carol)
	ctx := context.Background()

	var phases []string
	restored, err := Restore(ctx, t.TempDir(), ts.url, "alice", key, ts.opts("alice-new"), func(p Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	defer restored.Close()
	if strings.Join(phases, ",") != "download,restore" {
		t.Errorf("progress phases %v, want download then restore", phases)
	}
	h, err := restored.History(ctx, "bob", 10, time.Time{})
	if err != nil || strings.Join(texts(h), "|") != "hi bob|hi alice, bob here" {
		t.Fatalf("restored history with bob: %q, %v", texts(h), err)
	}
	cs, err := restored.Contacts(ctx)
	if err != nil || len(cs) != 2 {
		t.Fatalf("restored contacts: %+v, %v", cs, err)
	}
	for _, c := range cs {
		if c.Verified != (c.Username == "bob") {
			t.Errorf("restored contact %s verified = %v", c.Username, c.Verified)
		}
	}
	devs, err := restored.Devices(ctx, true)
	if err != nil || len(devs) != 2 {
		t.Fatalf("devices after restore: %+v, %v; want the old and the restored device", devs, err)
	}

	// Messages flow both ways with every contact.
	send(t, restored, "bob", "bob, I restored my backup")
	send(t, restored, "carol", "carol, me too")
	if got := texts(drain(t, bob)); len(got) != 1 || got[0] != "bob, I restored my backup" {
		t.Fatalf("bob got %q", got)
	}
	if got := texts(drain(t, carol)); len(got) != 1 || got[0] != "carol, me too" {
		t.Fatalf("carol got %q", got)
	}
	send(t, bob, "alice", "welcome back")
	send(t, carol, "alice", "hello again")
	got := texts(drain(t, restored))
	if strings.Join(got, "|") != "welcome back|hello again" {
		t.Fatalf("the restored device got %q", got)
	}
	// The old device still works and sees the same.
	if got := texts(drain(t, alice)); len(got) != 4 {
		t.Fatalf("the old device got %q; want the two sent copies and the two replies", got)
	}
}

func TestRestoreWithWrongKeyFails(t *testing.T) {
	ts := newTestServer(t)
	alice, bob, carol := ts.register(t, "alice"), ts.register(t, "bob"), ts.register(t, "carol")
	key := converse(t, alice, bob, carol)
	ctx := context.Background()
	home := filepath.Join(t.TempDir(), "home")

	// A typo: one character changed.
	typo := []byte(key)
	for i, ch := range typo {
		if ch != '-' {
			if ch == 'A' {
				typo[i] = 'B'
			} else {
				typo[i] = 'A'
			}
			break
		}
	}
	_, err := Restore(ctx, home, ts.url, "alice", string(typo), ts.opts("new"), nil)
	if !errors.Is(err, ErrRecoveryKeyTypo) {
		t.Errorf("restore with a typo: %v, want ErrRecoveryKeyTypo", err)
	}
	// Another valid key: nothing is stored under it.
	_, err = Restore(ctx, home, ts.url, "alice", backup.NewRecoveryKey().String(), ts.opts("new"), nil)
	if !errors.Is(err, ErrNoBackup) {
		t.Errorf("restore with another key: %v, want ErrNoBackup", err)
	}
	assertNothingRestored(t, home)
	if devs, _ := alice.Devices(ctx, true); len(devs) != 1 {
		t.Errorf("failed restores changed the device list: %d devices", len(devs))
	}
}

// TestRestoreOfAnotherAccountRefused: alice's recovery key restores only
// alice, even when asked for bob.
func TestRestoreOfAnotherAccountRefused(t *testing.T) {
	ts := newTestServer(t)
	alice, bob, carol := ts.register(t, "alice"), ts.register(t, "bob"), ts.register(t, "carol")
	key := converse(t, alice, bob, carol)
	home := filepath.Join(t.TempDir(), "home")
	_, err := Restore(context.Background(), home, ts.url, "bob", key, ts.opts("new"), nil)
	if !errors.Is(err, ErrBackupOtherAccount) {
		t.Fatalf("restore of alice's backup as bob: %v, want ErrBackupOtherAccount", err)
	}
	assertNothingRestored(t, home)
}

// TestTamperedBackupRefused: a server that flips a byte of the stored
// backup gets a clear error and nothing half-restored.
func TestTamperedBackupRefused(t *testing.T) {
	ts := newTestServer(t)
	alice, bob, carol := ts.register(t, "alice"), ts.register(t, "bob"), ts.register(t, "carol")
	key := converse(t, alice, bob, carol)
	ctx := context.Background()
	k, err := backup.ParseRecoveryKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte in the middle of the stored ciphertext, as a storage
	// partner could.
	loc := k.Locator()
	db := ts.rawDB(t)
	var upload, chunk []byte
	if err := db.QueryRowContext(ctx, `SELECT c.upload, c.chunk FROM backup_chunks c JOIN backups b ON b.upload = c.upload
		WHERE b.locator = ? AND c.idx = 0`, loc[:]).Scan(&upload, &chunk); err != nil {
		t.Fatal(err)
	}
	chunk[len(chunk)/2] ^= 1
	if _, err := db.ExecContext(ctx, "UPDATE backup_chunks SET chunk = ? WHERE upload = ? AND idx = 0", chunk, upload); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "home")
	_, err = Restore(ctx, home, ts.url, "alice", key, ts.opts("new"), nil)
	if !errors.Is(err, backup.ErrTampered) && !errors.Is(err, backup.ErrWrongRecoveryKey) {
		t.Fatalf("restore of a tampered backup: %v, want ErrTampered", err)
	}
	assertNothingRestored(t, home)
	if devs, _ := alice.Devices(ctx, true); len(devs) != 1 {
		t.Errorf("a failed restore changed the device list: %d devices", len(devs))
	}
}

// assertNothingRestored checks that a failed restore left no store behind.
func assertNothingRestored(t *testing.T, home string) {
	t.Helper()
	err := filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			t.Errorf("a failed restore left %s behind", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServerHoldsNoBackupSecrets: after a backup, nothing the server stores
// — its database files and its log — contains a message, the recovery
// key, the age identity or the write token.
func TestServerHoldsNoBackupSecrets(t *testing.T) {
	var logs bytes.Buffer
	ts := newTestServerLogging(t, &logs)
	alice, bob, carol := ts.register(t, "alice"), ts.register(t, "bob"), ts.register(t, "carol")
	key := converse(t, alice, bob, carol)
	k, err := backup.ParseRecoveryKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tok := k.WriteToken()
	secrets := map[string][]byte{
		"a message": []byte("carol says hello"), "the recovery key": k[:], "its written form": []byte(key),
		"the age identity": []byte(k.AgeIdentityString()), "the write token": tok[:],
	}
	files, _ := filepath.Glob(filepath.Join(ts.dataDir, "*"))
	blobs := map[string][]byte{"the server log": logs.Bytes()}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blobs[filepath.Base(f)] = b
	}
	for where, b := range blobs {
		for what, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("%s contains %s", where, what)
			}
		}
	}
}

// TestRotateRevokesOldKey: after a rotation the old key opens nothing and
// the new one restores.
func TestRotateRevokesOldKey(t *testing.T) {
	ts := newTestServer(t)
	alice, bob, carol := ts.register(t, "alice"), ts.register(t, "bob"), ts.register(t, "carol")
	oldKey := converse(t, alice, bob, carol)
	ctx := context.Background()
	newKey, info, err := alice.RotateRecoveryKey(ctx, BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if newKey == oldKey || info.Generation != 1 || info.Messages != 4 {
		t.Fatalf("rotate: new key equal %v, info %+v", newKey == oldKey, info)
	}
	if _, err := Restore(ctx, filepath.Join(t.TempDir(), "h"), ts.url, "alice", oldKey, ts.opts("new"), nil); !errors.Is(err, ErrNoBackup) {
		t.Errorf("restore with the rotated-out key: %v, want ErrNoBackup", err)
	}
	c, err := Restore(ctx, t.TempDir(), ts.url, "alice", newKey, ts.opts("new"), nil)
	if err != nil {
		t.Fatalf("restore with the new key: %v", err)
	}
	c.Close()
	// Turning backups off deletes the server's copies.
	if err := alice.DisableBackups(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, filepath.Join(t.TempDir(), "h"), ts.url, "alice", newKey, ts.opts("new2"), nil); !errors.Is(err, ErrNoBackup) {
		t.Errorf("restore after backups were turned off: %v, want ErrNoBackup", err)
	}
	if st, err := alice.BackupStatus(ctx); err != nil || st.On {
		t.Errorf("status after off: %+v, %v", st, err)
	}
}

func TestBackupIdentityOpensTheFile(t *testing.T) {
	ts := newTestServer(t)
	alice, bob, carol := ts.register(t, "alice"), ts.register(t, "bob"), ts.register(t, "carol")
	converse(t, alice, bob, carol)
	ctx := context.Background()
	var file bytes.Buffer
	info, err := alice.Backup(ctx, BackupOptions{Output: &file})
	if err != nil {
		t.Fatal(err)
	}
	if int64(file.Len()) != info.Size || info.Generation != 2 {
		t.Fatalf("local file %d bytes, info %+v", file.Len(), info)
	}
	id, err := alice.BackupIdentity(ctx)
	if err != nil || !strings.HasPrefix(id, "AGE-SECRET-KEY-PQ-1") {
		t.Fatalf("identity %.24q, %v", id, err)
	}
}

func TestMaybeBackupHonoursInterval(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	ctx := context.Background()
	if _, err := alice.EnableBackups(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := alice.MaybeBackup(ctx, nil); info != nil || err != nil {
		t.Fatalf("without an interval: %+v, %v; want no backup", info, err)
	}
	if err := alice.SetBackupInterval(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if info, err := alice.MaybeBackup(ctx, nil); info == nil || err != nil {
		t.Fatalf("first due backup: %+v, %v", info, err)
	}
	if info, err := alice.MaybeBackup(ctx, nil); info != nil || err != nil {
		t.Fatalf("right after a backup: %+v, %v; want none", info, err)
	}
	alice.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if info, err := alice.MaybeBackup(ctx, nil); info == nil || err != nil || info.Generation != 2 {
		t.Fatalf("two hours later: %+v, %v; want generation 2", info, err)
	}
}
