package main

import (
	"bytes"
	"encoding/hex"
	"io"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/parleyim/parley/internal/backup"
	"github.com/parleyim/parley/internal/identity"
)

// The backup vectors (testdata/vectors/backup.json, docs/backup.md §9):
// recovery keys with their written form and derivations, the plaintext of
// a fixed small archive, and recovery shares. Under the entropy stream
// "parley vectors backup" the recipe draws, in order: three recovery keys,
// one account key, then splits the first recovery key 3-of-5.
// internal/backup's TestVectors repeats it. The archive's age encryption
// draws from crypto/rand, so only its plaintext is a vector; the test
// decrypts a fresh archive of the same contents to the same plaintext.

type backupVectors struct {
	Comment string            `json:"comment"`
	Keys    []backupKeyVector `json:"keys"`
	Archive backupArchiveVec  `json:"archive"`
	Shares  backupSharesVec   `json:"shares"`
}

type backupKeyVector struct {
	Key         string `json:"key"`
	Written     string `json:"written"`
	AgeIdentity string `json:"age_identity"`
	Recipient   string `json:"recipient"`
	Locator     string `json:"locator"`
	WriteToken  string `json:"write_token"`
	KeyID       string `json:"key_id"`
}

type backupArchiveVec struct {
	Key         int                   `json:"key"` // index into keys
	Username    string                `json:"username"`
	Server      string                `json:"server"`
	AccountSeed string                `json:"account_seed"`
	CreatedNs   int64                 `json:"created_unix_ns"`
	Contacts    []backupContactVector `json:"contacts"`
	Settings    []backupSettingVector `json:"settings"`
	Messages    []backupMessageVector `json:"messages"`
	Plaintext   string                `json:"plaintext"`
}

type backupContactVector struct {
	Username   string `json:"username"`
	DeviceList string `json:"device_list"`
	Verified   bool   `json:"verified"`
	AddedNs    int64  `json:"added_unix_ns"`
}

type backupSettingVector struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type backupMessageVector struct {
	ID           string `json:"id"`
	Conversation string `json:"conversation"`
	Sender       string `json:"sender"`
	SenderDevice string `json:"sender_device"`
	Outgoing     bool   `json:"outgoing"`
	SentNs       int64  `json:"sent_unix_ns"`
	ReceivedNs   int64  `json:"received_unix_ns"`
	Body         string `json:"body"`
	State        uint8  `json:"state"`
}

type backupSharesVec struct {
	Key       int      `json:"key"`
	N         int      `json:"n"`
	Threshold int      `json:"threshold"`
	Shares    []string `json:"shares"`
}

