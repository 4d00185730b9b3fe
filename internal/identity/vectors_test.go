package identity

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/vectortest"
)

// vectors mirrors internal/cmd/vectorgen/identity.go's identityVectors.
type vectors struct {
	Comment  string `json:"comment"`
	Accounts []struct {
		Name        string `json:"name"`
		Seed        string `json:"seed"`
		Public      string `json:"public"`
		Fingerprint string `json:"fingerprint"`
	} `json:"accounts"`
	Devices []struct {
		Keys        string `json:"keys"`
		Public      string `json:"public"`
		Fingerprint string `json:"fingerprint"`
		ID          string `json:"id"`
	} `json:"devices"`
	Lists []struct {
		Version uint64 `json:"version"`
		Signed  string `json:"signed"`
		Hash    string `json:"hash"`
	} `json:"lists"`
	Safety []struct {
		A      int    `json:"a"`
		AName  string `json:"a_name"`
		B      int    `json:"b"`
		BName  string `json:"b_name"`
		Number string `json:"number"`
		QR     string `json:"qr"`
	} `json:"safety"`
}

func loadVectors(t testing.TB) *vectors {
	var v vectors
	vectortest.Load(t, "identity", &v)
	if len(v.Accounts) < 2 || len(v.Devices) < 3 || len(v.Lists) != 3 || len(v.Safety) == 0 {
		t.Fatal("identity.json is incomplete; regenerate with go run ./internal/cmd/vectorgen")
	}
	return &v
}

func (v *vectors) accountKey(t testing.TB, i int) *AccountPublicKey {
	p, err := ParseAccountPublicKey(vectortest.Hex(t, v.Accounts[i].Public))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// TestVectors replays testdata/vectors/identity.json: every committed
// encoding parses and re-encodes, every fingerprint, ID, hash and safety
// number is recomputed exactly, and the committed chain verifies.
func TestVectors(t *testing.T) {
	v := loadVectors(t)
	for i, a := range v.Accounts {
		k, err := NewAccountKey(vectortest.Hex(t, a.Seed))
		if err != nil {
			t.Fatal(err)
		}
		p := v.accountKey(t, i)
		fp := p.Fingerprint()
		if !k.Public().Equal(p) || hexOf(p.Bytes()) != a.Public || hexOf(fp[:]) != a.Fingerprint {
			t.Errorf("account %d (%s): keys or fingerprint differ", i, a.Name)
		}
	}
	for i, d := range v.Devices {
		k, err := UnmarshalDeviceKeys(vectortest.Hex(t, d.Keys))
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseDevicePublic(vectortest.Hex(t, d.Public))
		if err != nil {
			t.Fatal(err)
		}
		fp, id := p.Fingerprint(), p.ID()
		if hexOf(k.Marshal()) != d.Keys || hexOf(p.Marshal()) != d.Public || !k.Public().Equal(p) ||
			hexOf(fp[:]) != d.Fingerprint || id.String() != d.ID {
			t.Errorf("device %d: keys, fingerprint or ID differ", i)
		}
	}
	var prev *SignedDeviceList
	for i, lv := range v.Lists {
		enc := vectortest.Hex(t, lv.Signed)
		s, err := ParseSignedDeviceList(enc)
		if err != nil {
			t.Fatalf("list %d: %v", i, err)
		}
		h := s.Hash()
		if !bytes.Equal(s.Marshal(), enc) || hexOf(h[:]) != lv.Hash {
			t.Errorf("list %d: encoding or hash differs", i)
		}
		l, err := s.Verify(prev)
		if err != nil {
			t.Fatalf("list %d: %v", i, err)
		}
		if l.Version != lv.Version || l.Account != v.Accounts[0].Name || !l.Key.Equal(v.accountKey(t, 0)) {
			t.Errorf("list %d: content differs", i)
		}
		prev = s
	}
	for i, sv := range v.Safety {
		a, b := v.accountKey(t, sv.A), v.accountKey(t, sv.B)
		if n := SafetyNumber(sv.AName, a, sv.BName, b); n != sv.Number {
			t.Errorf("safety %d: number = %q, want %q", i, n, sv.Number)
		}
		qr := vectortest.Hex(t, sv.QR)
		if got := SafetyQR(sv.AName, a, sv.BName, b); !bytes.Equal(got, qr) {
			t.Errorf("safety %d: QR = %x, want %x", i, got, qr)
		}
		if err := VerifySafetyQR(qr, sv.BName, b, sv.AName, a); err != nil {
			t.Errorf("safety %d: %v", i, err)
		}
	}
}

// TestVectorsRegenerate repeats the generator's recipe
// (internal/cmd/vectorgen/identity.go) under the same deterministic entropy
// and checks that every byte comes out the same: key generation and signing
// are reproducible and nothing in the encodings drifted.
func TestVectorsRegenerate(t *testing.T) {
	v := loadVectors(t)
	restore := primitives.UnsafeDeterministicEntropy("parley vectors identity")
	defer restore()

	var got vectors
	got.Comment = v.Comment
	names := []string{"alice", "bob"}
	accounts := []*AccountKey{GenerateAccountKey(), GenerateAccountKey()}
	for i, k := range accounts {
		fp := k.Public().Fingerprint()
		got.Accounts = append(got.Accounts, struct {
			Name        string `json:"name"`
			Seed        string `json:"seed"`
			Public      string `json:"public"`
			Fingerprint string `json:"fingerprint"`
		}{names[i], hexOf(k.Seed()), hexOf(k.Public().Bytes()), hexOf(fp[:])})
	}
	var devs []*DevicePublic
	for range 3 {
		k := GenerateDeviceKeys()
		d := k.Public()
		fp, id := d.Fingerprint(), d.ID()
		got.Devices = append(got.Devices, struct {
			Keys        string `json:"keys"`
			Public      string `json:"public"`
			Fingerprint string `json:"fingerprint"`
			ID          string `json:"id"`
		}{hexOf(k.Marshal()), hexOf(d.Marshal()), hexOf(fp[:]), id.String()})
		devs = append(devs, d)
	}
	laptop := DeviceEntry{Device: devs[0], Name: "laptop", Added: 1767225600}
	phone := DeviceEntry{Device: devs[1], Name: "phone", Added: 1767229200}
	tablet := DeviceEntry{Device: devs[2], Name: "tablet ✓", Added: 1767232800}
	var prev [32]byte
	for i, ds := range [][]DeviceEntry{{laptop}, {laptop, phone}, {phone, tablet}} {
		s := sign(t, accounts[0], &DeviceList{Account: names[0], Key: accounts[0].Public(), Version: uint64(i + 1), Prev: prev, Devices: ds})
		prev = s.Hash()
		got.Lists = append(got.Lists, struct {
			Version uint64 `json:"version"`
			Signed  string `json:"signed"`
			Hash    string `json:"hash"`
		}{uint64(i + 1), hexOf(s.Marshal()), hexOf(prev[:])})
	}
	for _, sv := range v.Safety {
		a, b := accounts[sv.A].Public(), accounts[sv.B].Public()
		sv.Number = SafetyNumber(sv.AName, a, sv.BName, b)
		sv.QR = hexOf(SafetyQR(sv.AName, a, sv.BName, b))
		got.Safety = append(got.Safety, sv)
	}
	if !reflect.DeepEqual(&got, v) {
		t.Fatal("regenerated vectors differ from testdata/vectors/identity.json")
	}
}
