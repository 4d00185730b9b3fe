package main

import (
	"encoding/hex"
	"time"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/session"
)

// sessionVectors is a conversation between two devices at the session
// layer: Alice starts a session from Bob's bundle, sends two prekey
// messages, Bob answers, Alice answers with a ratchet message.
type sessionVectors struct {
	Time        string            `json:"time"`
	AliceKeys   string            `json:"alice_device_keys"`
	BobKeys     string            `json:"bob_device_keys"`
	BobPrekeys  string            `json:"bob_prekey_set_before"`
	Bundle      string            `json:"bundle"`
	Messages    []sessionMessage  `json:"messages"`
	Records     map[string]string `json:"records_after"`
	BobPrekeys2 string            `json:"bob_prekey_set_after"`
}

type sessionMessage struct {
	From      string `json:"from"`
	Plaintext string `json:"plaintext"`
	Envelope  string `json:"envelope"`
	// The receiver's record and (for Bob) prekey set just before it
	// decrypted the message: a replay cannot re-create the receiver's own
	// random ratchet keys, so it starts from these.
	ReceiverRecord string `json:"receiver_record_before"`
	ReceiverSet    string `json:"receiver_prekey_set_before,omitempty"`
}

func init() {
	register("session", func() any {
		must := func(err error) {
			if err != nil {
				panic("vectorgen: session: " + err.Error())
			}
		}
		now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
		alice, bob := identity.GenerateDeviceKeys(), identity.GenerateDeviceKeys()
		set, up, err := prekey.NewSet(bob.Signing, 2)
		must(err)
		signed, _ := set.Current()
		b := &prekey.Bundle{Signed: signed, OneTime: &up.OneTime[0], PQ: up.PQ[0]}
		v := &sessionVectors{
			Time:       now.Format(time.RFC3339),
			AliceKeys:  hex.EncodeToString(alice.Marshal()),
			BobKeys:    hex.EncodeToString(bob.Marshal()),
			BobPrekeys: hex.EncodeToString(set.Marshal()),
			Bundle:     hex.EncodeToString(b.Marshal()),
			Records:    map[string]string{},
		}
		ra, rb := session.New(), session.New()
		must(ra.Initiate(alice, bob.Public(), b, now))
		var corpus [][]byte
		step := func(from string, text string) {
			r, dr, self, selfSet, peer := ra, rb, bob, set, alice.Public()
			if from == "bob" {
				r, dr, self, selfSet, peer = rb, ra, alice, (*prekey.Set)(nil), bob.Public()
			}
			env, err := r.Encrypt([]byte(text), now)
			must(err)
			m := sessionMessage{From: from, Plaintext: text, Envelope: hex.EncodeToString(env.Marshal()), ReceiverRecord: hex.EncodeToString(dr.Marshal())}
			if selfSet != nil {
				m.ReceiverSet = hex.EncodeToString(selfSet.Marshal())
			}
			got, err := dr.Decrypt(env, self, selfSet, peer, now)
			must(err)
			if string(got) != text {
				panic("vectorgen: session round trip failed")
			}
			v.Messages = append(v.Messages, m)
			corpus = append(corpus, ra.Marshal(), rb.Marshal())
		}
		step("alice", "hello bob")
		step("alice", "are you there?")
		step("bob", "hello alice")
		step("alice", "now we are confirmed")
		v.Records["alice"] = hex.EncodeToString(ra.Marshal())
		v.Records["bob"] = hex.EncodeToString(rb.Marshal())
		v.BobPrekeys2 = hex.EncodeToString(set.Marshal())
		corpus = append(corpus, session.New().Marshal())
		addCorpus("internal/session", "FuzzUnmarshalRecord", corpus...)
		return v
	})
}