func init() {
	register("backup", func() any {
		v := &backupVectors{Comment: "internal/backup known answers (docs/backup.md); regenerate with go run ./internal/cmd/vectorgen"}
		keys := []backup.RecoveryKey{backup.NewRecoveryKey(), backup.NewRecoveryKey(), backup.NewRecoveryKey()}
		account := identity.GenerateAccountKey()
		shares, err := backup.SplitRecoveryKey(keys[0], 5, 3)
		check(err)

		var keySeeds [][]byte
		for _, k := range keys {
			loc, id, tok := k.Locator(), k.KeyID(), k.WriteToken()
			v.Keys = append(v.Keys, backupKeyVector{
				Key: hex.EncodeToString(k[:]), Written: k.String(), AgeIdentity: k.AgeIdentityString(),
				Recipient: k.Recipient().String(), Locator: hex.EncodeToString(loc[:]), KeyID: hex.EncodeToString(id[:]),
				WriteToken: hex.EncodeToString(tok[:]),
			})
			s := k.String()
			keySeeds = append(keySeeds, []byte(s), []byte(strings.ToLower(strings.ReplaceAll(s, "-", " "))),
				[]byte(s[:len(s)-1]+"0"), []byte(s[5:]))
		}
		addCorpus("internal/backup", "FuzzParseRecoveryKey", keySeeds...)

		a := backupArchiveVec{
			Key: 0, Username: "alice", Server: "https://parley.example", AccountSeed: hex.EncodeToString(account.Seed()),
			CreatedNs: 1_795_000_000_123_456_789,
			Contacts: []backupContactVector{
				{Username: "bob", DeviceList: "00010203", Verified: true, AddedNs: 1_790_000_000_000_000_000},
				{Username: "carol ✓", DeviceList: "", Verified: false, AddedNs: 1_790_000_001_000_000_001},
			},
			Settings: []backupSettingVector{{Name: "backup.auto", Value: hex.EncodeToString([]byte("daily"))}, {Name: "theme", Value: ""}},
			Messages: []backupMessageVector{
				{ID: strings.Repeat("01", 16), Conversation: "bob", Sender: "bob", SenderDevice: strings.Repeat("aa", 16),
					SentNs: 1_794_000_000_000_000_000, ReceivedNs: 1_794_000_000_500_000_000, Body: hex.EncodeToString([]byte("hello, alice")), State: 6},
				{ID: strings.Repeat("02", 16), Conversation: "bob", Sender: "alice", SenderDevice: strings.Repeat("bb", 16), Outgoing: true,
					SentNs: 1_794_000_001_000_000_000, ReceivedNs: 1_794_000_001_000_000_000, Body: hex.EncodeToString([]byte("hi bob ✓")), State: 3},
				{ID: strings.Repeat("03", 16), Conversation: "carol ✓", Sender: "carol ✓", SenderDevice: strings.Repeat("cc", 16),
					SentNs: 1_794_000_002_000_000_000, ReceivedNs: 1_794_000_002_000_000_001, Body: "", State: 7},
			},
		}
		pt := backupPlaintext(keys[a.Key], account, &a)
		a.Plaintext = hex.EncodeToString(pt)
		v.Archive = a
		// Seeds for the plaintext reader: the archive, the same with only
		// its header and trailer, and a few damaged variants.
		empty := &backupArchiveVec{Username: a.Username, Server: a.Server, CreatedNs: a.CreatedNs}
		emptyPT := backupPlaintext(keys[a.Key], account, empty)
		addCorpus("internal/backup", "FuzzReadPlaintext", pt, emptyPT, pt[:len(pt)-16], pt[:len(pt)/2], append(bytes.Clone(pt), 0))

		v.Shares = backupSharesVec{Key: 0, N: 5, Threshold: 3}
		var shareSeeds [][]byte
		for _, s := range shares {
			v.Shares.Shares = append(v.Shares.Shares, hex.EncodeToString(s.Marshal()))
			shareSeeds = append(shareSeeds, s.Marshal())
		}
		shareSeeds = append(shareSeeds, shares[0].Marshal()[:10], nil)
		addCorpus("internal/backup", "FuzzParseShare", shareSeeds...)
		return v
	})
}

func check(err error) {
	if err != nil {
		panic("vectorgen: backup: " + err.Error())
	}
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	check(err)
	return b
}

// backupPlaintext writes the archive with backup.NewWriter and decrypts it
// with age alone.
func backupPlaintext(k backup.RecoveryKey, account *identity.AccountKey, a *backupArchiveVec) []byte {
	var buf bytes.Buffer
	w, err := backup.NewWriter(&buf, k, backup.Header{
		Username: a.Username, Server: a.Server, AccountKey: account, Created: time.Unix(0, a.CreatedNs),
	})
	check(err)
	for _, c := range a.Contacts {
		check(w.AddContact(backup.Contact{Username: c.Username, DeviceList: unhex(c.DeviceList), Verified: c.Verified, Added: time.Unix(0, c.AddedNs)}))
	}
	for _, s := range a.Settings {
		check(w.AddSetting(backup.Setting{Name: s.Name, Value: unhex(s.Value)}))
	}
	for _, m := range a.Messages {
		check(w.AddMessage(&backup.Message{
			ID: [16]byte(unhex(m.ID)), Conversation: m.Conversation, Sender: m.Sender, SenderDevice: [16]byte(unhex(m.SenderDevice)),
			Outgoing: m.Outgoing, Sent: time.Unix(0, m.SentNs), Received: time.Unix(0, m.ReceivedNs), Body: unhex(m.Body), State: m.State,
		}))
	}
	check(w.Close())
	r, err := age.Decrypt(&buf, k.AgeIdentity())
	check(err)
	pt, err := io.ReadAll(r)
	check(err)
	return pt
}
