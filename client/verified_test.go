package client

import (
	"context"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/identity"
)

// TestVerifiedContactKeyChangeBlocksSend: once the person verified bob, a
// device list for bob under any other account key than the one they
// compared stops every send to bob with ErrVerifiedKeyChanged (not a
// silent re-key, and not something a retry gets past) until they verify
// again. The key change is planted in alice's store: it is what alice's
// device would hold after accepting bob's new key.
func TestVerifiedContactKeyChangeBlocksSend(t *testing.T) {
	ts := newTestServer(t)
	alice, bob := ts.register(t, "alice"), ts.register(t, "bob")
	ctx := context.Background()
	if _, err := alice.Send(ctx, "bob", "before verifying"); err != nil {
		t.Fatal(err)
	}
	if err := alice.MarkVerified(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "verified"); err != nil {
		t.Fatalf("send to a verified contact: %v", err)
	}
	cs, err := alice.Contacts(ctx)
	if err != nil || len(cs) != 1 || !cs[0].Verified || cs[0].KeyChanged {
		t.Fatalf("contacts after verifying: %+v, %v", cs, err)
	}

	// What alice verified is not bob's key any more.
	other := identity.GenerateAccountKey().Public().Fingerprint()
	if err := alice.db.SetSetting(ctx, verifiedKeyPrefix+"bob", other[:]); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err := alice.Send(ctx, "bob", "after the change")
		var kc *VerifiedKeyChangedError
		if !errors.Is(err, ErrVerifiedKeyChanged) || !errors.As(err, &kc) || kc.Username != "bob" {
			t.Fatalf("send after the key change: %v, want ErrVerifiedKeyChanged", err)
		}
		if errors.Is(err, ErrSecurity) {
			t.Fatalf("a key change is not a lying server: %v", err)
		}
	}
	cs, err = alice.Contacts(ctx)
	if err != nil || cs[0].Verified || !cs[0].KeyChanged {
		t.Fatalf("contacts after the change: %+v, %v", cs, err)
	}
	got := drain(t, bob)
	if len(got) != 2 {
		t.Fatalf("bob got %d messages, want the 2 sent before the change", len(got))
	}

	// Verifying again (the person compared the new number) unblocks.
	if err := alice.MarkVerified(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "re-verified"); err != nil {
		t.Fatalf("send after re-verifying: %v", err)
	}
	if got := drain(t, bob); len(got) != 1 || got[0].Text != "re-verified" {
		t.Fatalf("bob got %+v", got)
	}
}
