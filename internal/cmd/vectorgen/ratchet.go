package main

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/ratchet"
)

// The ratchet vectors (testdata/vectors/ratchet.json) pin the Double Ratchet
// with its PQ ratchet (docs/protocol.md §5): a whole conversation from fixed
// inputs, long enough that one PQ re-key happens and completes, and the KDF
// chains it is built from. internal/ratchet/vectors_test.go replays the
// conversation under the same deterministic entropy, comparing every
// message byte for byte while each receiver decrypts the committed bytes.
// The generator also writes the seed corpora of FuzzParseMessage and
// FuzzUnmarshalState.

type ratchetMessageVector struct {
	From      string `json:"from"` // "initiator" or "responder"
	Time      int64  `json:"time_unix"`
	Plaintext string `json:"plaintext"`
	Message   string `json:"message"`
	Flags     int    `json:"flags"`
}

type ratchetChainKDFVector struct {
	ChainKey string `json:"chain_key"`
	Next     string `json:"next_chain_key"`
	Seed     string `json:"message_key_seed"`
}

type ratchetMessageKeyVector struct {
	Seed string `json:"message_key_seed"`
	Salt string `json:"salt"`
	Key  string `json:"aead_key"`
}

type ratchetRootKDFVector struct {
	RootKey  string `json:"root_key"`
	DH       string `json:"dh"`
	PQ       string `json:"pq"`
	NewRoot  string `json:"new_root_key"`
	ChainKey string `json:"chain_key"`
}

type ratchetKeyIDVector struct {
	EncapsulationKey string `json:"encapsulation_key"`
	KeyID            string `json:"key_id"`
}

type ratchetVectors struct {
	Comment string `json:"comment"`
	Entropy string `json:"entropy"`

	SharedSecret        string                 `json:"shared_secret"`
	AD                  string                 `json:"ad"`
	ResponderRatchetKey string                 `json:"responder_ratchet_private_key"`
	PQRekeyMessages     int                    `json:"pq_rekey_messages"`
	Messages            []ratchetMessageVector `json:"messages"`

	ChainKDF   []ratchetChainKDFVector   `json:"chain_kdf"`
	MessageKey []ratchetMessageKeyVector `json:"message_key"`
	RootKDF    []ratchetRootKDFVector    `json:"root_kdf"`
	PQKeyID    []ratchetKeyIDVector      `json:"pq_key_id"`
}

func init() {
	register("ratchet", genRatchet)
}

// ratchetScript is the conversation: bursts of messages alternating between
// the initiator and the responder, every message delivered at once and in
// order. It is long enough for the PQ policy (PQRekeyMessages) to fall due
// and for the exchange it starts to complete.
var ratchetScript = []int{3, 2, 5, 4, 10, 10, 10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}

