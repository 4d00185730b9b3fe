package client

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/identity"
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
)

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
	s := fmt.Sprintf("client: %s: server said %s: %s", e.Op, e.Code, e.Msg)
	if e.RetryAfterMs > 0 {
		s += fmt.Sprintf(" (retry after %d ms)", e.RetryAfterMs)
	}
	return s
}

func (c *Client) wrapRPC(op string, err error) error {
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
	if ce.Code() == connect.CodeUnavailable || ce.Code() == connect.CodeUnknown {
		return fmt.Errorf("client: %s: cannot reach the server (%s): %w", op, ce.Message(), se)
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
