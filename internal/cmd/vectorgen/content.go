package main

import (
	"encoding/hex"
	"time"

	"github.com/parleyim/parley/internal/content"
)

type contentVector struct {
	Type         byte   `json:"type"`
	ID           string `json:"id"`
	SentUnixMs   int64  `json:"sent_unix_ms"`
	Conversation string `json:"conversation"`
	Text         string `json:"text"`
	Data         string `json:"data,omitempty"`
	Checkpoint   string `json:"checkpoint,omitempty"`
	Encoding     string `json:"encoding"`
}

func init() {
	register("content", func() any {
		sent := time.UnixMilli(1_795_000_000_123).UTC()
		cs := []content.Content{
			{Type: content.TypeText, ID: [16]byte{0x01, 0x02}, Sent: sent, Text: "hello, bob"},
			{Type: content.TypeSentCopy, ID: [16]byte{0x03}, Sent: sent, Conversation: "bob", Text: "hello, bob"},
			{Type: content.TypeSessionReset, ID: [16]byte{0x04}, Sent: sent},
			{Type: content.TypeText, ID: [16]byte{0x05}, Sent: sent, Text: "ünïcödé ✓"},
			{Type: content.TypeRecoveryShare, ID: [16]byte{0x06}, Sent: sent, Data: []byte("a backup.Share encoding")},
			{Type: content.TypeRecoveryRevoke, ID: [16]byte{0x07}, Sent: sent, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
			{Type: content.TypeRecoveryRevoke, ID: [16]byte{0x08}, Sent: sent},
			{Type: content.TypeText, ID: [16]byte{0x09}, Sent: sent, Text: "with a checkpoint",
				Checkpoint: []byte("parley.example/kt\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 parley.example/kt AAAAAA==\n")},
		}
		var out []contentVector
		var seeds [][]byte
		for _, c := range cs {
			enc, err := c.Marshal()
			if err != nil {
				panic("vectorgen: content: " + err.Error())
			}
			seeds = append(seeds, enc)
			out = append(out, contentVector{
				Type: byte(c.Type), ID: hex.EncodeToString(c.ID[:]), SentUnixMs: c.Sent.UnixMilli(),
				Conversation: c.Conversation, Text: c.Text, Data: hex.EncodeToString(c.Data), Checkpoint: hex.EncodeToString(c.Checkpoint), Encoding: hex.EncodeToString(enc),
			})
		}
		addCorpus("internal/content", "FuzzUnmarshal", seeds...)
		return out
	})
}
