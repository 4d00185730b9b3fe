package ratchet

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/primitives"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newPair returns an initiator and a responder sharing a fresh secret.
func newPair(t testing.TB, ha, hb *testHooks) (a, b *State) {
	t.Helper()
	var sk [32]byte
	primitives.Random(sk[:])
	ad := make([]byte, 64)
	primitives.Random(ad)
	spk := primitives.GenerateX25519()
	a, err := newInitiator(&sk, ad, spk.Public(), t0, ha)
	if err != nil {
		t.Fatal(err)
	}
	return a, newResponder(&sk, ad, spk, t0, hb)
}

func mustEncrypt(t testing.TB, s *State, pt string) []byte {
	t.Helper()
	m, err := s.Encrypt([]byte(pt), t0)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return m
}

func mustDecrypt(t testing.TB, s *State, m []byte, want string) {
	t.Helper()
	pt, err := s.Decrypt(m, t0)
	if err != nil {
		t.Fatalf("Decrypt(%q): %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("Decrypt = %q, want %q", pt, want)
	}
}

// decryptFails checks that Decrypt fails with want and leaves the state
// exactly unchanged.
func decryptFails(t testing.TB, s *State, m []byte, want error) {
	t.Helper()
	before := s.Marshal()
	pt, err := s.Decrypt(m, t0)
	if err == nil {
		t.Fatalf("Decrypt succeeded (%q), want %v", pt, want)
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("Decrypt error = %v, want %v", err, want)
	}
	if !bytes.Equal(before, s.Marshal()) {
		t.Fatalf("Decrypt failed with %v but changed the state", err)
	}
}

// clone returns an independent copy of s through Marshal/Unmarshal, with
// hooks h.
func clone(t testing.TB, s *State, h *testHooks) *State {
	t.Helper()
	c, err := Unmarshal(s.Marshal())
	if err != nil {
		t.Fatalf("Unmarshal(Marshal()): %v", err)
	}
	c.hooks = h
	return c
}

func msg(i int) string { return fmt.Sprintf("message %d", i) }
