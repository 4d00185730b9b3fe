package nats

import (
	"bytes"
	"testing"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/vectortest"
)

// The known-answer vectors in testdata/vectors/nats.json, written by
// internal/cmd/vectorgen/busnats.go (whose types these mirror) from the
// documented layouts, independently of this package.

type vectors struct {
	MailPrefix   string `json:"mail_prefix"`
	ClaimPrefix  string `json:"claim_prefix"`
	OriginSize   int    `json:"origin_size"`
	MailSize     int    `json:"mail_size"`
	ClaimVersion int    `json:"claim_version"`
	ClaimSize    int    `json:"claim_size"`
	Mail         []struct {
		Origin  string `json:"origin"`
		Seq     uint64 `json:"seq"`
		Payload string `json:"payload"`
	} `json:"mail"`
	MailWithoutSeq []struct {
		Payload string `json:"payload"`
		Origin  string `json:"origin"`
	} `json:"mail_without_seq"`
	InvalidMail []invalidVector `json:"invalid_mail"`
	Claims      []struct {
		Origin  string `json:"origin"`
		Time    uint64 `json:"time"`
		Token   string `json:"token"`
		Payload string `json:"payload"`
	} `json:"claims"`
	InvalidClaims []invalidVector `json:"invalid_claims"`
	Subjects      []struct {
		Kind    string `json:"kind"`
		ID      string `json:"id"`
		Subject string `json:"subject"`
	} `json:"subjects"`
	InvalidSubjects []struct {
		Kind    string `json:"kind"`
		Subject string `json:"subject"`
		Reason  string `json:"reason"`
	} `json:"invalid_subjects"`
}

type invalidVector struct {
	Payload string `json:"payload"`
	Reason  string `json:"reason"`
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	var v vectors
	vectortest.Load(t, "nats", &v)
	if len(v.Mail) == 0 || len(v.MailWithoutSeq) == 0 || len(v.InvalidMail) == 0 || len(v.Claims) == 0 ||
		len(v.InvalidClaims) == 0 || len(v.Subjects) == 0 || len(v.InvalidSubjects) == 0 {
		t.Fatal("nats.json is missing a section; regenerate with go run ./internal/cmd/vectorgen")
	}
	return &v
}

// vectorOrigin decodes an origin from a vector, failing unless it has originSize
// bytes.
func vectorOrigin(t *testing.T, s string) [originSize]byte {
	t.Helper()
	b := vectortest.Hex(t, s)
	if len(b) != originSize {
		t.Fatalf("vector origin %s has %d bytes", s, len(b))
	}
	return [originSize]byte(b)
}

func TestVectorsConstants(t *testing.T) {
	v := loadVectors(t)
	if v.MailPrefix != mailPrefix || v.ClaimPrefix != claimPrefix || v.OriginSize != originSize ||
		v.MailSize != mailSize || v.ClaimVersion != claimVersion || v.ClaimSize != claimSize {
		t.Fatalf("vectors are for prefixes %q %q, origin %d, mail %d, claim version %d size %d",
			v.MailPrefix, v.ClaimPrefix, v.OriginSize, v.MailSize, v.ClaimVersion, v.ClaimSize)
	}
}

// TestVectorsMail: appendMail writes exactly the vector's bytes (after
// whatever dst held), parseMail reads back the vector's origin and seq, an
// origin alone (an older release) reads as seq 0, and every other length
// is rejected.
func TestVectorsMail(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.Mail {
		origin, payload := vectorOrigin(t, c.Origin), vectortest.Hex(t, c.Payload)
		if got := appendMail(nil, origin, c.Seq); !bytes.Equal(got, payload) {
			t.Errorf("appendMail(%x, %d) = %x, want %x", origin, c.Seq, got, payload)
		}
		if got := appendMail([]byte("dst"), origin, c.Seq); string(got[:3]) != "dst" || !bytes.Equal(got[3:], payload) {
			t.Errorf("appendMail after 3 bytes = %x, want 647374%x", got, payload)
		}
		o, seq, ok := parseMail(payload)
		if !ok || o != origin || seq != c.Seq {
			t.Errorf("parseMail(%x) = %x, %d, %v; want %x, %d, true", payload, o, seq, ok, origin, c.Seq)
		}
	}
	for _, c := range v.MailWithoutSeq {
		origin, payload := vectorOrigin(t, c.Origin), vectortest.Hex(t, c.Payload)
		o, seq, ok := parseMail(payload)
		if !ok || o != origin || seq != 0 {
			t.Errorf("parseMail(%x) from an older release = %x, %d, %v; want %x, 0, true", payload, o, seq, ok, origin)
		}
	}
	for _, c := range v.InvalidMail {
		payload := vectortest.Hex(t, c.Payload)
		if o, seq, ok := parseMail(payload); ok || o != ([originSize]byte{}) || seq != 0 {
			t.Errorf("invalid mail (%s) %x: parseMail = %x, %d, %v; want rejected", c.Reason, payload, o, seq, ok)
		}
	}
}

