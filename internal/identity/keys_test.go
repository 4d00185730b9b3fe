package identity

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

func TestAccountKeySeedRoundTrip(t *testing.T) {
	k := GenerateAccountKey()
	k2, err := NewAccountKey(k.Seed())
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().Equal(k.Public()) {
		t.Fatal("key from seed has a different public key")
	}
	if GenerateAccountKey().Public().Equal(k.Public()) {
		t.Fatal("two generated keys are equal")
	}
	if _, err := NewAccountKey(k.Seed()[1:]); err == nil {
		t.Fatal("short seed accepted")
	}
}

func TestAccountPublicKeyRoundTrip(t *testing.T) {
	p := GenerateAccountKey().Public()
	b := p.Bytes()
	if len(b) != AccountKeySize {
		t.Fatalf("len = %d, want %d", len(b), AccountKeySize)
	}
	q, err := ParseAccountPublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Equal(p) || !bytes.Equal(q.Bytes(), b) || q.Fingerprint() != p.Fingerprint() {
		t.Fatal("round trip changed the key")
	}
	for _, n := range []int{0, 1, AccountKeySize - 1} {
		if _, err := ParseAccountPublicKey(b[:n]); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("%d bytes: err = %v, want ErrMalformed", n, err)
		}
	}
	if _, err := ParseAccountPublicKey(append(b, 0)); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("trailing byte: err = %v", err)
	}
	if p.Fingerprint() != primitives.Hash(primitives.LabelAccountFingerprint, b) {
		t.Fatal("fingerprint is not Hash(LabelAccountFingerprint, bytes)")
	}
	if p.Equal(nil) || (*AccountPublicKey)(nil).Equal(p) {
		t.Fatal("Equal(nil) is true")
	}
}

func TestDevicePublicRoundTripAndPrefixes(t *testing.T) {
	d := GenerateDeviceKeys().Public()
	enc := d.Marshal()
	if len(enc) != DevicePublicSize {
		t.Fatalf("len = %d, want %d", len(enc), DevicePublicSize)
	}
	d2, err := ParseDevicePublic(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !d2.Equal(d) || !bytes.Equal(d2.Marshal(), enc) {
		t.Fatal("round trip changed the keys")
	}
	checkPrefixes(t, enc, func(b []byte) error { _, err := ParseDevicePublic(b); return err })
}

func TestDeviceKeysRoundTripAndPrefixes(t *testing.T) {
	k := GenerateDeviceKeys()
	enc := k.Marshal()
	if len(enc) != DeviceKeysSize {
		t.Fatalf("len = %d, want %d", len(enc), DeviceKeysSize)
	}
	k2, err := UnmarshalDeviceKeys(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().Equal(k.Public()) || !bytes.Equal(k2.Marshal(), enc) {
		t.Fatal("round trip changed the keys")
	}
	checkPrefixes(t, enc, func(b []byte) error { _, err := UnmarshalDeviceKeys(b); return err })
}

func TestDeviceFingerprintAndID(t *testing.T) {
	d := GenerateDeviceKeys().Public()
	fp := d.Fingerprint()
	if fp != primitives.Hash(primitives.LabelDeviceFingerprint, d.Signing.Bytes(), d.DH.Bytes()) {
		t.Fatal("fingerprint is not Hash(LabelDeviceFingerprint, signing, dh)")
	}
	id := d.ID()
	if !bytes.Equal(id[:], fp[:DeviceIDSize]) {
		t.Fatal("ID is not the fingerprint's prefix")
	}
	// Changing either key changes the fingerprint.
	e := GenerateDeviceKeys().Public()
	if (&DevicePublic{Signing: d.Signing, DH: e.DH}).ID() == id || (&DevicePublic{Signing: e.Signing, DH: d.DH}).ID() == id {
		t.Fatal("ID does not depend on both keys")
	}
	if (&DevicePublic{Signing: d.Signing, DH: e.DH}).Equal(d) || d.Equal(nil) {
		t.Fatal("Equal true for different keys")
	}
}

func TestDeviceIDString(t *testing.T) {
	id := GenerateDeviceKeys().Public().ID()
	s := id.String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q", s)
	}
	got, err := ParseDeviceID(s)
	if err != nil || got != id {
		t.Fatalf("ParseDeviceID(%q) = %v, %v", s, got, err)
	}
	for _, bad := range []string{"", s[:31], s + "0", strings.ToUpper(s), "zz" + s[2:], " " + s[1:]} {
		if bad == s {
			continue
		}
		if _, err := ParseDeviceID(bad); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("ParseDeviceID(%q): err = %v, want ErrMalformed", bad, err)
		}
	}
}
