// Package session keeps the pairwise sessions between one local device and
// one remote device, as specified in docs/protocol.md §6: it starts
// sessions from prekey bundles, accepts sessions started by the peer,
// resolves simultaneous initiation deterministically, resets, and encodes
// its state for the client's sealed store.
//
// The handshake turns keys into a secret, the ratchet turns a secret into
// messages; this layer chooses which ratchet state to use and keep.
package session

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/parleyim/parley/internal/handshake"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/ratchet"
	"github.com/parleyim/parley/internal/wire"
)

// MaxArchivedSessions is how many superseded sessions a record keeps for
// decrypting messages still in flight on them (after a reset or a
// simultaneous initiation). The oldest is dropped first.
const MaxArchivedSessions = 4

var (
	// ErrNoSession reports an Encrypt with no active session: fetch the
	// remote device's bundle and call Initiate.
	ErrNoSession = errors.New("session: no session with this device; fetch its prekey bundle and initiate")
	// ErrNoMatchingSession reports a ratchet message that no session in the
	// record can decrypt: the sender's session is unknown here (state lost,
	// or it was archived and dropped). The sender should reset.
	ErrNoMatchingSession = errors.New("session: no session with this device can decrypt the message; ask the sender to reset the session")
)

// entry is one session: a ratchet state plus what the session layer needs.
type entry struct {
	state *ratchet.State
	// base is the initiator's ephemeral key: both sides name the session
	// by it.
	base [primitives.X25519KeySize]byte
	// initiator is true if this device started the session.
	initiator bool
	// header is set while an initiated session is unconfirmed: every
	// message carries it, so that whichever arrives first starts the
	// session at the peer (PQXDH §3.3; Signal's "pending prekey").
	header *handshake.Header
}

// confirmed reports whether the peer has been heard from on this session.
func (e *entry) confirmed() bool { return !e.initiator || e.state.Received() }

// Record holds the sessions with one remote device.
type Record struct {
	active   *entry
	archived []*entry // newest first
	// last is the session that decrypted the most recent message, for
	// PromoteLast. Not stored: callers promote before they persist.
	last *entry
}

// New returns an empty record.
func New() *Record { return &Record{} }

// HasSession reports whether the record has an active session to encrypt
// with.
func (r *Record) HasSession() bool { return r.active != nil }

// Confirmed reports whether the active session has been confirmed by the
// peer (always true for a session the peer started).
func (r *Record) Confirmed() bool { return r.active != nil && r.active.confirmed() }

// Reset archives the active session; the next Encrypt needs a new Initiate.
// Use it when the peer reports it cannot decrypt (lost state).
func (r *Record) Reset() {
	if r.active != nil {
		r.archive(r.active)
		r.active = nil
	}
}

func (r *Record) archive(e *entry) {
	r.archived = append([]*entry{e}, r.archived...)
	if len(r.archived) > MaxArchivedSessions {
		r.archived = r.archived[:MaxArchivedSessions]
	}
}

// Initiate starts a new session with remote from its bundle (which
// handshake.Initiate verifies against remote's signing key) and makes it
// active, archiving any previous one.
func (r *Record) Initiate(self *identity.DeviceKeys, remote *identity.DevicePublic, b *prekey.Bundle, now time.Time) error {
	in, err := handshake.Initiate(self, remote, b)
	if err != nil {
		return err
	}
	st, err := ratchet.NewInitiator(&in.SharedSecret, in.AD, in.RatchetKey, now)
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	e := &entry{state: st, initiator: true, header: in.Header}
	copy(e.base[:], in.Header.Ephemeral.Bytes())
	r.Reset()
	r.active = e
	return nil
}

// Encrypt pads plaintext and encrypts it on the active session.
func (r *Record) Encrypt(plaintext []byte, now time.Time) (*wire.Envelope, error) {
	if r.active == nil {
		return nil, ErrNoSession
	}
	padded, err := wire.Pad(nil, plaintext)
	if err != nil {
		return nil, err
	}
	msg, err := r.active.state.Encrypt(padded, now)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	e := r.active
	if e.header != nil && e.confirmed() {
		e.header = nil
	}
	if e.header != nil {
		pm := &handshake.PrekeyMessage{Header: e.header, Message: msg}
		return &wire.Envelope{Type: wire.TypePrekey, Body: pm.Marshal()}, nil
	}
	return &wire.Envelope{Type: wire.TypeRatchet, Body: msg}, nil
}