// TestVectorsClaims: appendClaim writes exactly the vector's bytes and
// parseClaim reads back its origin, time and token; invalid claims are
// rejected.
func TestVectorsClaims(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.Claims {
		origin, payload := vectorOrigin(t, c.Origin), vectortest.Hex(t, c.Payload)
		tok := vectortest.Hex(t, c.Token)
		if len(tok) != tokenSize {
			t.Fatalf("vector token %s has %d bytes", c.Token, len(tok))
		}
		s := stamp{time: c.Time, token: [tokenSize]byte(tok)}
		if got := appendClaim(nil, origin, s); !bytes.Equal(got, payload) {
			t.Errorf("appendClaim(%x, %d, %x) = %x, want %x", origin, c.Time, tok, got, payload)
		}
		if got := appendClaim([]byte("dst"), origin, s); string(got[:3]) != "dst" || !bytes.Equal(got[3:], payload) {
			t.Errorf("appendClaim after 3 bytes = %x, want 647374%x", got, payload)
		}
		o, ps, ok := parseClaim(payload)
		if !ok || o != origin || ps != s {
			t.Errorf("parseClaim(%x) = %x, %+v, %v; want %x, %+v, true", payload, o, ps, ok, origin, s)
		}
	}
	for _, c := range v.InvalidClaims {
		payload := vectortest.Hex(t, c.Payload)
		if o, s, ok := parseClaim(payload); ok || o != ([originSize]byte{}) || s != (stamp{}) {
			t.Errorf("invalid claim (%s) %x: parseClaim = %x, %+v, %v; want rejected", c.Reason, payload, o, s, ok)
		}
	}
}

// TestVectorsSubjects: subject writes exactly the vector's subject, and
// parseSubject reads back its id under its own prefix only; invalid
// subjects are rejected under the vector's prefix.
func TestVectorsSubjects(t *testing.T) {
	v := loadVectors(t)
	prefixes := map[string]string{"mail": mailPrefix, "claim": claimPrefix}
	other := map[string]string{"mail": claimPrefix, "claim": mailPrefix}
	for _, c := range v.Subjects {
		prefix := prefixes[c.Kind]
		if prefix == "" {
			t.Fatalf("vector %q: unknown kind %q", c.Subject, c.Kind)
		}
		b := vectortest.Hex(t, c.ID)
		if len(b) != len(store.DeviceID{}) {
			t.Fatalf("vector id %s has %d bytes", c.ID, len(b))
		}
		id := store.DeviceID(b)
		if got := subject(prefix, id); got != c.Subject {
			t.Errorf("subject(%q, %x) = %q, want %q", prefix, id, got, c.Subject)
		}
		if got, ok := parseSubject(c.Subject, prefix); !ok || got != id {
			t.Errorf("parseSubject(%q, %q) = %x, %v; want %x, true", c.Subject, prefix, got, ok, id)
		}
		if got, ok := parseSubject(c.Subject, other[c.Kind]); ok {
			t.Errorf("parseSubject(%q, %q) = %x: accepted under the other prefix", c.Subject, other[c.Kind], got)
		}
	}
	for _, c := range v.InvalidSubjects {
		prefix := prefixes[c.Kind]
		if prefix == "" {
			t.Fatalf("vector %q: unknown kind %q", c.Subject, c.Kind)
		}
		if id, ok := parseSubject(c.Subject, prefix); ok {
			t.Errorf("invalid subject (%s) %q: parseSubject(%q) = %x, accepted", c.Reason, c.Subject, prefix, id)
		}
	}
}
