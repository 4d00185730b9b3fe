package identity

import (
	"bytes"
	"errors"
	"regexp"
	"testing"

	"github.com/parleyim/parley/internal/wire"
)

var safetyNumberFormat = regexp.MustCompile(`^[0-9]{5}( [0-9]{5}){11}$`)

func TestSafetyNumberFormatAndOrderIndependence(t *testing.T) {
	a, b := GenerateAccountKey().Public(), GenerateAccountKey().Public()
	n := SafetyNumber("alice", a, "bob", b)
	if !safetyNumberFormat.MatchString(n) {
		t.Fatalf("SafetyNumber = %q, want 12 groups of 5 digits", n)
	}
	if m := SafetyNumber("bob", b, "alice", a); m != n {
		t.Fatalf("order matters: %q vs %q", n, m)
	}
	if SafetyNumber("alice", a, "bob", b) != n {
		t.Fatal("not stable")
	}
	if !bytes.Equal(SafetyQR("alice", a, "bob", b), SafetyQR("bob", b, "alice", a)) {
		t.Fatal("QR payload depends on the order")
	}
}

func TestSafetyNumberDiffersOnNameOrKey(t *testing.T) {
	a, b, c := GenerateAccountKey().Public(), GenerateAccountKey().Public(), GenerateAccountKey().Public()
	n := SafetyNumber("alice", a, "bob", b)
	for _, other := range []string{
		SafetyNumber("alice", a, "bobby", b),
		SafetyNumber("alicia", a, "bob", b),
		SafetyNumber("alice", a, "bob", c),
		SafetyNumber("alice", c, "bob", b),
		// Swapping which name goes with which key is a different pairing.
		SafetyNumber("bob", a, "alice", b),
	} {
		if other == n {
			t.Fatalf("different inputs give the same number %q", n)
		}
	}
}

func TestSafetyNumberDiffersOnKeySubstitution(t *testing.T) {
	alice, bob := GenerateAccountKey().Public(), GenerateAccountKey().Public()
	// The server gives Alice its own key for Bob, and Bob its own key for
	// Alice, and relays between them. Each pair sees a consistent session,
	// but the numbers their screens show differ.
	mAsBob, mAsAlice := GenerateAccountKey().Public(), GenerateAccountKey().Public()
	onAlice := SafetyNumber("alice", alice, "bob", mAsBob)
	onBob := SafetyNumber("bob", bob, "alice", mAsAlice)
	if onAlice == onBob {
		t.Fatal("substituted keys give the same safety number")
	}
	// Substituting only one side is enough to change the number.
	if SafetyNumber("alice", alice, "bob", mAsBob) == SafetyNumber("bob", bob, "alice", alice) {
		t.Fatal("substituting Bob's key does not change the number")
	}
}

func TestSafetyQRMismatchRejected(t *testing.T) {
	alice, bob, mallory := GenerateAccountKey().Public(), GenerateAccountKey().Public(), GenerateAccountKey().Public()
	// Bob's phone, seeing the genuine keys, shows its QR code.
	shown := SafetyQR("bob", bob, "alice", alice)
	if err := VerifySafetyQR(shown, "alice", alice, "bob", bob); err != nil {
		t.Fatalf("genuine QR rejected: %v", err)
	}
	// Alice's phone was given Mallory's key for Bob.
	err := VerifySafetyQR(shown, "alice", alice, "bob", mallory)
	wantSecurity(t, err, ErrSafetyNumberMismatch)
	// Bob's phone was given Mallory's key for Alice.
	err = VerifySafetyQR(SafetyQR("bob", bob, "alice", mallory), "alice", alice, "bob", bob)
	wantSecurity(t, err, ErrSafetyNumberMismatch)
	// Same keys under another name.
	err = VerifySafetyQR(shown, "alice", alice, "bobby", bob)
	wantSecurity(t, err, ErrSafetyNumberMismatch)
}

func TestSafetyQRPrefixes(t *testing.T) {
	a, b := GenerateAccountKey().Public(), GenerateAccountKey().Public()
	qr := SafetyQR("alice", a, "bob", b)
	if len(qr) != SafetyQRSize || qr[0] != wire.Version {
		t.Fatalf("QR payload = %x", qr)
	}
	if bytes.Compare(qr[1:33], qr[33:]) > 0 {
		t.Fatal("fingerprints not sorted")
	}
	checkPrefixes(t, qr, func(p []byte) error { return VerifySafetyQR(p, "alice", a, "bob", b) })
	if err := VerifySafetyQR(nil, "alice", a, "bob", b); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("nil: err = %v", err)
	}
}

func BenchmarkSafetyNumber(b *testing.B) {
	x, y := GenerateAccountKey().Public(), GenerateAccountKey().Public()
	for b.Loop() {
		SafetyNumber("alice", x, "bob", y)
	}
}
