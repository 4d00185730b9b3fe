package ratchet

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/vectortest"
	"github.com/parleyim/parley/internal/wire"
)

// sampleMessages returns a valid encoding for each flag combination.
func sampleMessages(t testing.TB) [][]byte {
	ek := primitives.GenerateMLKEM768().Public().Bytes()
	var out [][]byte
	for flags := 0; flags < 4; flags++ {
		m := &Message{PN: 7, N: 1 << 20, Ciphertext: make([]byte, 16+flags)}
		primitives.Random(m.RatchetKey[:])
		m.RatchetKey[31] &= 0x7f
		primitives.Random(m.Salt[:])
		if flags&flagPQKey != 0 {
			m.PQKey = ek
		}
		if flags&flagPQCiphertext != 0 {
			m.PQCiphertext = make([]byte, primitives.MLKEM768CiphertextSize)
			primitives.Random(m.PQCiphertext)
			primitives.Random(m.PQKeyID[:])
		}
		out = append(out, m.Marshal())
	}
	return out
}

func TestMessageRoundTrip(t *testing.T) {
	a, b := newPair(t, nil, nil)
	real, _, _ := pingPongUntil(t, a, b, func(m *Message) bool { return m.PQKey != nil })
	for _, enc := range append(sampleMessages(t), real) {
		m, err := ParseMessage(enc)
		if err != nil {
			t.Fatalf("ParseMessage: %v", err)
		}
		if !bytes.Equal(m.Marshal(), enc) {
			t.Fatal("decode then encode is not byte-exact")
		}
		for i := 0; i < len(enc); i++ {
			if _, err := ParseMessage(enc[:i]); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("prefix of %d/%d bytes: %v, want ErrMalformed", i, len(enc), err)
			}
		}
		if _, err := ParseMessage(append(append([]byte(nil), enc...), 0)); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
}

func TestMessageRejects(t *testing.T) {
	enc := sampleMessages(t)[3]
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), enc...)) }
	cases := map[string][]byte{
		"unknown flag":    mutate(func(b []byte) []byte { b[1] |= 0x80; return b }),
		"high bit in key": mutate(func(b []byte) []byte { b[2+31] |= 0x80; return b }),
		"key not below p": mutate(func(b []byte) []byte {
			copy(b[2:34], bytes.Repeat([]byte{0xff}, 31))
			b[33] = 0x7f
			b[2] = 0xed
			return b
		}),
		"EK coefficient ≥ q": mutate(func(b []byte) []byte { b[headerBaseSize], b[headerBaseSize+1] = 0xff, 0x0f; return b }),
		"short ciphertext": func() []byte {
			m, _ := ParseMessage(enc)
			m.Ciphertext = m.Ciphertext[:15]
			b := enc[:m.headerLen:m.headerLen]
			return appendUint24Bytes(b, m.Ciphertext)
		}(),
	}
	for name, b := range cases {
		if _, err := ParseMessage(b); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	b := mutate(func(b []byte) []byte { b[0] = 2; return b })
	if _, err := ParseMessage(b); !errors.Is(err, wire.ErrMalformed) || !errors.Is(err, wire.ErrUnsupportedVersion) {
		t.Errorf("wrong version: %v, want ErrMalformed and ErrUnsupportedVersion", err)
	}
}

// sampleStates returns encodings of states that exercise every optional
// field of the state encoding.
func sampleStates(t *testing.T) [][]byte {
	a, b := newPair(t, nil, nil)
	out := [][]byte{a.Marshal(), b.Marshal()}
	ms := [][]byte{mustEncrypt(t, a, "0"), mustEncrypt(t, a, "1"), mustEncrypt(t, a, "2")}
	mustDecrypt(t, b, ms[2], "2") // skipped keys
	out = append(out, b.Marshal())
	ek, from, to := pingPongUntil(t, a, b, func(m *Message) bool { return m.PQKey != nil })
	out = append(out, from.Marshal()) // pending key
	if _, err := to.Decrypt(ek, t0); err != nil {
		t.Fatal(err)
	}
	out = append(out, to.Marshal()) // answered, ciphertext on the sending chain
	// A recorded but unanswered peer key (reached after a rollback).
	stranger := primitives.GenerateMLKEM768().Public()
	to.pq.peer, to.pq.peerEK, to.pq.peerID = stranger, stranger.Bytes(), pqKeyID(stranger.Bytes())
	out = append(out, to.Marshal())
	return out
}

func TestStateRoundTrip(t *testing.T) {
	for _, enc := range sampleStates(t) {
		s, err := Unmarshal(enc)
		if err != nil {
			t.Fatalf("Unmarshal: %v", err)
		}
		if !bytes.Equal(s.Marshal(), enc) {
			t.Fatal("decode then encode is not byte-exact")
		}
		for i := 0; i < len(enc); i++ {
			if _, err := Unmarshal(enc[:i]); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("prefix of %d/%d bytes: %v, want ErrMalformed", i, len(enc), err)
			}
		}
		if _, err := Unmarshal(append(append([]byte(nil), enc...), 0)); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
}

func TestFuzzCorpora(t *testing.T) {
	vectortest.Corpus(t, "FuzzParseMessage")
	vectortest.Corpus(t, "FuzzUnmarshalState")
}

func FuzzParseMessage(f *testing.F) {
	for _, m := range sampleMessages(f) {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error does not match ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(m.Marshal(), b) {
			t.Fatal("accepted input does not re-encode to the same bytes")
		}
	})
}

func FuzzUnmarshalState(f *testing.F) {
	a, b := newPair(f, nil, nil)
	f.Add(a.Marshal())
	f.Add(b.Marshal())
	probe := mustEncrypt(f, a, "probe")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Unmarshal(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error does not match ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(s.Marshal(), data) {
			t.Fatal("accepted input does not re-encode to the same bytes")
		}
		// Whatever was accepted must not make the ratchet panic.
		s.Missing()
		_, _ = s.Decrypt(probe, t0)
		_, _ = s.Encrypt([]byte("x"), t0)
	})
}
