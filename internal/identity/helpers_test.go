package identity

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// entry returns a device-list entry for a fresh device.
func entry(name string) DeviceEntry {
	return DeviceEntry{Device: GenerateDeviceKeys().Public(), Name: name, Added: 1767225600}
}

// sign signs l with k and fails the test on error.
func sign(t testing.TB, k *AccountKey, l *DeviceList) *SignedDeviceList {
	t.Helper()
	s, err := SignDeviceList(k, l)
	if err != nil {
		t.Fatalf("SignDeviceList: %v", err)
	}
	return s
}

// chain signs n consecutive versions of alice's list, each adding a device.
func chain(t testing.TB, k *AccountKey, n int) []*SignedDeviceList {
	t.Helper()
	var out []*SignedDeviceList
	var devs []DeviceEntry
	var prev [32]byte
	for i := range n {
		devs = append(devs, entry("device"))
		s := sign(t, k, &DeviceList{Account: "alice", Version: uint64(i + 1), Prev: prev, Devices: devs})
		prev = s.Hash()
		out = append(out, s)
	}
	return out
}

// forge signs an arbitrary body with the account key, bypassing
// SignDeviceList's checks: what a buggy or malicious client holding the
// account key could publish.
func forge(k *AccountKey, l *DeviceList) []byte {
	body := l.marshalBody()
	s := &SignedDeviceList{body: body, sig: k.k.Sign(primitives.LabelSigDeviceList, body)}
	return s.Marshal()
}

// checkPrefixes fails unless parse accepts enc and rejects every strict
// prefix of it, and enc with a trailing byte, with wire.ErrMalformed.
func checkPrefixes(t *testing.T, enc []byte, parse func([]byte) error) {
	t.Helper()
	if err := parse(enc); err != nil {
		t.Fatalf("valid encoding rejected: %v", err)
	}
	for i := range len(enc) {
		if err := parse(enc[:i]); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("prefix of %d/%d bytes: err = %v, want ErrMalformed", i, len(enc), err)
		}
	}
	if err := parse(append(bytes.Clone(enc), 0)); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("trailing byte: err = %v, want ErrMalformed", err)
	}
	bad := bytes.Clone(enc)
	bad[0] = wire.Version + 1
	if err := parse(bad); !errors.Is(err, wire.ErrUnsupportedVersion) {
		t.Fatalf("version %d: err = %v, want ErrUnsupportedVersion", bad[0], err)
	}
}

// wantSecurity fails unless err matches target and ErrSecurity but not
// wire.ErrMalformed.
func wantSecurity(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
	if !errors.Is(err, ErrSecurity) {
		t.Fatalf("err = %v does not match ErrSecurity", err)
	}
	if errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("err = %v matches wire.ErrMalformed", err)
	}
}
