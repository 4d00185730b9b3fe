package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
)

// A removed device wipes itself (docs/client.md §8.2), but only on proof:
// a version of its account's device list, signed by the account key and
// chained to the last version this device accepted, that does not name it.
// The server's say-so is not enough — a server that could make devices
// delete their history would have a weapon — so every signal the server
// gives (a stream ended with PermissionDenied, an authentication refused)
// only makes the device ask for that proof. A network error, an expired
// token or a server that answers anything else wipes nothing.

// maxRemovalProofRounds bounds how many GetRemovalProof pages the device
// follows (64 versions each).
const maxRemovalProofRounds = 16

// confirmRemoval asks the server for the device-list versions after the one
// this device knows and verifies them. It returns ErrDeviceRemoved after
// wiping the local store if they prove the removal, ErrAccountDeleted if the
// server no longer knows the account, a *SecurityError if the lists do not
// verify or the server refuses a device they still name, and nil when it
// cannot conclude (the caller then reports its own error). c.mu may or may
// not be held; confirmRemoval does not take it.
func (c *Client) confirmRemoval(ctx context.Context) error {
	if c.gone.Load() {
		return ErrDeviceRemoved
	}
	prev, err := c.storedList(ctx, c.username)
	if err != nil || prev == nil {
		c.log.Debug("confirming removal: no stored own list", "err", err)
		return nil
	}
	known, err := prev.Verify(nil)
	if err != nil {
		return securityError("stored own device list", err)
	}
	for range maxRemovalProofRounds {
		ch, err := c.auth.Challenge(ctx, connect.NewRequest(&parleyv1.ChallengeRequest{DeviceId: c.selfID[:]}))
		if err != nil {
			c.log.Debug("confirming removal: challenge", "err", err)
			return nil
		}
		resp, err := c.dir.GetRemovalProof(ctx, connect.NewRequest(&parleyv1.GetRemovalProofRequest{
			Username: c.username, KnownVersion: known.Version, DeviceId: c.selfID[:], Challenge: ch.Msg.Challenge,
			Signature: c.device.Signing.Sign(primitives.LabelSigAuthChallenge, ch.Msg.Challenge),
		}))
		if connect.CodeOf(err) == connect.CodeNotFound {
			return ErrAccountDeleted
		} else if err != nil {
			// Still current, unreachable, or refused: nothing proven.
			c.log.Debug("confirming removal", "err", err)
			return nil
		}
		for _, raw := range resp.Msg.SignedDeviceLists {
			s, err := identity.ParseSignedDeviceList(raw)
			if err != nil {
				return securityError("own device list", err)
			}
			l, err := s.Verify(prev)
			if err != nil {
				return securityError("own device list", err)
			}
			if l.Version != known.Version+1 {
				return securityError("own device list", fmt.Errorf("version %d does not follow %d", l.Version, known.Version))
			}
			if _, ok := l.Lookup(c.selfID); !ok {
				if err := c.wipe(); err != nil {
					return fmt.Errorf("%w (but deleting the local store failed: %v)", ErrDeviceRemoved, err)
				}
				return ErrDeviceRemoved
			}
			prev, known = s, l
		}
		if !resp.Msg.More {
			return securityError("own device list", errors.New("the server refuses this device, but the account's current device list still names it"))
		}
	}
	return nil
}

// wipe closes the local store and deletes its files, once. It does not take
// c.mu (the caller may hold it); the store itself refuses use after Close.
func (c *Client) wipe() error {
	c.wipeOnce.Do(func() {
		c.gone.Store(true)
		_ = c.db.Close()
		path := filepath.Join(c.home, DatabaseFile)
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) && c.wipeErr == nil {
				c.wipeErr = fmt.Errorf("client: wiping the local store: %w", err)
			}
		}
		c.log.Debug("local store wiped", "home", c.home)
	})
	return c.wipeErr
}
