package main

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"
	"strings"
)

// The NATS bus vectors (testdata/vectors/nats.json) pin what parleyd nodes
// exchange over NATS (docs/server.md §5.5, internal/bus/nats): the
// subjects parley.mail.<id> and parley.claim.<id>, the mail payload and
// the claim payload. The bytes are built here from the documented layouts,
// independently of internal/bus/nats (which this file must not import);
// the layout is mirrored by internal/bus/nats/vectors_test.go. The
// generator also writes the seed corpora of that package's fuzz targets.

const (
	natsMailPrefix   = "parley.mail."
	natsClaimPrefix  = "parley.claim."
	natsOriginSize   = 8
	natsTokenSize    = 16
	natsClaimVersion = 1
)

// natsMailVector is a mail payload the encoder writes and the decoder
// reads back: origin (8 bytes) || seq (8 bytes, big-endian).
type natsMailVector struct {
	Origin  string `json:"origin"`
	Seq     uint64 `json:"seq"`
	Payload string `json:"payload"`
}

// natsMailWithoutSeq is a payload from a node of an older release: the
// origin alone. It decodes with seq 0 (unknown); no encoder writes it.
type natsMailWithoutSeq struct {
	Payload string `json:"payload"`
	Origin  string `json:"origin"`
}

type natsClaimVector struct {
	Origin  string `json:"origin"`
	Time    uint64 `json:"time"`
	Token   string `json:"token"`
	Payload string `json:"payload"`
}

type natsSubjectVector struct {
	// Kind is "mail" or "claim": which prefix the subject is parsed with.
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Subject string `json:"subject"`
}

// natsInvalid is an input the decoder rejects.
type natsInvalid struct {
	Payload string `json:"payload"`
	Reason  string `json:"reason"`
}

type natsInvalidSubject struct {
	Kind    string `json:"kind"`
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
}

type natsVectors struct {
	Comment      string `json:"comment"`
	MailPrefix   string `json:"mail_prefix"`
	ClaimPrefix  string `json:"claim_prefix"`
	OriginSize   int    `json:"origin_size"`
	MailSize     int    `json:"mail_size"`
	ClaimVersion int    `json:"claim_version"`
	ClaimSize    int    `json:"claim_size"`

	Mail            []natsMailVector     `json:"mail"`
	MailWithoutSeq  []natsMailWithoutSeq `json:"mail_without_seq"`
	InvalidMail     []natsInvalid        `json:"invalid_mail"`
	Claims          []natsClaimVector    `json:"claims"`
	InvalidClaims   []natsInvalid        `json:"invalid_claims"`
	Subjects        []natsSubjectVector  `json:"subjects"`
	InvalidSubjects []natsInvalidSubject `json:"invalid_subjects"`
}

func init() { register("nats", genNATS) }

