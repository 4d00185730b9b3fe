package identity

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/parleyim/parley/internal/wire"
)

func TestSignedDeviceListRoundTripAndPrefixes(t *testing.T) {
	k := GenerateAccountKey()
	for _, s := range chain(t, k, 3) {
		enc := s.Marshal()
		p, err := ParseSignedDeviceList(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.Marshal(), enc) || p.Hash() != s.Hash() {
			t.Fatal("round trip changed the encoding")
		}
		checkPrefixes(t, enc, func(b []byte) error { _, err := ParseSignedDeviceList(b); return err })
	}
}

func TestDeviceListBodyRoundTripAndPrefixes(t *testing.T) {
	s := chain(t, GenerateAccountKey(), 2)[1]
	body := s.body
	l, err := parseBody(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(l.marshalBody(), body) {
		t.Fatal("body round trip changed the encoding")
	}
	checkPrefixes(t, body, func(b []byte) error { _, err := parseBody(b); return err })
}

func TestSignDeviceListSortsAndCopies(t *testing.T) {
	k := GenerateAccountKey()
	devs := []DeviceEntry{entry("a"), entry("b"), entry("c"), entry("d")}
	in := &DeviceList{Account: "alice", Version: 1, Devices: slices.Clone(devs)}
	s := sign(t, k, in)
	if in.Key != nil || !slices.Equal(in.Devices, devs) {
		t.Fatal("SignDeviceList modified its argument")
	}
	l, err := s.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Key.Equal(k.Public()) || l.Account != "alice" || l.Version != 1 || len(l.Devices) != 4 {
		t.Fatalf("verified list = %+v", l)
	}
	if !slices.IsSortedFunc(l.Devices, func(a, b DeviceEntry) int {
		x, y := a.Device.ID(), b.Device.ID()
		return bytes.Compare(x[:], y[:])
	}) {
		t.Fatal("devices not sorted by ID")
	}
	for _, d := range devs {
		e, ok := l.Lookup(d.Device.ID())
		if !ok || !e.Device.Equal(d.Device) || e.Name != d.Name || e.Added != d.Added {
			t.Fatalf("Lookup(%v) = %+v, %v", d.Device.ID(), e, ok)
		}
	}
	if _, ok := l.Lookup(GenerateDeviceKeys().Public().ID()); ok {
		t.Fatal("Lookup found a device not in the list")
	}
	// The result is a copy: changing it does not change what s verifies to.
	l.Devices[0].Name = "changed"
	if l2, _ := s.Verify(nil); l2.Devices[0].Name == "changed" {
		t.Fatal("Verify returned shared state")
	}
	if _, err := SignDeviceList(k, &DeviceList{Account: "alice", Key: GenerateAccountKey().Public(), Version: 1, Devices: devs}); err == nil {
		t.Fatal("signed a list naming another account key")
	}
}

// TestDeviceListStructureRejected checks every structural rule of §3.3 both
// ways: SignDeviceList refuses to sign the list, and a list that breaks it
// but was signed anyway (by a buggy or malicious holder of the account key)
// does not parse.
func TestDeviceListStructureRejected(t *testing.T) {
	k := GenerateAccountKey()
	a, b := entry("a"), entry("b")
	sorted := sortPair(a, b)
	many := make([]DeviceEntry, MaxDevices+1)
	for i := range many {
		many[i] = entry("")
	}
	slices.SortFunc(many, func(x, y DeviceEntry) int {
		i, j := x.Device.ID(), y.Device.ID()
		return bytes.Compare(i[:], j[:])
	})
	sameSigning := DeviceEntry{Device: &DevicePublic{Signing: a.Device.Signing, DH: GenerateDeviceKeys().DH.Public()}}
	sameDH := DeviceEntry{Device: &DevicePublic{Signing: GenerateDeviceKeys().Signing.Public(), DH: a.Device.DH}}
	ok := func() *DeviceList {
		return &DeviceList{Account: "alice", Key: k.Public(), Version: 1, Devices: []DeviceEntry{a}}
	}
	cases := []struct {
		name     string
		mut      func(l *DeviceList)
		signable bool // SignDeviceList fixes it (it sorts)
	}{
		{"empty account", func(l *DeviceList) { l.Account = "" }, false},
		{"long account", func(l *DeviceList) { l.Account = strings.Repeat("a", MaxAccountNameSize+1) }, false},
		{"account not UTF-8", func(l *DeviceList) { l.Account = "al\xffce" }, false},
		{"version 0", func(l *DeviceList) { l.Version = 0 }, false},
		{"version 1 with prev", func(l *DeviceList) { l.Prev[0] = 1 }, false},
		{"version 2 without prev", func(l *DeviceList) { l.Version = 2 }, false},
		{"no devices", func(l *DeviceList) { l.Devices = nil }, false},
		{"too many devices", func(l *DeviceList) { l.Devices = many }, false},
		{"long device name", func(l *DeviceList) { l.Devices[0].Name = strings.Repeat("n", MaxDeviceNameSize+1) }, false},
		{"device name not UTF-8", func(l *DeviceList) { l.Devices[0].Name = "\xc3" }, false},
		{"unsorted", func(l *DeviceList) { l.Devices = []DeviceEntry{sorted[1], sorted[0]} }, true},
		{"duplicate device", func(l *DeviceList) { l.Devices = []DeviceEntry{a, a} }, false},
		{"signing key twice", func(l *DeviceList) { l.Devices = sortPair(a, sameSigning) }, false},
		{"X25519 key twice", func(l *DeviceList) { l.Devices = sortPair(a, sameDH) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := ok()
			c.mut(l)
			if _, err := SignDeviceList(k, l); (err == nil) != c.signable {
				t.Fatalf("SignDeviceList: err = %v, signable = %v", err, c.signable)
			}
			_, err := ParseSignedDeviceList(forge(k, l))
			if !errors.Is(err, wire.ErrMalformed) || errors.Is(err, ErrSecurity) {
				t.Fatalf("ParseSignedDeviceList: err = %v, want ErrMalformed only", err)
			}
		})
	}
	if _, err := ParseSignedDeviceList(forge(k, ok())); err != nil {
		t.Fatalf("control case rejected: %v", err)
	}
	// Limits are inclusive.
	l := ok()
	l.Account = strings.Repeat("a", MaxAccountNameSize)
	l.Devices = many[:MaxDevices]
	l.Devices[0].Name = strings.Repeat("n", MaxDeviceNameSize)
	if _, err := ParseSignedDeviceList(sign(t, k, l).Marshal()); err != nil {
		t.Fatalf("list at the limits rejected: %v", err)
	}
}

func TestDeviceListNotSignedByAccountKeyRejected(t *testing.T) {
	alice, mallory := GenerateAccountKey(), GenerateAccountKey()
	genuine := chain(t, alice, 1)[0]

	// The server attaches a device of its own to Alice's list and signs it
	// with its own key while claiming Alice's account key.
	l := genuine.list.clone()
	l.Devices = append(l.Devices, entry("server's device"))
	forged, err := ParseSignedDeviceList(forge(mallory, &DeviceList{
		Account: l.Account, Key: alice.Public(), Version: 1, Devices: sortPair(l.Devices[0], l.Devices[1]),
	}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = forged.Verify(nil)
	wantSecurity(t, err, ErrBadSignature)
	_, err = forged.Verify(genuine)
	wantSecurity(t, err, ErrBadSignature)

	// Flipping any bit of the body or the signature breaks the signature.
	enc := genuine.Marshal()
	for _, i := range []int{10, 4 + 100, len(genuine.body) + 4 - 9, len(enc) - 1, len(enc) - 3373} {
		bad := bytes.Clone(enc)
		bad[i] ^= 1
		s, err := ParseSignedDeviceList(bad)
		if err != nil {
			continue // the flip broke the structure instead, which is also a rejection
		}
		_, err = s.Verify(nil)
		wantSecurity(t, err, ErrBadSignature)
	}
}

func sortPair(x, y DeviceEntry) []DeviceEntry {
	if i, j := x.Device.ID(), y.Device.ID(); bytes.Compare(i[:], j[:]) > 0 {
		return []DeviceEntry{y, x}
	}
	return []DeviceEntry{x, y}
}

func TestOlderDeviceListReplayedRejected(t *testing.T) {
	c := chain(t, GenerateAccountKey(), 3)
	// The client has seen version 3; the server replays version 2 (which
	// lacks a device Alice added since) or version 1.
	for _, old := range c[:2] {
		_, err := old.Verify(c[2])
		wantSecurity(t, err, ErrRollback)
	}
	_, err := VerifyChain(c[2], c[:2])
	wantSecurity(t, err, ErrRollback)
	// Re-fetching the same list is not an error.
	if l, err := c[2].Verify(c[2]); err != nil || l.Version != 3 {
		t.Fatalf("same list: %v, %v", l, err)
	}
}

func TestDeviceListForkRejected(t *testing.T) {
	k := GenerateAccountKey()
	c := chain(t, k, 2)
	// A second, different version 2 (also properly chained to version 1):
	// the log shows different clients different lists.
	other := sign(t, k, &DeviceList{Account: "alice", Version: 2, Prev: c[0].Hash(), Devices: []DeviceEntry{entry("x")}})
	if _, err := other.Verify(c[0]); err != nil {
		t.Fatalf("fork alone should verify against version 1: %v", err)
	}
	_, err := other.Verify(c[1])
	wantSecurity(t, err, ErrRollback)
}

func TestDeviceListChainBreakRejected(t *testing.T) {
	k := GenerateAccountKey()
	c := chain(t, k, 2)
	// Version 2 whose Prev is not version 1's hash: it follows a version 1
	// this client never saw, e.g. one the server showed other clients.
	hidden := chain(t, k, 1)[0]
	broken := sign(t, k, &DeviceList{Account: "alice", Version: 2, Prev: hidden.Hash(), Devices: c[1].list.Devices})
	_, err := broken.Verify(c[0])
	wantSecurity(t, err, ErrBrokenChain)
	_, err = VerifyChain(nil, []*SignedDeviceList{c[0], broken})
	wantSecurity(t, err, ErrBrokenChain)
	if _, err := c[1].Verify(c[0]); err != nil {
		t.Fatalf("genuine chain rejected: %v", err)
	}
}

func TestDeviceListAccountKeySwapRejected(t *testing.T) {
	alice, mallory := GenerateAccountKey(), GenerateAccountKey()
	c := chain(t, alice, 1)
	// The server replaces Alice's account key with its own and publishes a
	// properly signed, properly chained version 2 with its own device.
	swapped := sign(t, mallory, &DeviceList{Account: "alice", Version: 2, Prev: c[0].Hash(), Devices: []DeviceEntry{entry("server's device")}})
	if _, err := swapped.Verify(nil); err != nil {
		t.Fatalf("self-signed list should pass TOFU: %v", err)
	}
	_, err := swapped.Verify(c[0])
	wantSecurity(t, err, ErrAccountKeyChanged)
}

func TestDeviceListAccountMismatchRejected(t *testing.T) {
	k := GenerateAccountKey()
	c := chain(t, k, 1)
	// Bob's list (even under the same key) is served for Alice.
	bob := sign(t, k, &DeviceList{Account: "bob", Version: 2, Prev: c[0].Hash(), Devices: []DeviceEntry{entry("x")}})
	_, err := bob.Verify(c[0])
	wantSecurity(t, err, ErrAccountMismatch)
}

func TestDeviceListDuplicateDeviceRejected(t *testing.T) {
	k := GenerateAccountKey()
	a := entry("phone")
	// Listing one device twice (say with two names) would make clients
	// disagree on which entry is meant; neither signing nor parsing allows it.
	dup := a
	dup.Name = "phone (again)"
	l := &DeviceList{Account: "alice", Key: k.Public(), Version: 1, Devices: []DeviceEntry{a, dup}}
	if _, err := SignDeviceList(k, l); err == nil {
		t.Fatal("SignDeviceList signed a list with a duplicate device")
	}
	_, err := ParseSignedDeviceList(forge(k, l))
	if !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
}

func TestDeviceListGap(t *testing.T) {
	c := chain(t, GenerateAccountKey(), 4)
	_, err := c[3].Verify(c[0])
	var gap *GapError
	if !errors.As(err, &gap) || gap.Have != 1 || gap.Got != 4 {
		t.Fatalf("err = %v, want GapError{1, 4}", err)
	}
	if errors.Is(err, ErrSecurity) {
		t.Fatal("a gap is not a security error")
	}
	l, err := VerifyChain(c[0], c[1:])
	if err != nil || l.Version != 4 || len(l.Devices) != 4 {
		t.Fatalf("VerifyChain = %v, %v", l, err)
	}
	// A run with a hole in it is reported as the gap.
	_, err = VerifyChain(c[0], []*SignedDeviceList{c[1], c[3]})
	if !errors.As(err, &gap) || gap.Have != 2 || gap.Got != 4 {
		t.Fatalf("err = %v, want GapError{2, 4}", err)
	}
	// First sight of an account: the first list is trusted, the rest chain.
	if l, err := VerifyChain(nil, c); err != nil || l.Version != 4 {
		t.Fatalf("VerifyChain(nil) = %v, %v", l, err)
	}
	if _, err := VerifyChain(c[0], nil); err == nil {
		t.Fatal("empty chain accepted")
	}
}
