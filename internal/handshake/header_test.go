package handshake_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/parleyim/parley/internal/handshake"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// prekeyMessageSize is the encoding's size (docs/protocol.md §7.5), written
// out so that a layout change fails the test.
func prekeyMessageSize(oneTime bool, msg int) int {
	n := 1 + 16 + 16 + 4 + 1 + 4 + 32 + 1568 + 3 + msg
	if oneTime {
		n += 4
	}
	return n
}

// flagsOffset is the offset of the flags byte.
const flagsOffset = 1 + 16 + 16 + 4

func sampleMessages(t testing.TB) []*handshake.PrekeyMessage {
	t.Helper()
	alice, bob := newDevice(t, 0), newDevice(t, 1)
	var out []*handshake.PrekeyMessage
	for i, sh := range shapes {
		ini, err := handshake.Initiate(alice.keys, bob.pub, bob.bundle(sh.i, sh.j))
		if err != nil {
			t.Fatal(err)
		}
		msg := bytes.Repeat([]byte{byte(i + 1)}, 1+100*i)
		out = append(out, &handshake.PrekeyMessage{Header: ini.Header, Message: msg})
	}
	// Extreme IDs.
	h := copyHeader(out[0].Header)
	h.SignedID, h.PQID = 0, 0xffffffff
	id := prekey.ID(0x80000000)
	h.OneTimeID = &id
	out = append(out, &handshake.PrekeyMessage{Header: h, Message: []byte{0}})
	return out
}

func TestPrekeyMessageRoundTrip(t *testing.T) {
	for i, m := range sampleMessages(t) {
		enc := m.Marshal()
		if want := prekeyMessageSize(m.Header.OneTimeID != nil, len(m.Message)); len(enc) != want {
			t.Errorf("message %d: %d bytes, want %d", i, len(enc), want)
		}
		if enc[0] != wire.Version {
			t.Errorf("message %d: version byte %d", i, enc[0])
		}
		p, err := handshake.ParsePrekeyMessage(enc)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(p.Marshal(), enc) {
			t.Fatalf("message %d: re-encoding differs", i)
		}
		h, g := m.Header, p.Header
		if g.Sender != h.Sender || g.Recipient != h.Recipient || g.SignedID != h.SignedID || g.PQID != h.PQID ||
			!g.Ephemeral.Equal(h.Ephemeral) || !bytes.Equal(g.Ciphertext, h.Ciphertext) || !bytes.Equal(p.Message, m.Message) {
			t.Errorf("message %d: fields differ after round trip", i)
		}
		if (g.OneTimeID == nil) != (h.OneTimeID == nil) || (g.OneTimeID != nil && *g.OneTimeID != *h.OneTimeID) {
			t.Errorf("message %d: one-time ID differs", i)
		}
		// The ciphertext is copied, not aliased (the header outlives the
		// receive buffer in the session layer).
		clear(enc)
		if !bytes.Equal(g.Ciphertext, h.Ciphertext) {
			t.Errorf("message %d: parsed ciphertext aliases the input", i)
		}
	}
}

func TestParsePrekeyMessageRejectsStrictPrefixes(t *testing.T) {
	for i, m := range sampleMessages(t) {
		enc := m.Marshal()
		for n := range len(enc) {
			if _, err := handshake.ParsePrekeyMessage(enc[:n]); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("message %d: prefix of %d/%d bytes: err = %v, want ErrMalformed", i, n, len(enc), err)
			}
		}
	}
}

