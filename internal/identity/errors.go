package identity

import (
	"errors"
	"fmt"
)

// ErrSecurity is matched (with errors.Is) by every error that means a party
// misbehaved: a list not signed by its account key, a replayed or forked
// list, a swapped account key, a safety-number mismatch. It is distinct from
// wire.ErrMalformed, which only says that bytes did not decode.
var ErrSecurity = errors.New("identity: security error")

// securityError is a sentinel that also matches ErrSecurity.
type securityError struct{ msg string }

func (e *securityError) Error() string        { return e.msg }
func (e *securityError) Is(target error) bool { return target == ErrSecurity }

var (
	// ErrBadSignature reports a device list whose signature does not verify
	// under the account key it names.
	ErrBadSignature error = &securityError{"identity: device list is not signed by its account key"}
	// ErrRollback reports a device list whose version is not newer than the
	// last one seen: an older list replayed, or a different list under a
	// version already seen (a fork).
	ErrRollback error = &securityError{"identity: device list version is not newer than the last one seen"}
	// ErrBrokenChain reports a device list whose Prev is not the hash of the
	// version before it.
	ErrBrokenChain error = &securityError{"identity: device list does not chain to the previous version"}
	// ErrAccountKeyChanged reports a device list signed by a different
	// account key than the last one seen. Account key rotation is not
	// supported yet, so this is always refused.
	ErrAccountKeyChanged error = &securityError{"identity: account key changed"}
	// ErrAccountMismatch reports a device list for a different account than
	// the one expected.
	ErrAccountMismatch error = &securityError{"identity: device list belongs to a different account"}
	// ErrSafetyNumberMismatch reports a scanned safety QR code that does not
	// match the keys this device holds for the two accounts.
	ErrSafetyNumberMismatch error = &securityError{"identity: safety number does not match; the keys may have been substituted"}
)

// GapError reports a device list that is validly signed and newer than the
// last one seen, but skips versions: the caller must fetch versions
// Have+1 … Got-1 and pass the whole run to VerifyChain. It is not a security
// error: a client that was offline simply missed the versions in between.
type GapError struct {
	Have uint64 // the version the caller last verified
	Got  uint64 // the version it was given
}

func (e *GapError) Error() string {
	return fmt.Sprintf("identity: device list jumped from version %d to %d; fetch versions %d to %d and verify them as a chain",
		e.Have, e.Got, e.Have+1, e.Got-1)
}
