package backup

import (
	"errors"
	"fmt"

	"github.com/parleyim/parley/internal/wire"
)

var (
	// ErrWrongRecoveryKey reports an archive that the recovery key does not
	// open: age found no recipient stanza for the key's identity. A backup
	// of another recovery key (or another account), and an archive whose
	// recipient stanza was tampered with, look the same.
	ErrWrongRecoveryKey = errors.New("backup: the recovery key does not open this backup")
	// ErrTruncated reports an archive that ends early: the age stream ends
	// without its final chunk, or the records end without their trailer.
	ErrTruncated = errors.New("backup: the archive is truncated")
	// ErrTampered reports an archive that fails authentication (age's
	// header MAC or a payload chunk) or whose records are malformed.
	// Nothing read from such an archive may be kept.
	ErrTampered = errors.New("backup: the archive is damaged or was tampered with")
	// ErrUnsupportedVersion reports an archive of a format version this
	// client does not read (also matched by wire.ErrUnsupportedVersion).
	ErrUnsupportedVersion = fmt.Errorf("backup: unsupported format version: %w", wire.ErrUnsupportedVersion)
	// ErrTooLarge is matched by every *LimitError: a record or a count
	// beyond the named limits (limits.go).
	ErrTooLarge = errors.New("backup: limit exceeded")
)

// LimitError reports a record or count beyond a named limit, when writing
// (a caller error) or reading.
type LimitError struct {
	What  string
	Limit int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("backup: %s exceeds the limit of %d", e.What, e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) true.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

// FormatError reports a malformed record in an archive that decrypted: a
// writer bug or a forgery by someone who holds the recipient. It matches
// ErrTampered.
type FormatError struct {
	Offset int64 // plaintext offset of the record
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("backup: malformed archive at plaintext offset %d: %s", e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrTampered) true.
func (e *FormatError) Is(target error) bool { return target == ErrTampered }

// damagedError reports a payload chunk that failed authentication at the
// end of the input: the archive was cut inside a chunk, or its last chunk
// was modified. The ciphertext cannot tell which, so it matches both
// ErrTruncated and ErrTampered.
type damagedError struct{ cause error }

func (e *damagedError) Error() string {
	return "backup: the archive is truncated or its end was modified: " + e.cause.Error()
}

func (e *damagedError) Is(target error) bool { return target == ErrTruncated || target == ErrTampered }

func (e *damagedError) Unwrap() error { return e.cause }
