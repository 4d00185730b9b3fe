package content

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/vectortest"
	"github.com/parleyim/parley/internal/wire"
)

var sent = time.UnixMilli(1_795_000_000_123).UTC()

func samples() []*Content {
	return []*Content{
		{Type: TypeText, ID: [16]byte{1}, Sent: sent, Text: "hello, world"},
		{Type: TypeText, ID: [16]byte{2}, Sent: sent, Text: ""},
		{Type: TypeSentCopy, ID: [16]byte{3}, Sent: sent, Conversation: "bob", Text: "héllo"},
		{Type: TypeSessionReset, ID: [16]byte{4}, Sent: sent},
		{Type: TypeRecoveryShare, ID: [16]byte{5}, Sent: sent, Data: []byte{0, 1, 2, 0xff}},
		{Type: TypeRecoveryRevoke, ID: [16]byte{6}, Sent: sent, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Type: TypeRecoveryRevoke, ID: [16]byte{7}, Sent: sent},
		{Type: TypeText, ID: [16]byte{8}, Sent: sent, Text: "hi", Checkpoint: []byte("a signed note")},
		{Type: TypeSentCopy, ID: [16]byte{9}, Sent: sent, Conversation: "bob", Text: "hi", Checkpoint: []byte{0}},
	}
}

func same(a, b *Content) bool {
	return a.Type == b.Type && a.ID == b.ID && a.Sent.Equal(b.Sent) && a.Conversation == b.Conversation &&
		a.Text == b.Text && bytes.Equal(a.Data, b.Data) && (a.Data == nil) == (b.Data == nil) &&
		bytes.Equal(a.Checkpoint, b.Checkpoint) && (a.Checkpoint == nil) == (b.Checkpoint == nil)
}

func TestRoundTripAndStrictPrefixes(t *testing.T) {
	for _, c := range samples() {
		enc, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unmarshal(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !same(got, c) {
			t.Fatalf("round trip: %+v, want %+v", got, c)
		}
		again, _ := got.Marshal()
		if !bytes.Equal(again, enc) {
			t.Fatal("does not re-encode identically")
		}
		// The one prefix that decodes is, for a content with a
		// checkpoint, the same content without it (the field is optional).
		bare := -1
		if c.Checkpoint != nil {
			bare = len(enc) - 2 - len(c.Checkpoint)
		}
		for i := range len(enc) {
			if i == bare {
				if got, err := Unmarshal(enc[:i]); err != nil || got.Checkpoint != nil || got.Text != c.Text {
					t.Fatalf("without its checkpoint: %+v, %v", got, err)
				}
				continue
			}
			if _, err := Unmarshal(enc[:i]); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("prefix %d: %v", i, err)
			}
		}
		if _, err := Unmarshal(append(enc, 0)); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
}

func TestInvalidContentRefused(t *testing.T) {
	bad := []*Content{
		{Type: 9, Sent: sent},
		{Type: TypeText, Sent: sent, Conversation: "bob"},
		{Type: TypeSentCopy, Sent: sent},
		{Type: TypeSessionReset, Sent: sent, Text: "x"},
		{Type: TypeText, Sent: sent, Data: []byte{1}},
		{Type: TypeRecoveryShare, Sent: sent},
		{Type: TypeRecoveryShare, Sent: sent, Data: make([]byte, MaxDataSize+1)},
		{Type: TypeRecoveryShare, Sent: sent, Data: []byte{1}, Text: "x"},
		{Type: TypeRecoveryShare, Sent: sent, Data: []byte{1}, Conversation: "bob"},
		{Type: TypeRecoveryRevoke, Sent: sent, Data: []byte{1, 2, 3}},
		{Type: TypeText, Sent: sent, Text: "\xff"},
		{Type: TypeSentCopy, Sent: sent, Conversation: strings.Repeat("x", MaxNameSize+1)},
		{Type: TypeText, Sent: sent, Checkpoint: []byte{}},
		{Type: TypeText, Sent: sent, Checkpoint: make([]byte, MaxCheckpointSize+1)},
		{Type: TypeSessionReset, Sent: sent, Checkpoint: []byte{1}},
		{Type: TypeRecoveryShare, Sent: sent, Data: []byte{1}, Checkpoint: []byte{1}},
	}
	for _, c := range bad {
		if _, err := c.Marshal(); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%+v: %v, want ErrMalformed", c, err)
		}
	}
	long := &Content{Type: TypeText, Sent: sent, Text: strings.Repeat("x", MaxTextSize+1)}
	if _, err := long.Marshal(); err == nil || errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("oversized text: %v, want a size error", err)
	}
	// The largest content fits the padding limit.
	max := &Content{Type: TypeSentCopy, Sent: sent, Conversation: strings.Repeat("x", MaxNameSize), Text: strings.Repeat("x", MaxTextSize),
		Checkpoint: make([]byte, MaxCheckpointSize)}
	enc, err := max.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wire.Pad(nil, enc); err != nil {
		t.Fatalf("largest content does not fit the padding: %v", err)
	}
}

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

// TestEncodingWithoutCheckpointUnchanged: a content without a checkpoint
// encodes exactly as before the field existed (the first vectors were
// written then), and an empty checkpoint on the wire is refused.
func TestEncodingWithoutCheckpointUnchanged(t *testing.T) {
	c := &Content{Type: TypeText, ID: [16]byte{1}, Sent: sent, Text: "hi"}
	enc, _ := c.Marshal()
	if want := 1 + 1 + 16 + 8 + 1 + 3 + 2; len(enc) != want {
		t.Fatalf("encoding of %d bytes, want %d", len(enc), want)
	}
	if _, err := Unmarshal(append(enc, 0, 0)); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("empty checkpoint: %v", err)
	}
	if got, err := Unmarshal(append(enc, 0, 1, 7)); err != nil || !bytes.Equal(got.Checkpoint, []byte{7}) {
		t.Fatalf("one-byte checkpoint: %+v, %v", got, err)
	}
}

func TestVectors(t *testing.T) {
	var vs []contentVector
	vectortest.Load(t, "content", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		enc := vectortest.Hex(t, v.Encoding)
		c, err := Unmarshal(enc)
		if err != nil {
			t.Fatal(err)
		}
		if byte(c.Type) != v.Type || !bytes.Equal(c.ID[:], vectortest.Hex(t, v.ID)) || c.Sent.UnixMilli() != v.SentUnixMs ||
			c.Conversation != v.Conversation || c.Text != v.Text || !bytes.Equal(c.Data, vectortest.Hex(t, v.Data)) ||
			!bytes.Equal(c.Checkpoint, vectortest.Hex(t, v.Checkpoint)) {
			t.Fatalf("vector decodes to %+v", c)
		}
		again, _ := c.Marshal()
		if !bytes.Equal(again, enc) {
			t.Fatal("vector does not re-encode identically")
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	vectortest.Corpus(f, "FuzzUnmarshal")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Unmarshal(data)
		if err != nil {
			return
		}
		enc, err := c.Marshal()
		if err != nil || !bytes.Equal(enc, data) {
			t.Fatalf("accepted content does not re-encode identically: %v", err)
		}
	})
}

func TestFuzzCorpus(t *testing.T) { vectortest.Corpus(t, "FuzzUnmarshal") }
