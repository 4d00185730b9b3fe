package verify

import (
	"errors"
	"fmt"
)

// Kind classifies a security failure: what the server (or the log) did
// wrong, as far as the client can tell.
type Kind int

const (
	// BadProof: a proof is malformed or does not verify (a VRF proof, a
	// prefix or log proof, an entry that is not in the checkpoint).
	BadProof Kind = iota + 1
	// BadSignature: the checkpoint lacks a valid log signature (Ed25519 or
	// hybrid), or carries an invalid signature from a known key.
	BadSignature
	// MissingCosignatures: fewer witnesses than the policy requires
	// cosigned the checkpoint.
	MissingCosignatures
	// Rollback: the log is smaller than one the client already verified.
	Rollback
	// Fork: the log is not an extension of one the client (or a peer)
	// verified: same size with another root, or no valid consistency
	// proof.
	Fork
	// StaleLatest: the response is not for the newest epoch of its
	// checkpoint, or the newest epoch is older than the client accepts.
	StaleLatest
	// KeySubstituted: the value served is not the one committed in the
	// tree for that version.
	KeySubstituted
	// HiddenVersion: the ladder shows a version beyond the claimed
	// greatest one, or (monitoring) the log lacks a version the owner made.
	HiddenVersion
	// UnexpectedVersion: monitoring found a version of the owner's label
	// that the owner did not publish, or with another value.
	UnexpectedVersion
	// NotAppendOnly: an audit found an epoch whose prefix root is not the
	// previous tree plus its insertions, or an insertion of an existing
	// index.
	NotAppendOnly
)

func (k Kind) String() string {
	switch k {
	case BadProof:
		return "bad proof"
	case BadSignature:
		return "bad checkpoint signature"
	case MissingCosignatures:
		return "missing witness cosignatures"
	case Rollback:
		return "log rolled back"
	case Fork:
		return "forked log"
	case StaleLatest:
		return "stale data served as latest"
	case KeySubstituted:
		return "value substituted"
	case HiddenVersion:
		return "hidden version"
	case UnexpectedVersion:
		return "unexpected version"
	case NotAppendOnly:
		return "log not append-only"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ErrSecurity is matched (errors.Is) by every *Error: the key-transparency
// server, or the log behind it, misbehaved. It is never a network failure.
var ErrSecurity = errors.New("verify: key transparency security failure")

// Error is a security failure. Callers branch on Kind; Label and Version
// say which entry it concerns, when one does.
type Error struct {
	Kind    Kind
	Label   string
	Version uint32
	// Value is, for UnexpectedVersion, the value the log holds for the
	// version the owner did not publish, so the user can be shown it.
	Value  []byte
	Reason string
	Err    error
}

func (e *Error) Error() string {
	s := "key transparency: " + e.Kind.String()
	if e.Label != "" {
		s += fmt.Sprintf(" (%q version %d)", e.Label, e.Version)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrSecurity) true.
func (e *Error) Is(target error) bool { return target == ErrSecurity }

func fail(k Kind, reason string, err error) *Error { return &Error{Kind: k, Reason: reason, Err: err} }

func failf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Reason: fmt.Sprintf(format, args...)}
}
