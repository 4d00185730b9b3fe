package backup

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode"

	"github.com/parleyim/parley/internal/vectortest"
)

// The seed corpora under testdata/fuzz/ are written by
// internal/cmd/vectorgen from the vectors.

func TestFuzzCorporaLoad(t *testing.T) {
	for _, target := range []string{"FuzzParseRecoveryKey", "FuzzParseShare", "FuzzReadPlaintext"} {
		if n := vectortest.Corpus(t, target); n < 4 {
			t.Errorf("%s has only %d seeds", target, n)
		}
	}
}

// FuzzParseRecoveryKey: parsing never panics, every failure is a
// *RecoveryKeyError, and a success is exactly the canonical written form
// up to case, separators and look-alikes.
func FuzzParseRecoveryKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseRecoveryKey(string(data))
		if err != nil {
			var e *RecoveryKeyError
			if !errors.As(err, &e) || !errors.Is(err, ErrRecoveryKeyTypo) || e.Group < 0 || e.Group > keyGroups {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		canon := strings.Map(func(r rune) rune {
			switch {
			case r == '-' || unicode.IsSpace(r):
				return -1
			case r == 'o' || r == 'O':
				return '0'
			case r == 'i' || r == 'I' || r == 'l' || r == 'L':
				return '1'
			}
			return unicode.ToUpper(r)
		}, string(data))
		if canon != strings.ReplaceAll(k.String(), "-", "") {
			t.Fatalf("%q parsed to a key written %s", data, k)
		}
	})
}

// FuzzParseShare: never panics, failures are classified, and a parsed
// share re-encodes to the same bytes.
func FuzzParseShare(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseShare(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedShare) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !bytes.Equal(s.Marshal(), data) {
			t.Fatal("re-encoding differs")
		}
	})
}

// FuzzReadPlaintext reads a decrypted archive (the record stream inside
// the age file): it never panics, every failure is one of the package's
// errors, and an archive read to its end re-encodes to exactly the same
// bytes, so the format is not malleable.
func FuzzReadPlaintext(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := newPlainReader(bytes.NewReader(data), nil, nil)
		if err != nil {
			classified(t, err)
			return
		}
		h := r.Header()
		out := appendPrefix(nil, FormatVersion)
		out = appendHeader(out, &h)
		var counts trailer
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				classified(t, err)
				return
			}
			switch rec.Kind {
			case KindContact:
				out = appendContact(out, &rec.Contact)
				counts.contacts++
			case KindSetting:
				out = appendSetting(out, &rec.Setting)
				counts.settings++
			case KindMessage:
				var ok bool
				if out, ok = appendMessage(out, &rec.Message); !ok {
					t.Fatalf("the Reader returned a message whose names are not UTF-8: %q, %q", rec.Message.Conversation, rec.Message.Sender)
				}
				counts.messages++
			default:
				t.Fatalf("record of kind %v", rec.Kind)
			}
		}
		out = appendTrailer(out, counts)
		if !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", out, data)
		}
	})
}

func classified(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("unclassified error %v", err)
	}
}
