package client

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/content"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/username"
)

var (
	// ErrSecurity is matched by every error that means the server (or
	// someone in its place) lied: a device list not signed by the account
	// key, an older list replayed, a broken chain, a changed account key, a
	// forged prekey bundle. It is never a network error; the operation it
	// stopped must not be retried blindly.
	ErrSecurity = errors.New("client: security error")
	// ErrNotRegistered reports a home directory without an account.
	ErrNotRegistered = errors.New("client: no account in this home directory; run register first")
	// ErrNoSuchUser reports a recipient the server does not know.
	ErrNoSuchUser = errors.New("client: no such user on this server")
	// ErrUsernameTaken reports a registration under a name already in use.
	ErrUsernameTaken = errors.New("client: this username is taken on this server")
	// ErrWrongPassphrase reports a passphrase that does not open the
	// local store.
	ErrWrongPassphrase = clientdb.ErrWrongPassphrase
	// ErrDeviceRemoved reports that this device was removed from its
	// account — proven by a version of the account's device list, signed by
	// the account key and chained to the last one this device accepted,
	// that does not name it — and that its local store has been wiped. The
	// Client is closed; the home directory no longer holds an account.
	ErrDeviceRemoved = errors.New("client: this device was removed from its account; its local store has been wiped")
	// ErrAccountDeleted reports that the server no longer knows this
	// device's account: another device deleted it. The local store is kept
	// (the server's word cannot be verified); delete the home directory to
	// discard it.
	ErrAccountDeleted = errors.New("client: this device's account was deleted from the server")
	// ErrLastDevice reports an attempt to remove an account's only device;
	// delete the account instead.
	ErrLastDevice = errors.New("client: cannot remove the account's last device; delete the account instead")
	// ErrNoSuchDevice reports a device id the account's device list does
	// not name.
	ErrNoSuchDevice = errors.New("client: no such device in this account")
	// ErrInvalidUsername is matched by every username the rules refuse
	// (docs/server.md §3.1); the error text says which rule.
	ErrInvalidUsername = username.ErrInvalid
)

// Username limits, for user interfaces that check before asking.
const (
	MinUsernameLength = username.MinLength
	MaxUsernameLength = username.MaxLength
	// MaxMessageSize is the longest message text in bytes.
	MaxMessageSize = content.MaxTextSize
)

// NormalizeUsername returns the canonical form of a username (case-folded)
// or an error matching ErrInvalidUsername.
func NormalizeUsername(name string) (string, error) { return username.Normalize(name) }

// SecurityError wraps a verification failure with what was being checked.
type SecurityError struct {
	What string // e.g. `device list of "bob"`
	Err  error
}

func (e *SecurityError) Error() string {
	return fmt.Sprintf("client: security error: %s: %v", e.What, e.Err)
}

func (e *SecurityError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrSecurity) true.
func (e *SecurityError) Is(target error) bool { return target == ErrSecurity }

func securityError(what string, err error) error {
	if err == nil {
		return nil
	}
	return &SecurityError{What: what, Err: err}
}

// isSecurity reports whether err is a verification failure from identity
// or prekey checks.
func isSecurity(err error) bool {
	return errors.Is(err, identity.ErrSecurity) || errors.Is(err, ErrSecurity)
}

// ServerError is an error the server returned, with its Connect code.
type ServerError struct {
	Op   string
	Code connect.Code
	Msg  string
	// RetryAfterMs is set when the server asked to slow down.
	RetryAfterMs int64

	cause *connect.Error
}

func (e *ServerError) Unwrap() error { return e.cause }

func (e *ServerError) Error() string {
	if e.Code == connect.CodeUnavailable {
		return fmt.Sprintf("client: %s: cannot reach the server: %s", e.Op, e.Msg)
	}
	s := fmt.Sprintf("client: %s: server said %s: %s", e.Op, e.Code, e.Msg)
	if e.RetryAfterMs > 0 {
		s += fmt.Sprintf(" (retry after %d ms)", e.RetryAfterMs)
	}
	return s
}

func wrapRPC(op string, err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return fmt.Errorf("client: %s: %w", op, err)
	}
	se := &ServerError{Op: op, Code: ce.Code(), Msg: ce.Message(), cause: ce}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if rl, ok := v.(*parleyv1.RateLimited); ok {
				se.RetryAfterMs = rl.RetryAfterMs
			}
		}
	}
	if ce.Code() == connect.CodeUnknown {
		se.Code = connect.CodeUnavailable
	}
	return se
}

// mismatchOf extracts the server's MismatchedDevices detail, if any.
func mismatchOf(err error) *parleyv1.MismatchedDevices {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		return nil
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if m, ok := v.(*parleyv1.MismatchedDevices); ok {
				return m
			}
		}
	}
	return nil
}
