package main

import (
	"encoding/hex"

	"github.com/parleyim/parley/internal/identity"
)

// identityVectors is testdata/vectors/identity.json, replayed by
// internal/identity's TestVectors. The recipe (the order of key generations
// and signatures under the deterministic entropy) is repeated there, so that
// the test can regenerate every byte: change both together.
type identityVectors struct {
	Comment  string                 `json:"comment"`
	Accounts []identityAccountVec   `json:"accounts"`
	Devices  []identityDeviceVec    `json:"devices"`
	Lists    []identityListVec      `json:"lists"`
	Safety   []identitySafetyVector `json:"safety"`
}

type identityAccountVec struct {
	Name        string `json:"name"`
	Seed        string `json:"seed"`
	Public      string `json:"public"`
	Fingerprint string `json:"fingerprint"`
}

type identityDeviceVec struct {
	Keys        string `json:"keys"`
	Public      string `json:"public"`
	Fingerprint string `json:"fingerprint"`
	ID          string `json:"id"`
}

type identityListVec struct {
	Version uint64 `json:"version"`
	Signed  string `json:"signed"`
	Hash    string `json:"hash"`
}

type identitySafetyVector struct {
	A      int    `json:"a"` // index into accounts
	AName  string `json:"a_name"`
	B      int    `json:"b"`
	BName  string `json:"b_name"`
	Number string `json:"number"`
	QR     string `json:"qr"`
}

func init() {
	register("identity", func() any {
		v, c := identityRecipe()
		addCorpus("internal/identity", "FuzzParseSignedDeviceList", c.lists...)
		addCorpus("internal/identity", "FuzzParseDevicePublic", c.devices...)
		addCorpus("internal/identity", "FuzzUnmarshalDeviceKeys", c.keys...)
		addCorpus("internal/identity", "FuzzVerifySafetyQR", c.qrs...)
		return v
	})
}

type identityCorpora struct{ lists, devices, keys, qrs [][]byte }

func identityRecipe() (*identityVectors, *identityCorpora) {
	v := &identityVectors{Comment: "internal/identity known answers (docs/protocol.md §3); regenerate with go run ./internal/cmd/vectorgen"}
	c := &identityCorpora{}
	names := []string{"alice", "bob"}
	accounts := []*identity.AccountKey{identity.GenerateAccountKey(), identity.GenerateAccountKey()}
	for i, k := range accounts {
		fp := k.Public().Fingerprint()
		v.Accounts = append(v.Accounts, identityAccountVec{
			Name: names[i], Seed: hex.EncodeToString(k.Seed()),
			Public: hex.EncodeToString(k.Public().Bytes()), Fingerprint: hex.EncodeToString(fp[:]),
		})
	}
	var devs []*identity.DevicePublic
	for range 3 {
		k := identity.GenerateDeviceKeys()
		d := k.Public()
		fp, id := d.Fingerprint(), d.ID()
		v.Devices = append(v.Devices, identityDeviceVec{
			Keys: hex.EncodeToString(k.Marshal()), Public: hex.EncodeToString(d.Marshal()),
			Fingerprint: hex.EncodeToString(fp[:]), ID: id.String(),
		})
		devs = append(devs, d)
		c.keys = append(c.keys, k.Marshal())
		c.devices = append(c.devices, d.Marshal())
	}
	// Alice's chain: a laptop; then a phone is linked; then the laptop is
	// removed and a tablet linked.
	laptop := identity.DeviceEntry{Device: devs[0], Name: "laptop", Added: 1767225600}
	phone := identity.DeviceEntry{Device: devs[1], Name: "phone", Added: 1767229200}
	tablet := identity.DeviceEntry{Device: devs[2], Name: "tablet ✓", Added: 1767232800}
	var prev [32]byte
	for i, ds := range [][]identity.DeviceEntry{{laptop}, {laptop, phone}, {phone, tablet}} {
		s, err := identity.SignDeviceList(accounts[0], &identity.DeviceList{
			Account: names[0], Key: accounts[0].Public(), Version: uint64(i + 1), Prev: prev, Devices: ds,
		})
		if err != nil {
			panic(err)
		}
		prev = s.Hash()
		v.Lists = append(v.Lists, identityListVec{Version: uint64(i + 1), Signed: hex.EncodeToString(s.Marshal()), Hash: hex.EncodeToString(prev[:])})
		c.lists = append(c.lists, s.Marshal())
	}
	for _, p := range []struct {
		a     int
		aName string
		b     int
		bName string
	}{{0, "alice", 1, "bob"}, {1, "bob", 0, "alice"}, {0, "alice", 1, "bobby"}, {0, "alice", 0, "alice"}} {
		a, b := accounts[p.a].Public(), accounts[p.b].Public()
		qr := identity.SafetyQR(p.aName, a, p.bName, b)
		v.Safety = append(v.Safety, identitySafetyVector{
			A: p.a, AName: p.aName, B: p.b, BName: p.bName,
			Number: identity.SafetyNumber(p.aName, a, p.bName, b), QR: hex.EncodeToString(qr),
		})
		c.qrs = append(c.qrs, qr)
	}
	return v, c
}
