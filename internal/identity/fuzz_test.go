package identity

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/vectortest"
	"github.com/parleyim/parley/internal/wire"
)

func TestFuzzCorporaNotEmpty(t *testing.T) {
	for _, target := range []string{
		"FuzzParseSignedDeviceList", "FuzzParseDevicePublic", "FuzzUnmarshalDeviceKeys", "FuzzVerifySafetyQR",
	} {
		vectortest.Corpus(t, target)
	}
}

// decodeError fails unless err is one of the decoding errors.
func decodeError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnsupportedVersion) {
		t.Fatalf("unexpected error kind: %v", err)
	}
}

func FuzzParseSignedDeviceList(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{wire.Version})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignedDeviceList(data)
		if err != nil {
			decodeError(t, err)
			return
		}
		if !bytes.Equal(s.Marshal(), data) {
			t.Fatal("re-encoding differs")
		}
		if l, err := s.Verify(nil); err == nil {
			if len(l.Devices) == 0 || len(l.Devices) > MaxDevices {
				t.Fatal("verified list breaks the device limits")
			}
		} else if !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify(nil): %v", err)
		}
		_, _ = s.Verify(s)
		_ = s.Hash()
	})
}

func FuzzParseDevicePublic(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDevicePublic(data)
		if err != nil {
			decodeError(t, err)
			return
		}
		if !bytes.Equal(d.Marshal(), data) {
			t.Fatal("re-encoding differs")
		}
		_ = d.ID().String()
	})
}

func FuzzUnmarshalDeviceKeys(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := UnmarshalDeviceKeys(data)
		if err != nil {
			decodeError(t, err)
			return
		}
		if !bytes.Equal(k.Marshal(), data) {
			t.Fatal("re-encoding differs")
		}
		_ = k.Public().ID()
	})
}

func FuzzVerifySafetyQR(f *testing.F) {
	v := loadVectors(f)
	alice, bob := v.accountKey(f, 0), v.accountKey(f, 1)
	aName, bName := v.Accounts[0].Name, v.Accounts[1].Name
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		err := VerifySafetyQR(data, aName, alice, bName, bob)
		if err != nil {
			if !errors.Is(err, ErrSafetyNumberMismatch) {
				decodeError(t, err)
			}
			return
		}
		if !bytes.Equal(SafetyQR(bName, bob, aName, alice), data) {
			t.Fatal("accepted a payload other than the expected one")
		}
	})
}
