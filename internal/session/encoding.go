package session

import (
	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/handshake"
	"github.com/parleyim/parley/internal/ratchet"
	"github.com/parleyim/parley/internal/wire"
)

// Record encoding, for the client's sealed store (docs/protocol.md §7.6):
//
//	version (1) || has-active (1: 0 or 1) || [entry] || archived count (1) || entry*
//	entry = flags (1: bit 0 initiator, bit 1 header follows) || base (32)
//	        [uint16 length || handshake header] || uint32 length || ratchet state
const (
	recordType        = "session record"
	entryInitiator    = 0x01
	entryHasHeader    = 0x02
	maxRatchetStateSz = 16 << 20
)

// Marshal encodes the record. The output holds secrets; store it sealed.
func (r *Record) Marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	if r.active != nil {
		b.AddUint8(1)
		addEntry(&b, r.active)
	} else {
		b.AddUint8(0)
	}
	b.AddUint8(uint8(len(r.archived)))
	for _, e := range r.archived {
		addEntry(&b, e)
	}
	return b.BytesOrPanic()
}

func addEntry(b *cryptobyte.Builder, e *entry) {
	var flags uint8
	if e.initiator {
		flags |= entryInitiator
	}
	if e.header != nil {
		flags |= entryHasHeader
	}
	b.AddUint8(flags)
	b.AddBytes(e.base[:])
	if e.header != nil {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.header.Marshal()) })
	}
	st := e.state.Marshal()
	b.AddUint32(uint32(len(st)))
	b.AddBytes(st)
}

// Unmarshal decodes a record written by Marshal.
func Unmarshal(data []byte) (*Record, error) {
	s := cryptobyte.String(data)
	var v, hasActive, n uint8
	if !s.ReadUint8(&v) {
		return nil, wire.Malformed(recordType, "truncated")
	}
	if err := wire.CheckVersion(recordType, v); err != nil {
		return nil, err
	}
	r := &Record{}
	if !s.ReadUint8(&hasActive) || hasActive > 1 {
		return nil, wire.Malformed(recordType, "bad active flag")
	}
	if hasActive == 1 {
		e, err := readEntry(&s)
		if err != nil {
			return nil, err
		}
		r.active = e
	}
	if !s.ReadUint8(&n) {
		return nil, wire.Malformed(recordType, "truncated")
	}
	if n > MaxArchivedSessions {
		return nil, wire.Malformed(recordType, "too many archived sessions")
	}
	for range int(n) {
		e, err := readEntry(&s)
		if err != nil {
			return nil, err
		}
		r.archived = append(r.archived, e)
	}
	if !s.Empty() {
		return nil, wire.Malformed(recordType, "trailing bytes")
	}
	return r, nil
}

func readEntry(s *cryptobyte.String) (*entry, error) {
	bad := func(reason string) (*entry, error) { return nil, wire.Malformed(recordType, reason) }
	var flags uint8
	e := &entry{}
	if !s.ReadUint8(&flags) || !s.CopyBytes(e.base[:]) {
		return bad("truncated")
	}
	if flags&^(entryInitiator|entryHasHeader) != 0 {
		return bad("unknown entry flags")
	}
	e.initiator = flags&entryInitiator != 0
	if flags&entryHasHeader != 0 {
		if !e.initiator {
			return bad("handshake header on a session the peer started")
		}
		var hb cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&hb) {
			return bad("truncated")
		}
		h, err := handshake.ParseHeader(hb)
		if err != nil {
			return nil, err
		}
		e.header = h
	}
	var n uint32
	var st []byte
	if !s.ReadUint32(&n) {
		return bad("truncated")
	}
	if n > maxRatchetStateSz {
		return bad("ratchet state too large")
	}
	if !s.ReadBytes(&st, int(n)) {
		return bad("truncated")
	}
	state, err := ratchet.Unmarshal(st)
	if err != nil {
		return nil, err
	}
	e.state = state
	return e, nil
}
