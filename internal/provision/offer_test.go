package provision

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

func TestOfferRoundTripAndPrefixes(t *testing.T) {
	for _, name := range []string{"", "phone", strings.Repeat("é", identity.MaxDeviceNameSize/2)} {
		o, sec, err := NewOffer(identity.GenerateDeviceKeys().Public(), name, t0)
		if err != nil {
			t.Fatal(err)
		}
		if sec.Offer() != o {
			t.Fatal("secret does not hold its offer")
		}
		enc := o.Marshal()
		if want := 1 + HPKEPublicKeySize + 2 + identity.DevicePublicSize + 1 + len(name) + 8 + 1; len(enc) != want {
			t.Fatalf("offer is %d bytes, want %d", len(enc), want)
		}
		p, err := ParseOffer(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Marshal(), enc) || p.Address() != o.Address() || p.Name() != name ||
			!p.Created().Equal(t0) || !p.Device().Equal(o.Device()) {
			t.Fatal("round trip changed the offer")
		}
		checkPrefixes(t, enc, func(b []byte) error { _, err := ParseOffer(b); return err })
		if _, err := ParseOffer(append(bytes.Clone(enc), 0)); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("trailing byte: %v", err)
		}
	}
}

func TestOfferRejectsBadFields(t *testing.T) {
	o, _, err := NewOffer(identity.GenerateDeviceKeys().Public(), "phone", t0)
	if err != nil {
		t.Fatal(err)
	}
	enc := o.Marshal()
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(enc)) }
	nameAt := 1 + HPKEPublicKeySize + 2 + identity.DevicePublicSize
	for what, b := range map[string][]byte{
		"version 2":           mod(func(b []byte) []byte { b[0] = 2; return b }),
		"HPKE key not ML-KEM": mod(func(b []byte) []byte { copy(b[1:], bytes.Repeat([]byte{0xff}, 4)); return b }),
		"device length":       mod(func(b []byte) []byte { b[1+HPKEPublicKeySize+1]--; return b }),
		"device version":      mod(func(b []byte) []byte { b[1+HPKEPublicKeySize+2] = 9; return b }),
		"name not UTF-8":      mod(func(b []byte) []byte { b[nameAt+1] = 0xff; return b }),
		"created > MaxInt64":  mod(func(b []byte) []byte { b[len(b)-9] = 0x80; return b }),
		"unknown flags":       mod(func(b []byte) []byte { b[len(b)-1] = 0x02; return b }),
		"prekeys missing":     mod(func(b []byte) []byte { b[len(b)-1] = offerHasPrekeys; return b }),
	} {
		_, err := ParseOffer(b)
		if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnsupportedVersion) {
			t.Errorf("%s: err = %v", what, err)
		}
	}
	if _, _, err := NewOffer(identity.GenerateDeviceKeys().Public(), strings.Repeat("x", identity.MaxDeviceNameSize+1), t0); err == nil {
		t.Error("NewOffer accepted a name over MaxDeviceNameSize")
	}
	if _, _, err := NewOffer(identity.GenerateDeviceKeys().Public(), "\xff", t0); err == nil {
		t.Error("NewOffer accepted a name that is not UTF-8")
	}
}

// TestSubstitutedOfferRejected: the server answers the mailbox with an
// offer of its own (its HPKE key, so it could read the transfer; or its own
// device key, so the account would add its device). The address the person
// typed commits to N's offer, so E refuses either.
func TestSubstitutedOfferRejected(t *testing.T) {
	f := newFixture(t, 0, 0, 0)
	addr := f.offer.Address()
	if _, err := VerifyOffer(addr, f.offer.Marshal(), MaxOfferAge, t0); err != nil {
		t.Fatalf("genuine offer: %v", err)
	}
	// The server's own offer for N's device: a different HPKE key.
	evilKey, _, err := NewOffer(f.n.Public(), "phone", t0)
	if err != nil {
		t.Fatal(err)
	}
	// N's HPKE key spliced with the server's device keys.
	evilDev := &Offer{key: f.offer.key, device: identity.GenerateDeviceKeys().Public(), name: "phone", created: t0}
	evilDev.raw = evilDev.encode()
	// N's offer with another name or time.
	renamed := &Offer{key: f.offer.key, device: f.offer.device, name: "phone2", created: t0}
	renamed.raw = renamed.encode()
	for what, b := range map[string][]byte{
		"substituted HPKE key":   evilKey.Marshal(),
		"substituted device key": evilDev.Marshal(),
		"renamed":                renamed.Marshal(),
		"garbage":                []byte("not an offer"),
		"empty":                  nil,
	} {
		o, err := VerifyOffer(addr, b, MaxOfferAge, t0)
		if o != nil || !errors.Is(err, ErrAddressMismatch) || !errors.Is(err, ErrSecurity) || !errors.Is(err, identity.ErrSecurity) {
			t.Errorf("%s: VerifyOffer = %v, %v; want ErrAddressMismatch", what, o, err)
		}
	}
}

