package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func mustUnmarshal(t *testing.T, enc []byte) *Envelope {
	t.Helper()
	e, err := UnmarshalEnvelope(enc)
	if err != nil {
		t.Fatalf("UnmarshalEnvelope(%x): %v", enc, err)
	}
	return e
}

// TestEnvelopeRoundTrip checks the §7.2 layout and that decoding then
// encoding gives back exactly the same bytes.
func TestEnvelopeRoundTrip(t *testing.T) {
	bodies := [][]byte{{}, {0}, []byte("hello"), bytes.Repeat([]byte{0xab}, 300), bytes.Repeat([]byte{1}, 1<<16+1), make([]byte, MaxEnvelopeBody)}
	for _, typ := range []MessageType{TypePrekey, TypeRatchet} {
		for _, b := range bodies {
			e := &Envelope{Type: typ, Body: b}
			enc := e.Marshal()
			n := len(b)
			want := append([]byte{Version, byte(typ), byte(n >> 16), byte(n >> 8), byte(n)}, b...)
			if !bytes.Equal(enc, want) {
				t.Fatalf("%v envelope of %d bytes: encoding differs from §7.2 layout", typ, n)
			}
			got := mustUnmarshal(t, enc)
			if got.Type != typ || !bytes.Equal(got.Body, b) {
				t.Fatalf("%v envelope of %d bytes does not round-trip", typ, n)
			}
			if !bytes.Equal(got.Marshal(), enc) {
				t.Fatalf("%v envelope of %d bytes re-encodes differently", typ, n)
			}
		}
	}
}

// TestEnvelopeRejectsStrictPrefixes: a truncated envelope (a short read, a
// cut connection) must never decode as a shorter valid one.
func TestEnvelopeRejectsStrictPrefixes(t *testing.T) {
	for _, b := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte{0x80}, 600)} {
		enc := (&Envelope{Type: TypeRatchet, Body: b}).Marshal()
		for n := range len(enc) {
			e, err := UnmarshalEnvelope(enc[:n])
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("prefix %d of %d: err = %v, want ErrMalformed", n, len(enc), err)
			}
			if e != nil {
				t.Errorf("prefix %d of %d: returned an envelope", n, len(enc))
			}
		}
	}
}

// TestEnvelopeRejectsUnknownType: types other than prekey and ratchet are
// refused, not passed on.
func TestEnvelopeRejectsUnknownType(t *testing.T) {
	for typ := range 256 {
		enc := (&Envelope{Type: MessageType(typ), Body: []byte("body")}).Marshal()
		e, err := UnmarshalEnvelope(enc)
		switch MessageType(typ) {
		case TypePrekey, TypeRatchet:
			if err != nil {
				t.Errorf("type %d: %v", typ, err)
			}
		default:
			if !errors.Is(err, ErrMalformed) || e != nil {
				t.Errorf("type %d: %v, %v; want ErrMalformed", typ, e, err)
			}
		}
	}
}

// TestEnvelopeRejectsUnknownVersion: a newer client's envelope is
// reported as such, so the user can be told to update.
func TestEnvelopeRejectsUnknownVersion(t *testing.T) {
	enc := (&Envelope{Type: TypeRatchet, Body: []byte("body")}).Marshal()
	for v := range 256 {
		if byte(v) == Version {
			continue
		}
		bad := bytes.Clone(enc)
		bad[0] = byte(v)
		for _, in := range [][]byte{bad, bad[:1]} {
			e, err := UnmarshalEnvelope(in)
			if !errors.Is(err, ErrUnsupportedVersion) || e != nil {
				t.Errorf("version %d: %v, %v; want ErrUnsupportedVersion", v, e, err)
			}
		}
	}
}

// TestEnvelopeRejectsTrailingBytes: every envelope has one encoding, so
// bytes after the body are refused rather than ignored.
func TestEnvelopeRejectsTrailingBytes(t *testing.T) {
	enc := (&Envelope{Type: TypePrekey, Body: []byte("body")}).Marshal()
	for _, extra := range [][]byte{{0}, {1}, enc} {
		e, err := UnmarshalEnvelope(append(bytes.Clone(enc), extra...))
		if !errors.Is(err, ErrMalformed) || e != nil {
			t.Errorf("trailing %x: %v, %v; want ErrMalformed", extra, e, err)
		}
		var de *DecodeError
		if errors.As(err, &de) && de.Reason != "trailing bytes" {
			t.Errorf("trailing %x: reason %q", extra, de.Reason)
		}
	}
}

// TestEnvelopeRejectsOversizeBody: a body over MaxEnvelopeBody is refused
// even though its uint24 length fits, bounding what one envelope can make
// a receiver buffer.
func TestEnvelopeRejectsOversizeBody(t *testing.T) {
	for _, n := range []int{MaxEnvelopeBody + 1, MaxEnvelopeBody + 4096, 1<<24 - 1} {
		enc := (&Envelope{Type: TypeRatchet, Body: make([]byte, n)}).Marshal()
		e, err := UnmarshalEnvelope(enc)
		if !errors.Is(err, ErrMalformed) || e != nil {
			t.Errorf("%d-byte body: %v, %v; want ErrMalformed", n, e, err)
		}
	}
	mustUnmarshal(t, (&Envelope{Type: TypeRatchet, Body: make([]byte, MaxEnvelopeBody)}).Marshal())
}

// TestEnvelopeBodyAliases documents that the decoded body aliases the
// input (no copy), as UnmarshalEnvelope says.
func TestEnvelopeBodyAliases(t *testing.T) {
	enc := (&Envelope{Type: TypeRatchet, Body: []byte("body")}).Marshal()
	e := mustUnmarshal(t, enc)
	enc[len(enc)-1] = 'Y'
	if string(e.Body) != "bodY" {
		t.Errorf("body %q does not alias the input", e.Body)
	}
}

// TestDecodeErrorNeverContainsInput: decode errors name the encoding and
// the reason, never the bytes, so logging an error leaks no ciphertext.
func TestDecodeErrorNeverContainsInput(t *testing.T) {
	secret := []byte("SECRETSECRET")
	inputs := [][]byte{
		append([]byte{Version, 9, 0, 0, byte(len(secret))}, secret...),
		append(append([]byte{Version, byte(TypeRatchet), 0, 0, byte(len(secret))}, secret...), secret...),
		append([]byte{7}, secret...),
	}
	for _, in := range inputs {
		_, err := UnmarshalEnvelope(in)
		if err == nil {
			t.Fatalf("%x accepted", in)
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "534543524554") {
			t.Errorf("error %q contains the input", err)
		}
		if !strings.HasPrefix(err.Error(), "wire: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
	err := Malformed("bundle", "trailing bytes")
	if err.Error() != "wire: malformed bundle: trailing bytes" || !errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("Malformed = %v", err)
	}
	if err := CheckVersion("bundle", Version); err != nil {
		t.Errorf("CheckVersion(Version) = %v", err)
	}
	if err := CheckVersion("bundle", Version+1); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("CheckVersion(Version+1) = %v", err)
	}
}

func TestMessageTypeString(t *testing.T) {
	for typ, want := range map[MessageType]string{TypePrekey: "prekey", TypeRatchet: "ratchet", 0: "MessageType(0)", 200: "MessageType(200)"} {
		if got := typ.String(); got != want {
			t.Errorf("MessageType(%d).String() = %q, want %q", byte(typ), got, want)
		}
	}
}