func genNATS() any {
	v := &natsVectors{
		Comment: "Known-answer vectors for internal/bus/nats (docs/server.md §5.5): subjects parley.mail.{id} and " +
			"parley.claim.{id} (id: 16 bytes, lower-case hex); mail payload origin (8) || seq (8, big-endian), or the " +
			"origin alone from an older release (seq 0: unknown); claim payload version (1) || origin (8) || time " +
			"(8, big-endian) || token (16). Invalid subjects and claims are ignored by the bus; an invalid mail " +
			"payload on a valid subject wakes the device with seq unknown. Byte strings are hex. " +
			"Regenerate with: go run ./internal/cmd/vectorgen",
		MailPrefix:   natsMailPrefix,
		ClaimPrefix:  natsClaimPrefix,
		OriginSize:   natsOriginSize,
		MailSize:     natsOriginSize + 8,
		ClaimVersion: natsClaimVersion,
		ClaimSize:    1 + natsOriginSize + 8 + natsTokenSize,
	}

	origins := [][]byte{
		{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08},
		fixed("nats origin", natsOriginSize),
	}

	// Mail.
	var mailCorpus [][]byte
	mail := func(origin []byte, seq uint64) []byte {
		return binary.BigEndian.AppendUint64(slices.Clone(origin), seq)
	}
	for i, seq := range []uint64{0, 1, 2, 0x0102030405060708, 1 << 63, math.MaxUint64} {
		o := origins[i%len(origins)]
		p := mail(o, seq)
		v.Mail = append(v.Mail, natsMailVector{Origin: hx(o), Seq: seq, Payload: hx(p)})
		mailCorpus = append(mailCorpus, p)
	}
	for _, o := range origins {
		v.MailWithoutSeq = append(v.MailWithoutSeq, natsMailWithoutSeq{Payload: hx(o), Origin: hx(o)})
		mailCorpus = append(mailCorpus, o)
	}
	good := mail(origins[0], 1)
	for _, c := range []struct {
		payload []byte
		reason  string
	}{
		{nil, "empty"},
		{good[:1], "1 byte"},
		{good[:natsOriginSize-1], "origin one byte short"},
		{good[:natsOriginSize+1], "origin and 1 byte of seq"},
		{good[:len(good)-1], "seq one byte short"},
		{append(slices.Clone(good), 0), "one byte past seq"},
		{append(slices.Clone(good), good...), "two payloads back to back"},
	} {
		v.InvalidMail = append(v.InvalidMail, natsInvalid{Payload: hx(c.payload), Reason: c.reason})
		mailCorpus = append(mailCorpus, c.payload)
	}
	addCorpus("internal/bus/nats", "FuzzParseMail", mailCorpus...)

	// Claims.
	var claimCorpus [][]byte
	claim := func(origin []byte, time uint64, token []byte) []byte {
		p := []byte{natsClaimVersion}
		p = append(p, origin...)
		p = binary.BigEndian.AppendUint64(p, time)
		return append(p, token...)
	}
	tokens := [][]byte{
		make([]byte, natsTokenSize),
		bytesOf(0xff, natsTokenSize),
		fixed("nats token", natsTokenSize),
	}
	for i, time := range []uint64{0, 1, 1_795_000_000_123_456_789, 1 << 63, math.MaxUint64} {
		o, tok := origins[i%len(origins)], tokens[i%len(tokens)]
		p := claim(o, time, tok)
		v.Claims = append(v.Claims, natsClaimVector{Origin: hx(o), Time: time, Token: hx(tok), Payload: hx(p)})
		claimCorpus = append(claimCorpus, p)
	}
	ok := claim(origins[1], 1_795_000_000_123_456_789, tokens[2])
	for _, c := range []struct {
		payload []byte
		reason  string
	}{
		{nil, "empty"},
		{[]byte{natsClaimVersion}, "version only"},
		{ok[:len(ok)-1], "token one byte short"},
		{append(slices.Clone(ok), 0), "one byte past the token"},
		{ok[1:], "no version byte"},
		{setByte(ok, 0, 0), "version 0"},
		{setByte(ok, 0, 2), "version 2"},
		{setByte(ok, 0, 0xff), "version 255"},
		{mail(origins[1], 1), "a mail payload"},
		{origins[1], "an origin alone"},
	} {
		v.InvalidClaims = append(v.InvalidClaims, natsInvalid{Payload: hx(c.payload), Reason: c.reason})
		claimCorpus = append(claimCorpus, c.payload)
	}
	addCorpus("internal/bus/nats", "FuzzParseClaim", claimCorpus...)

	// Subjects.
	var subjectCorpus [][]byte
	ids := [][]byte{
		make([]byte, 16),
		bytesOf(0xff, 16),
		{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10},
		fixed("nats device id", 16),
	}
	for _, id := range ids {
		for _, k := range []struct{ kind, prefix string }{{"mail", natsMailPrefix}, {"claim", natsClaimPrefix}} {
			s := k.prefix + hex.EncodeToString(id)
			v.Subjects = append(v.Subjects, natsSubjectVector{Kind: k.kind, ID: hx(id), Subject: s})
			subjectCorpus = append(subjectCorpus, []byte(s))
		}
	}
	id := hex.EncodeToString(ids[2])
	for _, c := range []struct {
		kind, subject, reason string
	}{
		{"mail", natsMailPrefix + strings.ToUpper(id), "upper-case hex"},
		{"mail", natsMailPrefix + id[:31] + "F", "one upper-case hex digit"},
		{"claim", natsClaimPrefix + strings.ToUpper(id), "upper-case hex"},
		{"mail", natsClaimPrefix + id, "a claim subject parsed as mail"},
		{"claim", natsMailPrefix + id, "a mail subject parsed as claim"},
		{"mail", "parley.Mail." + id, "upper-case prefix"},
		{"mail", "parley.mail" + id + "0", "no dot after the prefix"},
		{"mail", "parley.mails" + id, "longer family name"},
		{"claim", "x" + natsClaimPrefix + id[1:], "wrong first byte"},
		{"mail", natsMailPrefix, "no id"},
		{"mail", natsMailPrefix + "*", "wildcard"},
		{"mail", natsMailPrefix + id[:30], "id one byte short"},
		{"mail", natsMailPrefix + id[:31], "id one hex digit short"},
		{"claim", natsClaimPrefix + id + "0", "id one hex digit long"},
		{"claim", natsClaimPrefix + id + "00", "id one byte long"},
		{"mail", natsMailPrefix + id + ".x", "a token after the id"},
		{"mail", natsMailPrefix + id[:31] + "g", "non-hex digit g"},
		{"mail", natsMailPrefix + id[:16] + " " + id[17:], "a space in the id"},
		{"claim", natsClaimPrefix + "0x" + id[2:], "0x in the id"},
		{"claim", natsClaimPrefix + id[:31] + "\x00", "NUL in the id"},
		{"mail", "", "empty"},
	} {
		v.InvalidSubjects = append(v.InvalidSubjects, natsInvalidSubject{Kind: c.kind, Subject: c.subject, Reason: c.reason})
		subjectCorpus = append(subjectCorpus, []byte(c.subject))
	}
	addCorpus("internal/bus/nats", "FuzzParseSubject", subjectCorpus...)
	return v
}
