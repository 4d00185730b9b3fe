package backup

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/vectortest"
)

// vectorFile mirrors internal/cmd/vectorgen/backup.go's backupVectors.
type vectorFile struct {
	Keys []struct {
		Key         string `json:"key"`
		Written     string `json:"written"`
		AgeIdentity string `json:"age_identity"`
		Recipient   string `json:"recipient"`
		Locator     string `json:"locator"`
		WriteToken  string `json:"write_token"`
		KeyID       string `json:"key_id"`
	} `json:"keys"`
	Archive struct {
		Key         int    `json:"key"`
		Username    string `json:"username"`
		Server      string `json:"server"`
		AccountSeed string `json:"account_seed"`
		CreatedNs   int64  `json:"created_unix_ns"`
		Contacts    []struct {
			Username   string `json:"username"`
			DeviceList string `json:"device_list"`
			Verified   bool   `json:"verified"`
			AddedNs    int64  `json:"added_unix_ns"`
		} `json:"contacts"`
		Settings []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"settings"`
		Messages []struct {
			ID           string `json:"id"`
			Conversation string `json:"conversation"`
			Sender       string `json:"sender"`
			SenderDevice string `json:"sender_device"`
			Outgoing     bool   `json:"outgoing"`
			SentNs       int64  `json:"sent_unix_ns"`
			ReceivedNs   int64  `json:"received_unix_ns"`
			Body         string `json:"body"`
			State        uint8  `json:"state"`
		} `json:"messages"`
		Plaintext string `json:"plaintext"`
	} `json:"archive"`
	Shares struct {
		Key       int      `json:"key"`
		N         int      `json:"n"`
		Threshold int      `json:"threshold"`
		Shares    []string `json:"shares"`
	} `json:"shares"`
}

func loadVectors(t *testing.T) *vectorFile {
	var v vectorFile
	vectortest.Load(t, "backup", &v)
	if len(v.Keys) != 3 || v.Archive.Plaintext == "" || len(v.Shares.Shares) != v.Shares.N {
		t.Fatal("backup.json is incomplete; regenerate with go run ./internal/cmd/vectorgen")
	}
	return &v
}

func (v *vectorFile) key(t *testing.T, i int) RecoveryKey {
	return RecoveryKey(vectortest.Hex(t, v.Keys[i].Key))
}

// TestVectorsKeys: written form and every derivation of the committed keys.
func TestVectorsKeys(t *testing.T) {
	v := loadVectors(t)
	for i, kv := range v.Keys {
		k := v.key(t, i)
		if k.String() != kv.Written {
			t.Errorf("key %d written as %s, committed %s", i, k, kv.Written)
		}
		if got, err := ParseRecoveryKey(kv.Written); err != nil || got != k {
			t.Errorf("key %d: committed written form parses to %x, %v", i, got, err)
		}
		if k.AgeIdentityString() != kv.AgeIdentity {
			t.Errorf("key %d: age identity %s, committed %s", i, k.AgeIdentityString(), kv.AgeIdentity)
		}
		if k.Recipient().String() != kv.Recipient {
			t.Errorf("key %d: recipient differs", i)
		}
		loc, id := k.Locator(), k.KeyID()
		if tok := k.WriteToken(); hex.EncodeToString(tok[:]) != kv.WriteToken {
			t.Errorf("key %d: write token %x, committed %s", i, tok, kv.WriteToken)
		}
		if hex.EncodeToString(loc[:]) != kv.Locator || hex.EncodeToString(id[:]) != kv.KeyID {
			t.Errorf("key %d: locator %x / key ID %x, committed %s / %s", i, loc, id, kv.Locator, kv.KeyID)
		}
	}
}

// TestVectorsRecipe repeats the generator's draws: the keys, the account
// key and the shares come out byte for byte.
func TestVectorsRecipe(t *testing.T) {
	v := loadVectors(t)
	restore := primitives.UnsafeDeterministicEntropy("parley vectors backup")
	keys := []RecoveryKey{NewRecoveryKey(), NewRecoveryKey(), NewRecoveryKey()}
	account := identity.GenerateAccountKey()
	shares, err := SplitRecoveryKey(keys[0], v.Shares.N, v.Shares.Threshold)
	restore()
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if k != v.key(t, i) {
			t.Errorf("key %d differs", i)
		}
	}
	if hex.EncodeToString(account.Seed()) != v.Archive.AccountSeed {
		t.Error("account seed differs")
	}
	for i, s := range shares {
		if hex.EncodeToString(s.Marshal()) != v.Shares.Shares[i] {
			t.Errorf("share %d differs", i)
		}
	}
}

// TestVectorsShares: any threshold of the committed shares give the
// committed key.
func TestVectorsShares(t *testing.T) {
	v := loadVectors(t)
	var shares []Share
	for _, h := range v.Shares.Shares {
		s, err := ParseShare(vectortest.Hex(t, h))
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, s)
	}
	want := v.key(t, v.Shares.Key)
	for i := 0; i+v.Shares.Threshold <= len(shares); i++ {
		got, err := CombineShares(shares[i : i+v.Shares.Threshold])
		if err != nil || got != want {
			t.Fatalf("shares %d..: %x, %v", i, got, err)
		}
	}
	if _, err := CombineShares(shares[:v.Shares.Threshold-1]); err == nil {
		t.Fatal("threshold − 1 committed shares combined")
	}
}

// vectorFixture returns the committed archive's contents and key.
func vectorFixture(t *testing.T, v *vectorFile) (*fixture, RecoveryKey) {
	a := v.Archive
	account, err := identity.NewAccountKey(vectortest.Hex(t, a.AccountSeed))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{header: Header{Username: a.Username, Server: a.Server, AccountKey: account, Created: time.Unix(0, a.CreatedNs)}}
	for _, c := range a.Contacts {
		f.contacts = append(f.contacts, Contact{Username: c.Username, DeviceList: vectortest.Hex(t, c.DeviceList), Verified: c.Verified, Added: time.Unix(0, c.AddedNs)})
	}
	for _, s := range a.Settings {
		f.settings = append(f.settings, Setting{Name: s.Name, Value: vectortest.Hex(t, s.Value)})
	}
	for _, m := range a.Messages {
		f.messages = append(f.messages, Message{
			ID: [16]byte(vectortest.Hex(t, m.ID)), Conversation: m.Conversation, Sender: m.Sender,
			SenderDevice: [16]byte(vectortest.Hex(t, m.SenderDevice)), Outgoing: m.Outgoing,
			Sent: time.Unix(0, m.SentNs), Received: time.Unix(0, m.ReceivedNs), Body: vectortest.Hex(t, m.Body), State: m.State,
		})
	}
	return f, v.key(t, a.Key)
}

// TestVectorsArchivePlaintext: the committed plaintext is what the Writer
// writes for the committed contents (checked by decrypting a fresh archive
// with age), and the plaintext reader returns those contents.
func TestVectorsArchivePlaintext(t *testing.T) {
	v := loadVectors(t)
	a := v.Archive
	f, k := vectorFixture(t, v)
	committed := vectortest.Hex(t, a.Plaintext)
	if got := decrypt(t, f.write(t, k), k); !bytes.Equal(got, committed) {
		t.Fatalf("the Writer's plaintext differs from the committed one:\n got %x\nwant %x", got, committed)
	}
	r, err := newPlainReader(bytes.NewReader(committed), nil, new(k.KeyID()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := drain(r)
	if err != nil {
		t.Fatal(err)
	}
	if d := f.diff(got); d != "" {
		t.Fatal(d)
	}
	// The documented layout (docs/backup.md §4.2): magic, version 1, then
	// the header record of the documented length.
	if !bytes.HasPrefix(committed, []byte("PARLEYBK\x00\x01\x01")) {
		t.Fatalf("plaintext starts %x", committed[:12])
	}
	if n := int(committed[11])<<16 | int(committed[12])<<8 | int(committed[13]); n != 1+len(a.Username)+2+len(a.Server)+64+1984+8+8 {
		t.Fatalf("header record length %d", n)
	}
}

// archiveFixture is a complete encrypted archive of the vector contents,
// committed so that every later version of the Reader (and of age) is
// checked against a file an earlier one wrote. age draws its file key,
// nonce and encapsulation from crypto/rand, so TestArchiveFixture writes it
// under testing/cryptotest.SetGlobalRandom:
//
//	go test ./internal/backup -run TestArchiveFixture -update
//
// (As for provision.json, a Go release that draws randomness differently
// may need -update without any format change; TestCommittedArchive, which
// reads the committed file, is what pins compatibility.)
const archiveFixture = "testdata/archive-v1.age"

var update = flag.Bool("update", false, "rewrite "+archiveFixture)

func TestArchiveFixture(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 1)
	f, k := vectorFixture(t, loadVectors(t))
	archive := f.write(t, k)
	if *update {
		if err := os.WriteFile(archiveFixture, archive, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	committed, err := os.ReadFile(archiveFixture)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(archive, committed) {
		t.Fatalf("the Writer no longer writes %s byte for byte (regenerate with -update if only Go's randomness changed)", archiveFixture)
	}
}

// TestCommittedArchive reads the committed encrypted archive with the
// vector key: version 1 archives stay readable.
func TestCommittedArchive(t *testing.T) {
	v := loadVectors(t)
	f, k := vectorFixture(t, v)
	committed, err := os.ReadFile(archiveFixture)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(bytes.NewReader(committed), k)
	if err != nil {
		t.Fatal(err)
	}
	if d := f.diff(got); d != "" {
		t.Fatal(d)
	}
	if !bytes.Equal(decrypt(t, committed, k), vectortest.Hex(t, v.Archive.Plaintext)) {
		t.Fatal("age decrypts the committed archive to another plaintext")
	}
	if _, err := readAll(bytes.NewReader(committed), v.key(t, 1)); !errors.Is(err, ErrWrongRecoveryKey) {
		t.Fatalf("another vector key: %v", err)
	}
}