func fixedBytes(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func genRatchet() any {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var sk [32]byte
	copy(sk[:], fixedBytes(32, 0x00))
	ad := fixedBytes(64, 0x40)
	spk, err := primitives.NewX25519PrivateKey(fixedBytes(32, 0xa0))
	if err != nil {
		panic(err)
	}
	v := &ratchetVectors{
		Comment: "Double Ratchet with PQ ratchet, docs/protocol.md §5. Replay: install primitives.UnsafeDeterministicEntropy(entropy), " +
			"build the initiator with NewInitiator(shared_secret, ad, public(responder key), time of first message) and the responder with NewResponder, " +
			"then for each message: sender Encrypt(plaintext, time) must equal message, receiver Decrypt(message, time) must equal plaintext.",
		Entropy:             "parley vectors ratchet",
		SharedSecret:        hex.EncodeToString(sk[:]),
		AD:                  hex.EncodeToString(ad),
		ResponderRatchetKey: hex.EncodeToString(spk.Bytes()),
		PQRekeyMessages:     ratchet.PQRekeyMessages,
	}
	ini, err := ratchet.NewInitiator(&sk, ad, spk.Public(), start)
	if err != nil {
		panic(err)
	}
	res := ratchet.NewResponder(&sk, ad, spk, start)
	parties := [2]*ratchet.State{ini, res}
	names := [2]string{"initiator", "responder"}

	var seenFlags [4]bool
	var corpusMsgs, corpusStates [][]byte
	corpusStates = append(corpusStates, ini.Marshal(), res.Marshal())
	i := 0
	for burst, count := range ratchetScript {
		from := burst % 2
		for k := 0; k < count; k++ {
			now := start.Add(time.Duration(i) * time.Minute)
			pt := []byte(fmt.Sprintf("message %d from the %s", i, names[from]))
			m, err := parties[from].Encrypt(pt, now)
			if err != nil {
				panic(err)
			}
			got, err := parties[1-from].Decrypt(m, now)
			if err != nil || string(got) != string(pt) {
				panic(fmt.Sprintf("ratchet vectors: message %d does not decrypt: %v", i, err))
			}
			flags := int(m[1])
			if !seenFlags[flags] {
				corpusMsgs = append(corpusMsgs, m)
				corpusStates = append(corpusStates, parties[0].Marshal(), parties[1].Marshal())
				seenFlags[flags] = true
			}
			v.Messages = append(v.Messages, ratchetMessageVector{
				From: names[from], Time: now.Unix(), Plaintext: hex.EncodeToString(pt),
				Message: hex.EncodeToString(m), Flags: flags,
			})
			if flags&1 != 0 && len(v.PQKeyID) == 0 {
				pm, err := ratchet.ParseMessage(m)
				if err != nil {
					panic(err)
				}
				id := primitives.Hash(primitives.LabelPQRatchetKeyID, pm.PQKey)
				v.PQKeyID = append(v.PQKeyID, ratchetKeyIDVector{
					EncapsulationKey: hex.EncodeToString(pm.PQKey),
					KeyID:            hex.EncodeToString(id[:ratchet.PQKeyIDSize]),
				})
			}
			i++
		}
	}
	// The script must contain a complete PQ re-key: a key, then its answer,
	// then plain messages again.
	if !seenFlags[1] || !seenFlags[2] || v.Messages[len(v.Messages)-1].Flags != 0 {
		panic("ratchet vectors: the script no longer contains a complete PQ re-key; lengthen it")
	}

	for _, ck := range [][]byte{fixedBytes(32, 0x10), fixedBytes(32, 0xf0)} {
		var c [32]byte
		copy(c[:], ck)
		next, seed := primitives.ChainKDF(&c)
		v.ChainKDF = append(v.ChainKDF, ratchetChainKDFVector{hex.EncodeToString(ck), hex.EncodeToString(next[:]), hex.EncodeToString(seed[:])})
		salt := fixedBytes(ratchet.SaltSize, 0x30)
		key := primitives.MessageKey(&seed, salt)
		v.MessageKey = append(v.MessageKey, ratchetMessageKeyVector{hex.EncodeToString(seed[:]), hex.EncodeToString(salt), hex.EncodeToString(key[:])})
	}
	for _, pq := range [][]byte{nil, fixedBytes(32, 0x60)} {
		var rk [32]byte
		copy(rk[:], fixedBytes(32, 0x20))
		dh := fixedBytes(32, 0x50)
		root, ck := primitives.RootKDF(&rk, dh, pq)
		v.RootKDF = append(v.RootKDF, ratchetRootKDFVector{hex.EncodeToString(rk[:]), hex.EncodeToString(dh), hex.EncodeToString(pq), hex.EncodeToString(root[:]), hex.EncodeToString(ck[:])})
	}

	// Seed corpora: one message of each flag combination met, some invalid
	// ones, and states at each of those points plus one holding skipped keys.
	bad := [][]byte{
		{}, {1}, {2, 0}, // empty, truncated, wrong version
		append([]byte{1, 0x04}, corpusMsgs[0][2:]...),               // unknown flag
		append(append([]byte{}, corpusMsgs[0]...), 0),               // trailing byte
		corpusMsgs[0][:len(corpusMsgs[0])-1],                        // truncated ciphertext
		append(append([]byte{}, corpusMsgs[0][:58]...), 0, 0, 1, 0), // ciphertext shorter than the tag
	}
	addCorpus("internal/ratchet", "FuzzParseMessage", append(corpusMsgs, bad...)...)
	ini2, _ := ratchet.NewInitiator(&sk, ad, spk.Public(), start)
	res2 := ratchet.NewResponder(&sk, ad, spk, start)
	for k := 0; k < 5; k++ {
		_, _ = ini2.Encrypt([]byte("skipped"), start)
	}
	last, _ := ini2.Encrypt([]byte("last"), start)
	if _, err := res2.Decrypt(last, start); err != nil {
		panic(err)
	}
	corpusStates = append(corpusStates, res2.Marshal(), []byte{}, []byte{1})
	addCorpus("internal/ratchet", "FuzzUnmarshalState", corpusStates...)
	return v
}
