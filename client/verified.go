package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
)

// ErrVerifiedKeyChanged is matched by the error of a send to a contact the
// person verified (MarkVerified) whose account key has changed since: the
// safety number they compared no longer holds. Sends to that contact are
// refused until the person compares the new safety number and verifies
// again. It is not a security error: key transparency vouches that the
// new key is the one everyone sees; whether it is the person's is what
// only a new comparison can tell.
var ErrVerifiedKeyChanged = errors.New("client: the account key of a contact you verified has changed")

// VerifiedKeyChangedError names the contact of an ErrVerifiedKeyChanged.
type VerifiedKeyChangedError struct{ Username string }

func (e *VerifiedKeyChangedError) Error() string {
	return fmt.Sprintf("client: the account key of %q, whom you verified, has changed: compare the new safety number with them and verify again before sending", e.Username)
}

// Is makes errors.Is(err, ErrVerifiedKeyChanged) true.
func (e *VerifiedKeyChangedError) Is(target error) bool { return target == ErrVerifiedKeyChanged }

// verifiedKeyPrefix + contact is the fingerprint of the account key the
// person verified for contact. A contact marked verified without one
// (verified on a device from before this setting, or carried over by a
// link or backup, which carry only the mark) was verified with the key of
// its stored list.
const verifiedKeyPrefix = "verified-key/"

// verifiedKey returns the fingerprint of the account key name was
// verified with, or false if name is not verified.
func (c *Client) verifiedKey(ctx context.Context, name string) ([32]byte, bool, error) {
	ct, err := c.db.Contact(ctx, name)
	if errors.Is(err, clientdb.ErrNotFound) {
		return [32]byte{}, false, nil
	} else if err != nil || !ct.Verified {
		return [32]byte{}, false, err
	}
	fp, err := c.db.Setting(ctx, verifiedKeyPrefix+name)
	if err == nil && len(fp) == 32 {
		return [32]byte(fp), true, nil
	} else if err != nil && !errors.Is(err, clientdb.ErrNotFound) {
		return [32]byte{}, false, err
	}
	s, err := identity.ParseSignedDeviceList(ct.DeviceList)
	if err != nil {
		return [32]byte{}, false, fmt.Errorf("client: stored device list of %q: %w", name, err)
	}
	l, err := s.Verify(nil)
	if err != nil {
		return [32]byte{}, false, securityError(fmt.Sprintf("stored device list of %q", name), err)
	}
	return l.Key.Fingerprint(), true, nil
}

// checkVerified refuses to go on with a contact whose account key is not
// the one the person verified. c.mu must be held.
func (c *Client) checkVerified(ctx context.Context, name string, l *identity.DeviceList) error {
	fp, ok, err := c.verifiedKey(ctx, name)
	if err != nil || !ok {
		return err
	}
	if cur := l.Key.Fingerprint(); !primitives.Equal(fp[:], cur[:]) {
		return &VerifiedKeyChangedError{Username: name}
	}
	return nil
}
