package provision

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/vectortest"
)

func TestShareRoundTrip(t *testing.T) {
	f := newFixture(t, 0, 0, 0)
	share := []byte("a backup.Share encoding")
	frame, err := SealShare(f.offer, "alice", share)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.secret.OpenShare("alice", frame)
	if err != nil || !bytes.Equal(got, share) {
		t.Fatalf("OpenShare = %q, %v", got, err)
	}
}

// TestShareForAnotherAccountRefused: a share sealed while helping one
// account does not open as a share of another, so a contact tricked into
// helping "alice" cannot be replayed to recover "bob".
func TestShareForAnotherAccountRefused(t *testing.T) {
	f := newFixture(t, 0, 0, 0)
	frame, err := SealShare(f.offer, "alice", []byte("share"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.secret.OpenShare("bob", frame); !errors.Is(err, ErrShareFrame) {
		t.Fatalf("OpenShare as bob: %v, want ErrShareFrame", err)
	}
}

// TestShareForAnotherOfferRefused: a share sealed to one recovering
// device's offer opens for no other device.
func TestShareForAnotherOfferRefused(t *testing.T) {
	f, g := newFixture(t, 0, 0, 0), newFixture(t, 0, 0, 0)
	frame, err := SealShare(f.offer, "alice", []byte("share"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.secret.OpenShare("alice", frame); !errors.Is(err, ErrShareFrame) {
		t.Fatalf("OpenShare by another offer: %v, want ErrShareFrame", err)
	}
}

func TestShareTamperedRefused(t *testing.T) {
	f := newFixture(t, 0, 0, 0)
	frame, err := SealShare(f.offer, "alice", []byte("share"))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 500, len(frame) - 20, len(frame) - 1} {
		bad := bytes.Clone(frame)
		bad[i] ^= 1
		if _, err := f.secret.OpenShare("alice", bad); !errors.Is(err, ErrShareFrame) {
			t.Errorf("byte %d flipped: %v, want ErrShareFrame", i, err)
		}
	}
	for _, n := range []int{0, 1, len(frame) - 1} {
		if _, err := f.secret.OpenShare("alice", frame[:n]); !errors.Is(err, ErrShareFrame) {
			t.Errorf("truncated to %d: %v, want ErrShareFrame", n, err)
		}
	}
	if _, err := SealShare(f.offer, "alice", nil); err == nil {
		t.Error("an empty share was sealed")
	}
	if _, err := SealShare(f.offer, "alice", make([]byte, MaxShareSize+1)); err == nil {
		t.Error("a share over MaxShareSize was sealed")
	}
}

func TestShareVector(t *testing.T) {
	v := loadVectors(t)
	if v.ShareFrame == "" {
		t.Fatal("no share frame in the provision vectors")
	}
	_, secret := vectorReceiver(t, v)
	got, err := secret.OpenShare(v.Username, vectortest.Hex(t, v.ShareFrame))
	if err != nil || !bytes.Equal(got, vectortest.Hex(t, v.Share)) {
		t.Fatalf("vector share frame opens to %x, %v", got, err)
	}
}

func FuzzOpenShare(f *testing.F) {
	vectortest.Corpus(f, "FuzzOpenShare")
	fx := newFixture(f, 0, 0, 0)
	f.Fuzz(func(t *testing.T, frame []byte) {
		share, err := fx.secret.OpenShare("alice", frame)
		if err == nil && len(share) == 0 {
			t.Fatal("an empty share opened")
		}
		if err != nil && !errors.Is(err, ErrShareFrame) {
			t.Fatalf("untyped error: %v", err)
		}
	})
}

func TestOpenShareFuzzCorpus(t *testing.T) { vectortest.Corpus(t, "FuzzOpenShare") }
