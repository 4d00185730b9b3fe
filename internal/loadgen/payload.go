package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// The payload is what a load envelope carries where a real one carries
// ciphertext (the body of a wire.Envelope of type TypeRatchet):
//
//	magic "plg1" (4) || message id (16) || sent, Unix ns, big-endian (8) || filler
//
// The filler is random bytes, so that the envelope is as incompressible as
// ciphertext. The sent time is read from the engine's clock (Engine.now),
// which is monotonic within one process.
const (
	payloadMagic = "plg1"
	// PayloadHeaderSize is the payload's fixed part.
	PayloadHeaderSize = len(payloadMagic) + 16 + 8
	// envelopeOverhead is what wire.Envelope adds around its body.
	envelopeOverhead = 5
	// MinEnvelopeSize is the smallest envelope the engine can send: the
	// wire header and the payload header, no filler.
	MinEnvelopeSize = envelopeOverhead + PayloadHeaderSize
	// MaxEnvelopeSize is the largest: the wire format's bound on a body.
	MaxEnvelopeSize = envelopeOverhead + wire.MaxEnvelopeBody
)

// ErrBadPayload reports an envelope whose body is not a load payload, or
// whose payload names another message than the envelope does.
var ErrBadPayload = errors.New("loadgen: not a load payload")

// Payload is the decoded fixed part of a payload.
type Payload struct {
	MessageID [16]byte
	Sent      time.Time
}

// appendHeader appends the payload header.
func (p *Payload) appendHeader(b []byte) []byte {
	b = append(b, payloadMagic...)
	b = append(b, p.MessageID[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(p.Sent.UnixNano()))
}

// Envelope returns the encoded wire.Envelope of size bytes carrying p and
// random filler. size must be in [MinEnvelopeSize, MaxEnvelopeSize].
func (p *Payload) Envelope(size int) ([]byte, error) {
	if size < MinEnvelopeSize || size > MaxEnvelopeSize {
		return nil, fmt.Errorf("loadgen: envelope size %d outside [%d, %d]", size, MinEnvelopeSize, MaxEnvelopeSize)
	}
	body := p.appendHeader(make([]byte, 0, size-envelopeOverhead))
	filler := body[len(body) : size-envelopeOverhead]
	primitives.Random(filler)
	body = body[:size-envelopeOverhead]
	e := wire.Envelope{Type: wire.TypeRatchet, Body: body}
	return e.Marshal(), nil
}

// ParsePayload decodes the payload of an envelope body (the encoded
// wire.Envelope as the server delivers it). Any failure is ErrBadPayload.
func ParsePayload(envelope []byte) (Payload, error) {
	e, err := wire.UnmarshalEnvelope(envelope)
	if err != nil {
		return Payload{}, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	b := e.Body
	if e.Type != wire.TypeRatchet || len(b) < PayloadHeaderSize || string(b[:len(payloadMagic)]) != payloadMagic {
		return Payload{}, ErrBadPayload
	}
	b = b[len(payloadMagic):]
	var p Payload
	copy(p.MessageID[:], b[:16])
	p.Sent = time.Unix(0, int64(binary.BigEndian.Uint64(b[16:24])))
	return p, nil
}
