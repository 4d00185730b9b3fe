package client

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// setContacts makes bob, carol and dave alice's trusted contacts (2 of 3)
// and lets them receive their shares.
func setContacts(t *testing.T, alice *Client, contacts ...*Client) {
	t.Helper()
	ctx := context.Background()
	var names []string
	for _, c := range contacts {
		names = append(names, c.Username())
	}
	if err := alice.SetRecoveryContacts(ctx, 2, names); err != nil {
		t.Fatal(err)
	}
	for _, c := range contacts {
		got := false
		if err := c.Receive(ctx, ReceiveOptions{}, func(e Event) error {
			if e.Kind == EventRecoveryShare && e.From == "alice" {
				got = true
			}
			if e.Kind == EventUndecryptable {
				t.Errorf("%s: %v", c.Username(), e.Err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !got {
			t.Fatalf("%s got no recovery share event", c.Username())
		}
		if held, err := c.HeldShares(ctx); err != nil || len(held) != 1 || held[0] != "alice" {
			t.Fatalf("%s holds shares for %v, %v", c.Username(), held, err)
		}
	}
	// alice's own devices dropped their copy silently: drain shows nothing.
	drain(t, alice)
}

// help has c give its share to the recovering device p, checking that the
// confirmation c is shown is the one p shows.
func help(t *testing.T, c *Client, p *PendingRecovery) error {
	t.Helper()
	return c.HelpRecover(context.Background(), "alice", p.Code(), func(_, confirmation string) error {
		if confirmation != p.Confirmation() {
			t.Errorf("%s was shown confirmation %q, the device shows %q", c.Username(), confirmation, p.Confirmation())
		}
		return nil
	})
}

func TestRecoveryWithTrustedContacts(t *testing.T) {
	ts := newTestServer(t)
	alice, bob, carol, dave := ts.register(t, "alice"), ts.register(t, "bob"), ts.register(t, "carol"), ts.register(t, "dave")
	converse(t, alice, bob, carol)
	setContacts(t, alice, bob, carol, dave)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := StartRecovery(ctx, t.TempDir(), ts.url, "alice", ts.opts("alice-recovered"))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		c   *Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := p.Wait(ctx, nil)
		done <- result{c, err}
	}()
	for _, c := range []*Client{bob, dave} {
		if err := help(t, c, p); err != nil {
			t.Fatalf("%s helps: %v", c.Username(), err)
		}
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("recovery: %v", r.err)
	}
	defer r.c.Close()
	send(t, r.c, "carol", "recovered with help from bob and dave")
	if got := texts(drain(t, carol)); len(got) != 1 || got[0] != "recovered with help from bob and dave" {
		t.Fatalf("carol got %q", got)
	}
	if h, _ := r.c.History(ctx, "bob", 10, time.Time{}); len(h) != 2 {
		t.Errorf("recovered history with bob has %d messages, want 2", len(h))
	}
}

// TestRecoveryNeedsThreshold: K−1 shares do not recover the account.
func TestRecoveryNeedsThreshold(t *testing.T) {
	ts := newTestServer(t)
	alice, bob, carol, dave := ts.register(t, "alice"), ts.register(t, "bob"), ts.register(t, "carol"), ts.register(t, "dave")
	converse(t, alice, bob, carol)
	setContacts(t, alice, bob, carol, dave)
	home := filepath.Join(t.TempDir(), "home")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	p, err := StartRecovery(ctx, home, ts.url, "alice", ts.opts("new"))
	if err != nil {
		t.Fatal(err)
	}
	if err := help(t, carol, p); err != nil {
		t.Fatal(err)
	}
	// A second share from the same contact (a retry) is the same share.
	if err := help(t, carol, p); err != nil {
		t.Fatal(err)
	}
	var shares []int
	c, err := p.Wait(ctx, func(pr Progress) { shares = append(shares, pr.Done) })
	if err == nil {
		c.Close()
		t.Fatal("one share of a 2-of-3 split recovered the account")
	}
	if len(shares) == 0 {
		t.Error("no progress for the share that arrived")
	}
	assertNothingRestored(t, home)
}

// TestRecoveryWithRevokedGenerationFails: shares held from before a
// rotation (a contact's device that kept them) recover a key that opens
// nothing.
func TestRecoveryWithRevokedGenerationFails(t *testing.T) {
	ts := newTestServer(t)
	alice, bob, carol, dave := ts.register(t, "alice"), ts.register(t, "bob"), ts.register(t, "carol"), ts.register(t, "dave")
	converse(t, alice, bob, carol)
	setContacts(t, alice, bob, carol, dave)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Copies of bob's and carol's stores with the old shares.
	oldBob, oldCarol := snapshot(t, ts, bob), snapshot(t, ts, carol)
	if _, _, err := alice.RotateRecoveryKey(ctx, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := StartRecovery(ctx, filepath.Join(t.TempDir(), "home"), ts.url, "alice", ts.opts("new"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Client{oldBob, oldCarol} {
		if err := help(t, c, p); err != nil {
			t.Fatal(err)
		}
	}
	_, err = p.Wait(ctx, nil)
	if !errors.Is(err, ErrNoBackup) || !strings.Contains(err.Error(), "revoked generation") {
		t.Fatalf("recovery with shares of a rotated key: %v, want ErrNoBackup naming a revoked generation", err)
	}
}

func TestHelpWithoutShareRefused(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	_ = alice
	err := bob.HelpRecover(context.Background(), "alice", "ABCD", func(string, string) error { return nil })
	if !errors.Is(err, ErrNoShare) {
		t.Fatalf("help without a share: %v, want ErrNoShare", err)
	}
}

func TestSetRecoveryContactsChecks(t *testing.T) {
	ts := newTestServer(t)
	alice := ts.register(t, "alice")
	ts.register(t, "bob")
	ctx := context.Background()
	if err := alice.SetRecoveryContacts(ctx, 1, []string{"bob"}); !errors.Is(err, ErrBackupsOff) {
		t.Errorf("contacts before backups are on: %v, want ErrBackupsOff", err)
	}
	if _, err := alice.EnableBackups(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		k     int
		names []string
	}{{0, []string{"bob"}}, {2, []string{"bob"}}, {1, nil}, {1, []string{"alice"}}} {
		if err := alice.SetRecoveryContacts(ctx, tc.k, tc.names); err == nil {
			t.Errorf("threshold %d of %v accepted", tc.k, tc.names)
		}
	}
}

// snapshot opens a copy of c's home as a second client.
func snapshot(t *testing.T, ts *testServer, c *Client) *Client {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, c.home, dir)
	s, err := Open(context.Background(), dir, ts.opts(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
