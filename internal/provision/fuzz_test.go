package provision

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/vectortest"
	"github.com/parleyim/parley/internal/wire"
)

// The seed corpora in testdata/fuzz/ are written by TestGenerateVectors
// -update from the vectors.

func TestFuzzCorporaNotEmpty(t *testing.T) {
	for _, target := range []string{"FuzzParseOffer", "FuzzReceiverOpen", "FuzzParsePayload"} {
		if n := vectortest.Corpus(t, target); n < 4 {
			t.Errorf("%s has only %d seeds", target, n)
		}
	}
}

func decodeError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnsupportedVersion) {
		t.Fatalf("unclassified error %v", err)
	}
}

// FuzzParseOffer: parsing never panics, every failure is a decoding error,
// and whatever parses re-encodes to the same bytes and verifies against its
// own address (and no other).
func FuzzParseOffer(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseOffer(data)
		if err != nil {
			decodeError(t, err)
			return
		}
		if !bytes.Equal(o.Marshal(), data) {
			t.Fatal("re-encoding differs")
		}
		if _, err := VerifyOffer(o.Address(), data, 1<<62, o.Created()); err != nil {
			t.Fatalf("VerifyOffer against its own address: %v", err)
		}
		other := o.Address()
		other[0] ^= 1
		if _, err := VerifyOffer(other, data, 1<<62, o.Created()); !errors.Is(err, ErrAddressMismatch) {
			t.Fatalf("VerifyOffer against another address: %v", err)
		}
		if a, err := ParseCode(o.Code()); err != nil || a != o.Address() {
			t.Fatal("code does not round-trip")
		}
	})
}

// FuzzReceiverOpen: the first byte says how many of the committed vector
// frames to open first (modulo their number); the rest is the next frame.
// Open never panics, every failure is classified (decoding or security),
// and a success returns the type the frame header names.
func FuzzReceiverOpen(f *testing.F) {
	v := loadVectors(f)
	frames := make([][]byte, len(v.Frames))
	for i, vf := range v.Frames {
		frames[i] = vectortest.Hex(f, vf.Frame)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		r, _ := vectorReceiver(t, v)
		for _, fr := range frames[:int(data[0])%len(frames)] {
			if _, err := r.Open(fr); err != nil {
				t.Fatal(err)
			}
		}
		got, err := r.Open(data[1:])
		if err != nil {
			if got != nil {
				t.Fatal("a value with an error")
			}
			if !errors.Is(err, ErrSecurity) && !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnsupportedVersion) {
				t.Fatalf("unclassified error %v", err)
			}
			if _, err2 := r.Open(frames[0]); err2 == nil {
				t.Fatal("receiver went on after a failure")
			}
			return
		}
		p, err := parseFrame(data[1:])
		if err != nil {
			t.Fatalf("opened a frame that does not parse: %v", err)
		}
		ok := false
		switch got.(type) {
		case *Account:
			ok = p.typ == FrameAccount
		case []Contact:
			ok = p.typ == FrameContacts
		case []HistoryMessage:
			ok = p.typ == FrameHistory
		case *End:
			ok = p.typ == FrameEnd
		}
		if !ok {
			t.Fatalf("%s frame opened as %T", p.typ, got)
		}
	})
}

// FuzzParsePayload fuzzes the frame and payload decoders without the
// decryption in front of them (FuzzReceiverOpen reaches them only through
// HPKE, and slowly: every input replays the account frame's signature
// checks). The first byte picks the payload type; the rest is the
// plaintext. Whatever decodes re-encodes to the same bytes.
func FuzzParsePayload(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		if fr, err := parseFrame(data); err == nil {
			if re := append(frameHeader(fr.typ, fr.seq, fr.enc, len(fr.sealed)), fr.sealed...); !bytes.Equal(re, data) {
				t.Fatal("frame re-encoding differs")
			}
		} else {
			decodeError(t, err)
		}
		var re []byte
		var err error
		switch FrameType(data[0]) {
		case FrameAccount:
			var a *Account
			if a, err = parseAccount(data[1:]); err == nil {
				re, err = a.marshal()
			}
		case FrameContacts:
			var cs []Contact
			if cs, err = parseContacts(data[1:]); err == nil {
				re, err = marshalContacts(cs)
			}
		case FrameHistory:
			var ms []HistoryMessage
			if ms, err = parseHistory(data[1:]); err == nil {
				re, err = marshalHistory(ms)
			}
		case FrameEnd:
			var e *End
			if e, err = parseEnd(data[1:]); err == nil {
				re = e.marshal()
			}
		default:
			return
		}
		if err != nil {
			decodeError(t, err)
			return
		}
		if !bytes.Equal(re, data[1:]) {
			t.Fatalf("%s payload re-encoding differs", FrameType(data[0]))
		}
	})
}
