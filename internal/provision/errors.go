package provision

import (
	"errors"
	"fmt"

	"github.com/parleyim/parley/internal/identity"
)

// ErrSecurity is matched (with errors.Is) by every error that means a party
// lied: the server substituted the offer or tampered with, reordered,
// dropped or replayed frames, or the sender sent an account that does not
// add this device. Every such error also matches identity.ErrSecurity, so a
// caller that checks the one security sentinel of the client catches it.
var ErrSecurity = errors.New("provision: security error")

// securityError is a sentinel that matches ErrSecurity and
// identity.ErrSecurity.
type securityError struct{ msg string }

func (e *securityError) Error() string { return e.msg }
func (e *securityError) Is(target error) bool {
	return target == ErrSecurity || target == identity.ErrSecurity
}

var (
	// ErrAddressMismatch reports an offer whose hash is not the address the
	// person typed or scanned: the server (or whoever answered for the
	// mailbox) substituted it.
	ErrAddressMismatch error = &securityError{"provision: the offer does not match the code; it was substituted on the way"}
	// ErrDecrypt reports a frame that does not decrypt: tampered with,
	// sealed for another device's offer, or not from the sender that began
	// the transfer.
	ErrDecrypt error = &securityError{"provision: a transfer frame failed to decrypt"}
	// ErrOutOfOrder reports a frame with the wrong sequence number or of a
	// type not allowed at its place: frames reordered, dropped, duplicated,
	// or sent after the end.
	ErrOutOfOrder error = &securityError{"provision: transfer frames are out of order, duplicated or missing"}
	// ErrCountMismatch reports a transfer that carries more contacts or
	// messages than its account frame announced, or whose end frame does
	// not agree with what arrived.
	ErrCountMismatch error = &securityError{"provision: the transfer does not carry what it announced"}
	// ErrNotThisDevice reports an account frame whose device list does not
	// contain this device (its keys and its name from the offer).
	ErrNotThisDevice error = &securityError{"provision: the device list does not add this device"}
	// ErrWrongAccount reports an account frame for another account than
	// the one being linked, or whose device list names another account.
	ErrWrongAccount error = &securityError{"provision: the transfer is for a different account"}
	// ErrForeignAccountKey reports an account key whose public key is not
	// the key that signs the device list.
	ErrForeignAccountKey error = &securityError{"provision: the account key does not match the device list"}
	// ErrBadDeviceList reports a device list (the account's or a contact's)
	// that does not verify.
	ErrBadDeviceList error = &securityError{"provision: a device list in the transfer does not verify"}
)

var (
	// ErrStaleOffer reports an offer older than the allowed age or from
	// the future: make a new code on the new device.
	ErrStaleOffer = errors.New("provision: the link code has expired; start linking again on the new device")
	// ErrIncomplete reports a transfer that stopped before its end frame.
	ErrIncomplete = errors.New("provision: the transfer ended before it was complete")
	// ErrLimit is matched by every *LimitError.
	ErrLimit = errors.New("provision: limit exceeded")
)

// CodeError reports a code (or QR payload) that cannot be an address: the
// person mistyped it. It is caught before any network call.
type CodeError struct{ Reason string }

func (e *CodeError) Error() string { return "provision: invalid code: " + e.Reason }

// LimitError reports something too large to send: a batch over its limits,
// or more contacts or messages than a transfer may carry.
type LimitError struct {
	What  string
	Limit int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("provision: %s exceeds the limit of %d", e.What, e.Limit)
}

// Is makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }
