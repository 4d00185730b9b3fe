package provision

import (
	"fmt"
	"sync"

	"github.com/parleyim/parley/internal/primitives"
)

// Receiver is N's side of a transfer. It opens frames strictly in order and
// checks, frame by frame, what the sender could lie about:
//
//   - sequence numbers are consecutive from 0 and frame types come in the
//     order account, contacts…, history…, end (else ErrOutOfOrder);
//   - every frame decrypts under the one HPKE context the account frame
//     began (else ErrDecrypt);
//   - the account frame is for the expected account, its device list
//     verifies and adds this device under its name, and the account key is
//     the list's key (checkAccount);
//   - contacts' device lists verify and name the contact;
//   - no more contacts or messages arrive than announced, and the end
//     frame's counts agree (else ErrCountMismatch).
//
// The first failure is final: every later Open returns it again, and the
// link starts over. A Receiver is safe for concurrent use.
type Receiver struct {
	mu       sync.Mutex
	secret   *OfferSecret
	username string
	hpke     *primitives.HPKERecipient
	seq      uint32
	stage    stage
	account  *Account
	contacts uint32
	messages uint32
	err      error
}

// NewReceiver prepares to receive a transfer sealed to secret's offer, for
// the account username: the one the person asked to link this device to.
//
// The channel is not authenticated by HPKE (base mode): anyone who knows
// the offer, the server included, can seal frames to it. What makes the
// transfer trustworthy is the account frame: it must carry the account key
// whose public key signs the device list. The caller must therefore check
// Account.List against the account's device list as the directory and key
// transparency show it (the new list must chain to the current one,
// identity.SignedDeviceList.Verify with the current list as prev) before
// trusting anything; only the real account key can produce such a list.
func NewReceiver(secret *OfferSecret, username string) *Receiver {
	return &Receiver{secret: secret, username: username}
}

// Open decrypts and checks the next frame. It returns *Account for the
// account frame, []Contact, []HistoryMessage, or *End for the last frame.
func (r *Receiver) Open(data []byte) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	v, err := r.open(data)
	if err != nil {
		r.err = err
		return nil, err
	}
	return v, nil
}

// Finish reports whether the transfer completed: nil once the end frame
// has been opened and checked, the failure if one occurred, otherwise
// ErrIncomplete (the frames stopped before the end: whatever arrived may
// be kept, but the link is not complete).
func (r *Receiver) Finish() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.err != nil:
		return r.err
	case r.stage != stageDone:
		return ErrIncomplete
	}
	return nil
}

func (r *Receiver) open(data []byte) (any, error) {
	f, err := parseFrame(data)
	if err != nil {
		return nil, err
	}
	// Order first, on the clear header: a frame in the wrong place is
	// refused as such, without spending a decryption on it. The header is
	// also authenticated, so a rewritten seq or type fails to decrypt.
	if f.seq != r.seq {
		return nil, fmt.Errorf("%w: frame %d where frame %d was due", ErrOutOfOrder, f.seq, r.seq)
	}
	switch {
	case r.stage == stageDone:
		return nil, fmt.Errorf("%w: %s frame after the end", ErrOutOfOrder, f.typ)
	case (r.stage == stageAccount) != (f.typ == FrameAccount):
		return nil, fmt.Errorf("%w: %s frame at position %d", ErrOutOfOrder, f.typ, f.seq)
	case r.stage == stageHistory && f.typ == FrameContacts:
		return nil, fmt.Errorf("%w: contacts frame after history", ErrOutOfOrder)
	}
	if f.typ == FrameAccount {
		a := r.secret.offer.Address()
		h, err := primitives.NewHPKERecipient(r.secret.key, f.enc, primitives.LabelProvisioning, a[:])
		if err != nil {
			return nil, ErrDecrypt
		}
		r.hpke = h
	}
	payload, err := r.hpke.Open(f.header, f.sealed)
	if err != nil {
		return nil, ErrDecrypt
	}
	var out any
	switch f.typ {
	case FrameAccount:
		a, err := parseAccount(payload)
		if err != nil {
			return nil, err
		}
		if err := checkAccount(a, r.secret.offer, r.username); err != nil {
			return nil, err
		}
		r.account, r.stage, out = a, stageContacts, a
	case FrameContacts:
		cs, err := parseContacts(payload)
		if err != nil {
			return nil, err
		}
		if uint64(r.contacts)+uint64(len(cs)) > uint64(r.account.Contacts) {
			return nil, fmt.Errorf("%w: more than the %d contacts announced", ErrCountMismatch, r.account.Contacts)
		}
		for i := range cs {
			l, err := cs[i].List.Verify(nil)
			if err != nil {
				return nil, fmt.Errorf("%w: contact %q: %w", ErrBadDeviceList, cs[i].Username, err)
			}
			if l.Account != cs[i].Username {
				return nil, fmt.Errorf("%w: contact %q has the device list of %q", ErrBadDeviceList, cs[i].Username, l.Account)
			}
		}
		r.contacts += uint32(len(cs))
		out = cs
	case FrameHistory:
		ms, err := parseHistory(payload)
		if err != nil {
			return nil, err
		}
		if uint64(r.messages)+uint64(len(ms)) > uint64(r.account.Messages) {
			return nil, fmt.Errorf("%w: more than the %d messages announced", ErrCountMismatch, r.account.Messages)
		}
		r.messages += uint32(len(ms))
		r.stage, out = stageHistory, ms
	case FrameEnd:
		e, err := parseEnd(payload)
		if err != nil {
			return nil, err
		}
		if e.Contacts != r.contacts || e.Messages != r.messages || e.Frames != f.seq ||
			r.contacts != r.account.Contacts || r.messages != r.account.Messages {
			return nil, fmt.Errorf("%w: end says %d contacts, %d messages, %d frames; announced %d and %d; received %d, %d, %d",
				ErrCountMismatch, e.Contacts, e.Messages, e.Frames, r.account.Contacts, r.account.Messages,
				r.contacts, r.messages, f.seq)
		}
		r.stage, out = stageDone, e
	}
	r.seq++
	return out, nil
}

// checkAccount is what both sides require of an account frame: the device
// list verifies by its own account key, names the account being linked,
// is signed by the very key that travels, and contains the offer's device
// with the offer's name.
func checkAccount(a *Account, o *Offer, username string) error {
	l, err := a.List.Verify(nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadDeviceList, err)
	}
	if a.Username != username || l.Account != username {
		return fmt.Errorf("%w: linking to %q, got account %q with the device list of %q",
			ErrWrongAccount, username, a.Username, l.Account)
	}
	if !a.Key.Public().Equal(l.Key) {
		return ErrForeignAccountKey
	}
	e, ok := l.Lookup(o.device.ID())
	if !ok || !e.Device.Equal(o.device) {
		return fmt.Errorf("%w: device %s is not in the list", ErrNotThisDevice, o.device.ID())
	}
	if e.Name != o.name {
		return fmt.Errorf("%w: it is named %q in the list, %q in the offer", ErrNotThisDevice, e.Name, o.name)
	}
	return nil
}