func TestParsePrekeyMessageRejectsMalformed(t *testing.T) {
	ms := sampleMessages(t)
	withOT, withoutOT := ms[0].Marshal(), ms[1].Marshal()
	if ms[1].Header.OneTimeID != nil || ms[0].Header.OneTimeID == nil {
		t.Fatal("test premise: message 0 has a one-time ID, message 1 none")
	}
	mutate := func(enc []byte, f func(b []byte) []byte) []byte { return f(bytes.Clone(enc)) }
	cases := map[string][]byte{
		"trailing byte":         append(bytes.Clone(withOT), 0),
		"trailing byte, no OTK": append(bytes.Clone(withoutOT), 0),
		"two messages":          append(bytes.Clone(withoutOT), withoutOT...),
		"one-time flag without ID": mutate(withoutOT, func(b []byte) []byte {
			b[flagsOffset] = 1
			return b
		}),
		"ID without one-time flag": mutate(withOT, func(b []byte) []byte {
			b[flagsOffset] = 0
			return b
		}),
		"length prefix one too long": mutate(withOT, func(b []byte) []byte {
			b[len(b)-len(ms[0].Message)-1]++
			return b
		}),
		"length prefix one too short": mutate(withOT, func(b []byte) []byte {
			b[len(b)-len(ms[0].Message)-1]--
			return b
		}),
	}
	for bit := 1; bit < 8; bit++ {
		cases[fmt.Sprintf("unknown flag bit %d", bit)] = mutate(withoutOT, func(b []byte) []byte { b[flagsOffset] |= 1 << bit; return b })
		cases[fmt.Sprintf("unknown flag bit %d with OTK", bit)] = mutate(withOT, func(b []byte) []byte { b[flagsOffset] |= 1 << bit; return b })
	}
	for i, m := range ms {
		empty := &handshake.PrekeyMessage{Header: m.Header}
		cases[fmt.Sprintf("empty ratchet message %d", i)] = empty.Marshal()
	}
	for name, enc := range cases {
		if _, err := handshake.ParsePrekeyMessage(enc); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	for _, v := range []byte{0, 2, 0xff} {
		enc := mutate(withOT, func(b []byte) []byte { b[0] = v; return b })
		if _, err := handshake.ParsePrekeyMessage(enc); !errors.Is(err, wire.ErrUnsupportedVersion) {
			t.Errorf("version %d: err = %v, want ErrUnsupportedVersion", v, err)
		}
	}
	// The smallest ratchet message is accepted.
	if _, err := handshake.ParsePrekeyMessage(ms[len(ms)-1].Marshal()); err != nil {
		t.Errorf("one-byte ratchet message: %v", err)
	}
}

// FuzzParsePrekeyMessage: no input panics, and every accepted input
// re-encodes to exactly the same bytes (no malleability).
func FuzzParsePrekeyMessage(f *testing.F) {
	for _, m := range sampleMessages(f) {
		f.Add(m.Marshal())
	}
	f.Add([]byte{})
	f.Add([]byte{wire.Version})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := handshake.ParsePrekeyMessage(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnsupportedVersion) {
				t.Fatalf("error matches neither ErrMalformed nor ErrUnsupportedVersion: %v", err)
			}
			return
		}
		if got := m.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", data, got)
		}
		if len(m.Header.Ciphertext) != primitives.MLKEM1024CiphertextSize || len(m.Message) == 0 {
			t.Fatalf("accepted a header with a %d-byte ciphertext and a %d-byte message", len(m.Header.Ciphertext), len(m.Message))
		}
	})
}

// TestHeaderEncoding: the header alone (as the session store keeps it) is
// the prekey message without its ratchet message, round-trips byte for
// byte, and rejects every strict prefix and trailing bytes.
func TestHeaderEncoding(t *testing.T) {
	for i, m := range sampleMessages(t) {
		enc := m.Header.Marshal()
		full := m.Marshal()
		if !bytes.HasPrefix(full, enc) || len(full) != len(enc)+3+len(m.Message) {
			t.Errorf("message %d: header encoding is not the prefix of the prekey message", i)
		}
		h, err := handshake.ParseHeader(enc)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(h.Marshal(), enc) {
			t.Errorf("message %d: header does not re-encode identically", i)
		}
		if !sameHeader(h, m.Header) {
			t.Errorf("message %d: header fields differ after round trip", i)
		}
		for n := range len(enc) {
			if _, err := handshake.ParseHeader(enc[:n]); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("message %d: prefix of %d/%d bytes: err = %v, want ErrMalformed", i, n, len(enc), err)
			}
		}
		if _, err := handshake.ParseHeader(append(bytes.Clone(enc), 0)); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("message %d: trailing byte: err = %v", i, err)
		}
		if _, err := handshake.ParseHeader(full); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("message %d: a whole prekey message parsed as a header: err = %v", i, err)
		}
		bad := bytes.Clone(enc)
		bad[flagsOffset] |= 0x02
		if _, err := handshake.ParseHeader(bad); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("message %d: unknown flag: err = %v", i, err)
		}
		bad[0] = 2
		if _, err := handshake.ParseHeader(bad); !errors.Is(err, wire.ErrUnsupportedVersion) {
			t.Errorf("message %d: version 2: err = %v", i, err)
		}
	}
}

// FuzzParseHeader: no input panics, and every accepted input re-encodes to
// exactly the same bytes.
func FuzzParseHeader(f *testing.F) {
	for _, m := range sampleMessages(f) {
		f.Add(m.Header.Marshal())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := handshake.ParseHeader(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnsupportedVersion) {
				t.Fatalf("error matches neither ErrMalformed nor ErrUnsupportedVersion: %v", err)
			}
			return
		}
		if got := h.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", data, got)
		}
	})
}
