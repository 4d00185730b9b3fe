package main

import (
	"fmt"

	"github.com/parleyim/parley/internal/wire"
)

// The wire vectors (testdata/vectors/wire.json) pin the envelope encoding
// (docs/protocol.md §7.2) and plaintext padding (§7.3), and the generator
// writes the seed corpora of internal/wire's fuzz targets from the same
// cases. The layout is mirrored by internal/wire/vectors_test.go.

type wirePaddingVector struct {
	BodyLen   int `json:"body_len"`
	PaddedLen int `json:"padded_len"`
}

type wirePaddedExample struct {
	Body   string `json:"body"`
	Padded string `json:"padded"`
}

type wireInvalidPadding struct {
	Padded string `json:"padded"`
	Reason string `json:"reason"`
}

type wireEnvelopeVector struct {
	Type     int    `json:"type"`
	Body     string `json:"body"`
	Encoding string `json:"encoding"`
}

type wireInvalidEnvelope struct {
	Encoding string `json:"encoding"`
	// Error is "malformed" (matches wire.ErrMalformed) or "version"
	// (matches wire.ErrUnsupportedVersion).
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

type wireVectors struct {
	Comment          string `json:"comment"`
	MinPaddedSize    int    `json:"min_padded_size"`
	MaxPlaintextSize int    `json:"max_plaintext_size"`
	// Buckets lists every padded length a body of 0..MaxPlaintextSize bytes
	// can have, ascending: a body of n bytes pads to the smallest bucket
	// greater than n. It pins PaddedSize completely.
	Buckets          []int                 `json:"buckets"`
	Padding          []wirePaddingVector   `json:"padding"`
	PaddedExamples   []wirePaddedExample   `json:"padded_examples"`
	InvalidPadding   []wireInvalidPadding  `json:"invalid_padding"`
	Envelopes        []wireEnvelopeVector  `json:"envelopes"`
	InvalidEnvelopes []wireInvalidEnvelope `json:"invalid_envelopes"`
}

func init() {
	register("wire", genWire)
}

func genWire() any {
	v := &wireVectors{
		Comment: "Known-answer vectors for internal/wire: envelopes (docs/protocol.md §7.2) and padding (§7.3). " +
			"Byte strings are hex. Regenerate with: go run ./internal/cmd/vectorgen",
		MinPaddedSize:    wire.MinPaddedSize,
		MaxPlaintextSize: wire.MaxPlaintextSize,
	}

	last := 0
	for n := 0; n <= wire.MaxPlaintextSize; n++ {
		if p := wire.PaddedSize(n); p != last {
			v.Buckets = append(v.Buckets, p)
			last = p
		}
	}
	lengths := []int{0, 1, 100, 254, 255, 256, 257, 271, 272, 300, 511, 512, 1000, 1023, 1024,
		4095, 4096, 65535, 65536, 70000, 100000, wire.MaxPlaintextSize - 1, wire.MaxPlaintextSize}
	for _, n := range lengths {
		v.Padding = append(v.Padding, wirePaddingVector{BodyLen: n, PaddedLen: wire.PaddedSize(n)})
	}

	var padCorpus [][]byte
	bodies := [][]byte{
		{},
		[]byte("hello"),
		{0x80},
		{0x00},
		{0x80, 0x00},
		fixed("wire pad 255", 255),
		append(fixed("wire pad 300", 299), 0x80),
		fixed("wire pad 600", 600),
	}
	for _, b := range bodies {
		p, err := wire.Pad(nil, b)
		if err != nil {
			panic(err)
		}
		v.PaddedExamples = append(v.PaddedExamples, wirePaddedExample{Body: hx(b), Padded: hx(p)})
		padCorpus = append(padCorpus, p)
	}
	good, _ := wire.Pad(nil, []byte("hello"))
	invalid := []struct {
		padded []byte
		reason string
	}{
		{nil, "empty"},
		{make([]byte, wire.MinPaddedSize), "all zeros: no 0x80 marker"},
		{bytesOf(0x41, wire.MinPaddedSize), "no 0x80 marker"},
		{good[:len(good)-1], "one byte short of the bucket"},
		{append(append([]byte{}, good...), 0), "one byte past the bucket"},
		{setByte(good, len(good)-1, 0x01), "non-zero byte after the 0x80 marker"},
		{setByte(good, 6, 0xff), "non-zero byte after the 0x80 marker"},
		{setByte(good, 5, 0x00), "0x80 marker replaced by zero"},
		{append([]byte("hello"), 0x80), "unpadded to the minimum size"},
		{bigPadded(512), "512 bytes for a 300-byte body whose bucket is smaller"},
	}
	for _, c := range invalid {
		v.InvalidPadding = append(v.InvalidPadding, wireInvalidPadding{Padded: hx(c.padded), Reason: c.reason})
		padCorpus = append(padCorpus, c.padded)
	}
	addCorpus("internal/wire", "FuzzUnpad", padCorpus...)

	var envCorpus [][]byte
	envs := []wire.Envelope{
		{Type: wire.TypePrekey, Body: []byte{}},
		{Type: wire.TypeRatchet, Body: []byte{}},
		{Type: wire.TypeRatchet, Body: []byte("x")},
		{Type: wire.TypePrekey, Body: fixed("wire envelope prekey", 700)},
		{Type: wire.TypeRatchet, Body: fixed("wire envelope ratchet", 300)},
	}
	for _, e := range envs {
		enc := e.Marshal()
		v.Envelopes = append(v.Envelopes, wireEnvelopeVector{Type: int(e.Type), Body: hx(e.Body), Encoding: hx(enc)})
		envCorpus = append(envCorpus, enc)
	}
	ok := (&wire.Envelope{Type: wire.TypeRatchet, Body: []byte("body")}).Marshal()
	badEnv := []struct {
		enc         []byte
		err, reason string
	}{
		{nil, "malformed", "empty"},
		{ok[:1], "malformed", "truncated after the version"},
		{ok[:4], "malformed", "truncated length"},
		{ok[:len(ok)-1], "malformed", "truncated body"},
		{append(append([]byte{}, ok...), 0), "malformed", "trailing bytes"},
		{setByte(ok, 1, 0), "malformed", "unknown type 0"},
		{setByte(ok, 1, 3), "malformed", "unknown type 3"},
		{setByte(ok, 1, 0xff), "malformed", "unknown type 255"},
		{setByte(ok, 0, 0), "version", "version 0"},
		{setByte(ok, 0, 2), "version", "version 2"},
		{[]byte{2}, "version", "version 2, nothing else"},
		{setByte(ok, 4, 5), "malformed", "length one larger than the body"},
		{setByte(ok, 4, 3), "malformed", "length one smaller than the body"},
		{[]byte{wire.Version, byte(wire.TypePrekey), 0xff, 0xff, 0xff}, "malformed", "length 2^24-1 with no body"},
	}
	for _, c := range badEnv {
		v.InvalidEnvelopes = append(v.InvalidEnvelopes, wireInvalidEnvelope{Encoding: hx(c.enc), Error: c.err, Reason: c.reason})
		envCorpus = append(envCorpus, c.enc)
	}
	addCorpus("internal/wire", "FuzzUnmarshalEnvelope", envCorpus...)
	return v
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// setByte returns a copy of b with b[i] = x.
func setByte(b []byte, i int, x byte) []byte {
	out := append([]byte{}, b...)
	out[i] = x
	return out
}

// bigPadded is a 300-byte body padded to size instead of its own bucket.
func bigPadded(size int) []byte {
	if wire.PaddedSize(300) == size {
		panic(fmt.Sprintf("vectorgen: 300-byte body already pads to %d", size))
	}
	out := make([]byte, size)
	copy(out, bytesOf(0x41, 300))
	out[300] = 0x80
	return out
}
