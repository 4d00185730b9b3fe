package provision

import (
	"errors"
	"fmt"
	"sync"

	"github.com/parleyim/parley/internal/primitives"
)

// Sender is E's side of a transfer: one HPKE sending context for the whole
// stream, so each frame is sealed under the next sequence number and the
// receiver can open them only in order. Calls must follow the order
// Account, Contacts…, History…, End; each returns the next frame to post to
// the mailbox. A Sender is safe for concurrent use, but frames come out in
// call order.
type Sender struct {
	mu    sync.Mutex
	offer *Offer
	enc   []byte
	hpke  *primitives.HPKESender
	seq   uint32
	stage stage
	// announced in the account frame, and sent so far.
	wantContacts, wantMessages uint32
	contacts, messages         uint32
}

// stage is where a transfer stands; both sides move through it the same
// way.
type stage uint8

const (
	stageAccount  stage = iota // nothing sent yet: the account frame is next
	stageContacts              // account sent: contacts, history or end next
	stageHistory               // history begun: history or end next
	stageDone                  // end sent
)

// NewSender begins a transfer to the device that made o, which must have
// come from VerifyOffer. It encapsulates to the offer's HPKE key with info
// "Parley-v1 Provisioning" || 0x00 || address, so frames sealed for one
// offer open for no other.
func NewSender(o *Offer) *Sender {
	a := o.Address()
	enc, s := primitives.NewHPKESender(o.key, primitives.LabelProvisioning, a[:])
	return &Sender{offer: o, enc: enc, hpke: s}
}

// seal builds the next frame around payload.
func (s *Sender) seal(typ FrameType, payload []byte) []byte {
	var enc []byte
	if typ == FrameAccount {
		enc = s.enc
	}
	header := frameHeader(typ, s.seq, enc, len(payload)+primitives.HPKEOverhead)
	s.seq++
	out := make([]byte, len(header), len(header)+len(payload)+primitives.HPKEOverhead)
	copy(out, header)
	return append(out, s.hpke.Seal(header, payload)...)
}

// Account returns the first frame. a.List must verify, name a.Username, be
// signed by a.Key, and contain the offer's device under the offer's name:
// the receiver refuses anything else, and E checks first so that it never
// sends an account the new device will refuse.
func (s *Sender) Account(a *Account) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stage != stageAccount {
		return nil, errors.New("provision: Account must be the first frame, and is sent once")
	}
	payload, err := a.marshal()
	if err != nil {
		return nil, err
	}
	if err := checkAccount(a, s.offer, a.Username); err != nil {
		return nil, fmt.Errorf("provision: cannot send account: %w", err)
	}
	s.stage = stageContacts
	s.wantContacts, s.wantMessages = a.Contacts, a.Messages
	return s.seal(FrameAccount, payload), nil
}

// Contacts returns a frame with a batch of contacts: 1..MaxContactsBatch of
// them, at most MaxPayloadSize bytes encoded (see FitContacts). All contacts
// frames come before any history frame, and together carry exactly the
// number the account frame announced.
func (s *Sender) Contacts(cs []Contact) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stage != stageContacts {
		return nil, errors.New("provision: Contacts must come after Account and before History and End")
	}
	if uint64(s.contacts)+uint64(len(cs)) > uint64(s.wantContacts) {
		return nil, &LimitError{What: "contacts (as announced in the account frame)", Limit: int(s.wantContacts)}
	}
	payload, err := marshalContacts(cs)
	if err != nil {
		return nil, err
	}
	s.contacts += uint32(len(cs))
	return s.seal(FrameContacts, payload), nil
}

// History returns a frame with a batch of messages: 1..MaxHistoryBatch of
// them, at most MaxPayloadSize bytes encoded (see FitHistory). Together the
// history frames carry exactly the number the account frame announced.
func (s *Sender) History(ms []HistoryMessage) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stage != stageContacts && s.stage != stageHistory {
		return nil, errors.New("provision: History must come after Account and before End")
	}
	if uint64(s.messages)+uint64(len(ms)) > uint64(s.wantMessages) {
		return nil, &LimitError{What: "history messages (as announced in the account frame)", Limit: int(s.wantMessages)}
	}
	payload, err := marshalHistory(ms)
	if err != nil {
		return nil, err
	}
	s.stage = stageHistory
	s.messages += uint32(len(ms))
	return s.seal(FrameHistory, payload), nil
}

// End returns the last frame, with the counts of what was sent. It fails if
// fewer contacts or messages were sent than the account frame announced.
func (s *Sender) End() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stage != stageContacts && s.stage != stageHistory {
		return nil, errors.New("provision: End must come after Account, once")
	}
	if s.contacts != s.wantContacts || s.messages != s.wantMessages {
		return nil, fmt.Errorf("provision: cannot end: sent %d of %d contacts and %d of %d messages",
			s.contacts, s.wantContacts, s.messages, s.wantMessages)
	}
	e := &End{Contacts: s.contacts, Messages: s.messages, Frames: s.seq}
	s.stage = stageDone
	return s.seal(FrameEnd, e.marshal()), nil
}
