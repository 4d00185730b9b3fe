package client

import (
	"os"
	"path/filepath"
	"testing"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/store"
)

func envelopeProto(e *store.Envelope) *parleyv1.Envelope {
	return &parleyv1.Envelope{Seq: e.Seq, MessageId: e.MessageID[:], Sender: e.SenderUsername,
		SenderDevice: e.SenderDevice[:], ServerTimeMs: e.Created.UnixMilli(), Body: e.Body}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