// Decrypt decrypts an envelope from remote, whose keys the caller took from
// remote's verified device list. On any error the record and the prekey
// set are unchanged. A message already received returns an error matching
// ratchet.ErrDuplicate, which callers treat as a de-duplicated delivery.
func (r *Record) Decrypt(env *wire.Envelope, self *identity.DeviceKeys, prekeys *prekey.Set, remote *identity.DevicePublic, now time.Time) ([]byte, error) {
	var padded []byte
	var err error
	switch env.Type {
	case wire.TypePrekey:
		padded, err = r.decryptPrekey(env.Body, self, prekeys, remote, now)
	case wire.TypeRatchet:
		padded, err = r.decryptRatchet(env.Body, self, remote, now)
	default:
		return nil, wire.Malformed("envelope", "unknown type")
	}
	if err != nil {
		return nil, err
	}
	return wire.Unpad(padded)
}

func (r *Record) entries() []*entry {
	var es []*entry
	if r.active != nil {
		es = append(es, r.active)
	}
	return append(es, r.archived...)
}

func (r *Record) decryptRatchet(body []byte, self *identity.DeviceKeys, remote *identity.DevicePublic, now time.Time) ([]byte, error) {
	var firstErr error
	for _, e := range r.entries() {
		pt, err := e.state.Decrypt(body, now)
		if err == nil {
			r.received(e, self, remote)
			return pt, nil
		}
		// A duplicate is an answer, not a miss: stop looking.
		if errors.Is(err, ratchet.ErrDuplicate) || errors.Is(err, wire.ErrMalformed) {
			return nil, fmt.Errorf("session: %w", err)
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		return nil, ErrNoMatchingSession
	}
	return nil, fmt.Errorf("%w: %w", ErrNoMatchingSession, firstErr)
}

func (r *Record) decryptPrekey(body []byte, self *identity.DeviceKeys, prekeys *prekey.Set, remote *identity.DevicePublic, now time.Time) ([]byte, error) {
	pm, err := handshake.ParsePrekeyMessage(body)
	if err != nil {
		return nil, err
	}
	var base [primitives.X25519KeySize]byte
	copy(base[:], pm.Header.Ephemeral.Bytes())

	// A later message of a session we already accepted still carries the
	// handshake header until its sender hears from us.
	for _, e := range r.entries() {
		if e.base == base && !e.initiator {
			pt, err := e.state.Decrypt(pm.Message, now)
			if err != nil {
				return nil, fmt.Errorf("session: %w", err)
			}
			r.received(e, self, remote)
			return pt, nil
		}
	}

	resp, err := handshake.Respond(self, prekeys, remote, pm.Header)
	if err != nil {
		return nil, err
	}
	st := ratchet.NewResponder(&resp.SharedSecret, resp.AD, resp.RatchetKey, now)
	pt, err := st.Decrypt(pm.Message, now)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	prekeys.Consume(resp.Prekeys)
	e := &entry{state: st, base: base}
	r.adopt(e, self, remote)
	r.last = e
	return pt, nil
}

// smaller reports whether this device's fingerprint is the smaller of the
// two (bytewise): the device whose choices the other follows (§6.3).
func smaller(self *identity.DeviceKeys, remote *identity.DevicePublic) bool {
	sf, rf := self.Public().Fingerprint(), remote.Fingerprint()
	return bytes.Compare(sf[:], rf[:]) < 0
}

// adopt installs e, a session the peer started and this device sees for
// the first time (§6.3):
//
//   - with no active session, or an active one the peer started, e replaces
//     it: the peer's newer session wins;
//   - with an active session this device started, both devices started a
//     session without having seen the other's; both keep the one started by
//     the device with the smaller fingerprint.
func (r *Record) adopt(e *entry, self *identity.DeviceKeys, remote *identity.DevicePublic) {
	if a := r.active; a != nil && a.initiator && smaller(self, remote) {
		r.archive(e) // ours wins the tie
		return
	}
	r.promote(e)
}

// received notes that e decrypted a message. The device with the larger
// fingerprint follows the other: if e is not its active session, the peer
// is using e, so e becomes active (§6.3). The smaller device never switches
// on receipt, so the two cannot chase each other.
func (r *Record) received(e *entry, self *identity.DeviceKeys, remote *identity.DevicePublic) {
	r.last = e
	if r.active != e && !smaller(self, remote) {
		r.promote(e)
	}
}

// PromoteLast is called when the most recently decrypted message says the
// peer reset the session (content.TypeSessionReset): the peer can no longer
// read the session this device was using (§6.4). The session the notice
// came on becomes active, unless this device's active session is one it
// started that the peer has not answered yet — then the two were started
// at once and §6.3 decides.
func (r *Record) PromoteLast(self *identity.DeviceKeys, remote *identity.DevicePublic) {
	e := r.last
	if e == nil || r.active == e {
		return
	}
	if a := r.active; a != nil && !a.confirmed() && smaller(self, remote) {
		return
	}
	r.promote(e)
}

func (r *Record) promote(e *entry) {
	r.remove(e)
	r.Reset()
	r.active = e
}

func (r *Record) remove(e *entry) {
	for i, a := range r.archived {
		if a == e {
			r.archived = append(r.archived[:i], r.archived[i+1:]...)
			return
		}
	}
}
