package provision

import (
	"errors"
	"fmt"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Recovery-share frames (docs/backup.md, "Trusted contacts"). A device
// recovering an account with the help of trusted contacts publishes an
// offer, exactly as a device being linked does (§9.1), and shows its code.
// Each contact checks the offer against the code, compares the
// confirmation string with the person out of band, and appends one share
// frame to the mailbox: the share sealed to the offer's HPKE key.
//
// A share frame is self-contained (one HPKE context per frame, since every
// contact seals independently):
//
//	version (1) || enc (HPKEEncapsulatedKeySize) || HPKE ciphertext of the share
//
// with HPKE info "Parley-v1 Recovery Share" || 0x00 || address || owner and
// the version byte as associated data. The owner (the account being
// recovered) is bound into the context, so a share sealed for one account
// does not open as another's. Like the link transfer, the channel is not
// authenticated to the recovering device: anyone who knows the offer can
// seal a frame to it. A share is trustworthy only once K of them combine to
// a key whose key ID they all name and which opens a backup of the account
// (backup.CombineShares, then the restore checks).

// MaxShareSize bounds the sealed share's plaintext.
const MaxShareSize = 1024

// ErrShareFrame is matched by every share frame that does not open: wrong
// version, wrong size, or not sealed to this offer for this owner.
var ErrShareFrame = errors.New("provision: recovery share frame does not open")

// SealShare seals share for the device that made o (which must come from
// VerifyOffer), recovering the account owner.
func SealShare(o *Offer, owner string, share []byte) ([]byte, error) {
	if len(share) == 0 || len(share) > MaxShareSize {
		return nil, fmt.Errorf("provision: recovery share of %d bytes (1..%d)", len(share), MaxShareSize)
	}
	enc, s := primitives.NewHPKESender(o.key, primitives.LabelRecoveryShare, shareContext(o, owner))
	out := make([]byte, 0, 1+len(enc)+len(share)+primitives.HPKEOverhead)
	out = append(out, wire.Version)
	out = append(out, enc...)
	return append(out, s.Seal([]byte{wire.Version}, share)...), nil
}

// OpenShare opens a share frame sealed to this offer for owner.
func (s *OfferSecret) OpenShare(owner string, frame []byte) ([]byte, error) {
	const encEnd = 1 + primitives.HPKEEncapsulatedKeySize
	if len(frame) < encEnd+primitives.HPKEOverhead+1 || len(frame) > encEnd+primitives.HPKEOverhead+MaxShareSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrShareFrame, len(frame))
	}
	if frame[0] != wire.Version {
		return nil, fmt.Errorf("%w: version %d", ErrShareFrame, frame[0])
	}
	r, err := primitives.NewHPKERecipient(s.key, frame[1:encEnd], primitives.LabelRecoveryShare, shareContext(s.offer, owner))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrShareFrame, err)
	}
	share, err := r.Open(frame[:1], frame[encEnd:])
	if err != nil {
		return nil, fmt.Errorf("%w: not sealed to this offer for %q", ErrShareFrame, owner)
	}
	return share, nil
}

func shareContext(o *Offer, owner string) []byte {
	a := o.Address()
	return append(a[:], owner...)
}
