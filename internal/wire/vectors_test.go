package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/vectortest"
)

// The known-answer vectors in testdata/vectors/wire.json, written by
// internal/cmd/vectorgen/wire.go (whose types these mirror).

type vectors struct {
	MinPaddedSize    int   `json:"min_padded_size"`
	MaxPlaintextSize int   `json:"max_plaintext_size"`
	Buckets          []int `json:"buckets"`
	Padding          []struct {
		BodyLen   int `json:"body_len"`
		PaddedLen int `json:"padded_len"`
	} `json:"padding"`
	PaddedExamples []struct {
		Body   string `json:"body"`
		Padded string `json:"padded"`
	} `json:"padded_examples"`
	InvalidPadding []struct {
		Padded string `json:"padded"`
		Reason string `json:"reason"`
	} `json:"invalid_padding"`
	Envelopes []struct {
		Type     int    `json:"type"`
		Body     string `json:"body"`
		Encoding string `json:"encoding"`
	} `json:"envelopes"`
	InvalidEnvelopes []struct {
		Encoding string `json:"encoding"`
		Error    string `json:"error"`
		Reason   string `json:"reason"`
	} `json:"invalid_envelopes"`
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	var v vectors
	vectortest.Load(t, "wire", &v)
	if len(v.Buckets) == 0 || len(v.Padding) == 0 || len(v.PaddedExamples) == 0 || len(v.InvalidPadding) == 0 ||
		len(v.Envelopes) == 0 || len(v.InvalidEnvelopes) == 0 {
		t.Fatal("wire.json is missing a section; regenerate with go run ./internal/cmd/vectorgen")
	}
	return &v
}

// TestVectorsPadding replays the padding table. The bucket list pins
// PaddedSize for every body length up to MaxPlaintextSize: a body of n
// bytes goes in the smallest bucket greater than n.
func TestVectorsPadding(t *testing.T) {
	v := loadVectors(t)
	if v.MinPaddedSize != MinPaddedSize || v.MaxPlaintextSize != MaxPlaintextSize {
		t.Fatalf("vectors are for MinPaddedSize %d, MaxPlaintextSize %d", v.MinPaddedSize, v.MaxPlaintextSize)
	}
	for _, c := range v.Padding {
		if got := PaddedSize(c.BodyLen); got != c.PaddedLen {
			t.Errorf("PaddedSize(%d) = %d, vector says %d", c.BodyLen, got, c.PaddedLen)
		}
	}
	b := 0
	for n := 0; n <= MaxPlaintextSize; n++ {
		for b < len(v.Buckets) && v.Buckets[b] <= n {
			b++
		}
		if b == len(v.Buckets) {
			t.Fatalf("no bucket for a %d-byte body", n)
		}
		if got := PaddedSize(n); got != v.Buckets[b] {
			t.Fatalf("PaddedSize(%d) = %d, bucket table says %d", n, got, v.Buckets[b])
		}
	}
	if b != len(v.Buckets)-1 {
		t.Errorf("bucket table has %d buckets beyond the largest body", len(v.Buckets)-1-b)
	}
	for _, c := range v.PaddedExamples {
		body, padded := vectortest.Hex(t, c.Body), vectortest.Hex(t, c.Padded)
		got, err := Pad(nil, body)
		if err != nil || !bytes.Equal(got, padded) {
			t.Errorf("Pad(%x) = %x, %v; want %x", body, got, err, padded)
		}
		un, err := Unpad(padded)
		if err != nil || !bytes.Equal(un, body) {
			t.Errorf("Unpad of the %d-byte body's padding = %x, %v", len(body), un, err)
		}
	}
	for _, c := range v.InvalidPadding {
		if _, err := Unpad(vectortest.Hex(t, c.Padded)); !errors.Is(err, ErrMalformed) {
			t.Errorf("invalid padding (%s): %v, want ErrMalformed", c.Reason, err)
		}
	}
}

func TestVectorsEnvelopes(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.Envelopes {
		enc, body := vectortest.Hex(t, c.Encoding), vectortest.Hex(t, c.Body)
		e := &Envelope{Type: MessageType(c.Type), Body: body}
		if got := e.Marshal(); !bytes.Equal(got, enc) {
			t.Errorf("Marshal(%v, %d bytes) = %x, want %x", e.Type, len(body), got, enc)
		}
		d := mustUnmarshal(t, enc)
		if d.Type != e.Type || !bytes.Equal(d.Body, body) {
			t.Errorf("UnmarshalEnvelope(%x) = %v %x", enc, d.Type, d.Body)
		}
	}
	for _, c := range v.InvalidEnvelopes {
		want := map[string]error{"malformed": ErrMalformed, "version": ErrUnsupportedVersion}[c.Error]
		if want == nil {
			t.Fatalf("vector %q: unknown error kind %q", c.Reason, c.Error)
		}
		if _, err := UnmarshalEnvelope(vectortest.Hex(t, c.Encoding)); !errors.Is(err, want) {
			t.Errorf("invalid envelope (%s): %v, want %v", c.Reason, err, want)
		}
	}
}