// TestStaleOfferRejected: an offer older than maxAge (a code photographed
// yesterday, a mailbox replayed) or from the future is refused.
func TestStaleOfferRejected(t *testing.T) {
	f := newFixture(t, 0, 0, 0)
	addr, enc := f.offer.Address(), f.offer.Marshal()
	for _, c := range []struct {
		now time.Time
		ok  bool
	}{
		{t0, true},
		{t0.Add(MaxOfferAge), true},
		{t0.Add(MaxOfferAge + time.Second), false},
		{t0.Add(24 * time.Hour), false},
		{t0.Add(-MaxClockSkew), true},
		{t0.Add(-MaxClockSkew - time.Second), false},
	} {
		_, err := VerifyOffer(addr, enc, MaxOfferAge, c.now)
		if c.ok && err != nil {
			t.Errorf("now = t0%+v: %v", c.now.Sub(t0), err)
		}
		if !c.ok && (!errors.Is(err, ErrStaleOffer) || errors.Is(err, ErrSecurity)) {
			t.Errorf("now = t0%+v: err = %v, want ErrStaleOffer", c.now.Sub(t0), err)
		}
	}
	if _, err := VerifyOffer(addr, enc, time.Minute, t0.Add(2*time.Minute)); !errors.Is(err, ErrStaleOffer) {
		t.Errorf("maxAge is ignored: %v", err)
	}
}

// TestWrongConfirmationDiffers: the confirmation string is what the
// person compares between the screens; an offer someone else made (for
// another device, or another key for the same device) shows another string.
func TestWrongConfirmationDiffers(t *testing.T) {
	dev := identity.GenerateDeviceKeys().Public()
	o, _, err := NewOffer(dev, "phone", t0)
	if err != nil {
		t.Fatal(err)
	}
	c := o.Confirmation()
	if !regexp.MustCompile(`^\d{4} \d{4} \d{4} \d{4}$`).MatchString(c) {
		t.Fatalf("confirmation %q is not four groups of four digits", c)
	}
	p, _ := ParseOffer(o.Marshal())
	if p.Confirmation() != c {
		t.Fatal("the same offer gives another confirmation on the other device")
	}
	seen := map[string]bool{c: true}
	for range 20 {
		other, _, err := NewOffer(dev, "phone", t0)
		if err != nil {
			t.Fatal(err)
		}
		oc := other.Confirmation()
		if seen[oc] {
			t.Fatalf("two offers share the confirmation %q", oc)
		}
		seen[oc] = true
	}
	other, _, _ := NewOffer(identity.GenerateDeviceKeys().Public(), "phone", t0)
	if other.Confirmation() == c {
		t.Fatal("another device's offer shows the same confirmation")
	}
	// The construction, recomputed from the spec.
	a := o.Address()
	h := primitives.Hash(primitives.LabelProvisioningConfirmation, a[:], o.Marshal())
	ah := primitives.Hash(primitives.LabelProvisioningAddress, o.Marshal())
	if !bytes.Equal(a[:], ah[:AddressSize]) {
		t.Fatal("address is not H(label, offer)[:16]")
	}
	var n uint64
	for _, b := range h[:8] {
		n = n<<8 | uint64(b)
	}
	digits := strings.ReplaceAll(c, " ", "")
	want := n % 1e16
	var got uint64
	for _, d := range digits {
		got = got*10 + uint64(d-'0')
	}
	if got != want {
		t.Fatalf("confirmation %s, want %016d", digits, want)
	}
}

// TestOfferWithPrekeys: an offer can carry the new device's signed and
// last-resort prekeys; they round-trip, are bound into the address, and a
// prekey not signed by the offer's device is refused (someone else's
// prekeys would make the new device unreachable, or reachable by them).
func TestOfferWithPrekeys(t *testing.T) {
	dev := identity.GenerateDeviceKeys()
	set, up, err := prekey.NewSet(dev.Signing, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = set
	o, _, err := NewOfferWithPrekeys(dev.Public(), "phone", t0, up.Signed, up.LastResort)
	if err != nil {
		t.Fatal(err)
	}
	enc := o.Marshal()
	p, err := ParseOffer(enc)
	if err != nil {
		t.Fatal(err)
	}
	signed, lr := p.Prekeys()
	if signed == nil || lr == nil || signed.ID != up.Signed.ID || lr.ID != up.LastResort.ID || !bytes.Equal(p.Marshal(), enc) {
		t.Fatal("prekeys did not round-trip")
	}
	checkPrefixes(t, enc, func(b []byte) error { _, err := ParseOffer(b); return err })
	plain, _, _ := NewOffer(dev.Public(), "phone", t0)
	if s, l := plain.Prekeys(); s != nil || l != nil {
		t.Fatal("an offer without prekeys has some")
	}

	other := identity.GenerateDeviceKeys()
	_, foreign, err := prekey.NewSet(other.Signing, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewOfferWithPrekeys(dev.Public(), "phone", t0, foreign.Signed, up.LastResort); !errors.Is(err, ErrSecurity) {
		t.Fatalf("another device's signed prekey: %v, want ErrSecurity", err)
	}
	// Forged on the wire: the same offer with another device's last-resort
	// prekey spliced in does not parse.
	forged, _, _ := newOffer(dev.Public(), "phone", t0, up.Signed, foreign.LastResort)
	if _, err := ParseOffer(forged.Marshal()); !errors.Is(err, ErrSecurity) {
		t.Fatalf("spliced prekey: %v, want ErrSecurity", err)
	}
}
