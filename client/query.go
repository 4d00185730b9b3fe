package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/username"
)

// History returns up to limit messages of the conversation with an
// account, oldest first, ending before before (the zero time: now).
func (c *Client) History(ctx context.Context, with string, limit int, before time.Time) ([]*Message, error) {
	name, err := username.Normalize(with)
	if err != nil {
		return nil, err
	}
	if err := c.alive(); err != nil {
		return nil, err
	}
	if before.IsZero() {
		before = c.now().Add(time.Hour)
	}
	ms, err := c.db.History(ctx, name, limit, before)
	if err != nil {
		return nil, err
	}
	out := make([]*Message, len(ms))
	for i := range ms {
		out[i] = fromDB(&ms[i])
	}
	return out, nil
}

// Contact is an account this device has talked with.
type Contact struct {
	Username string
	Devices  int
	// Verified: the person compared safety numbers (MarkVerified) and
	// the account key is still the one they compared.
	Verified bool
	// KeyChanged: the person verified this contact, but its account key
	// has changed since; sends are refused until they verify again.
	KeyChanged bool
	Added      time.Time
}

// Contacts lists the accounts this device knows.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	cs, err := c.db.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Contact, 0, len(cs))
	for _, ct := range cs {
		n := 0
		var key [32]byte
		if s, err := identity.ParseSignedDeviceList(ct.DeviceList); err == nil {
			if l, err := s.Verify(nil); err == nil {
				n, key = len(l.Devices), l.Key.Fingerprint()
			}
		}
		verified, changed := ct.Verified, false
		if verified {
			fp, ok, err := c.verifiedKey(ctx, ct.Username)
			if err != nil {
				return nil, err
			}
			changed = ok && !primitives.Equal(fp[:], key[:])
			verified = ok && !changed
		}
		out = append(out, Contact{Username: ct.Username, Devices: n, Verified: verified, KeyChanged: changed, Added: ct.Added})
	}
	return out, nil
}

// Device is one device of this account.
type Device struct {
	ID   identity.DeviceID
	Name string
	// Added is when the device was added, as the signed device list says
	// (the adding device's clock).
	Added time.Time
	// LastSeen is when the device last connected to the server to
	// receive, as the server says; the zero time if it does not say.
	LastSeen time.Time
	Current  bool // this device
}

// Devices lists this account's devices: which devices exist and their
// names come from the account's verified device list (refresh fetches it
// from the server first), the last-seen times from the server
// (ListDevices). A device the server lists but the verified list does not
// name is a security error: the server cannot add a device.
func (c *Client) Devices(ctx context.Context, refresh bool) ([]Device, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.alive(); err != nil {
		return nil, err
	}
	l, err := c.devices(ctx, c.username, refresh)
	if err != nil {
		return nil, err
	}
	resp, err := call(ctx, c, "listing devices", c.dir.ListDevices, &parleyv1.ListDevicesRequest{})
	if err != nil {
		return nil, err
	}
	seen := map[identity.DeviceID]time.Time{}
	for _, d := range resp.Devices {
		if len(d.DeviceId) != identity.DeviceIDSize {
			return nil, securityError("device times", errors.New("bad device id"))
		}
		seen[identity.DeviceID(d.DeviceId)] = time.UnixMilli(d.LastSeenUnixMs)
	}
	for id := range seen {
		if _, ok := l.Lookup(id); ok {
			continue
		}
		if !refresh {
			// The list may have changed since this device last fetched
			// it: look again before calling it a lie.
			refresh = true
			if l, err = c.devices(ctx, c.username, true); err != nil {
				return nil, err
			}
			if _, ok := l.Lookup(id); ok {
				continue
			}
		}
		return nil, securityError("own devices", fmt.Errorf("the server lists device %s, which the account's signed device list does not name", id))
	}
	out := make([]Device, 0, len(l.Devices))
	for _, e := range l.Devices {
		id := e.Device.ID()
		out = append(out, Device{ID: id, Name: e.Name, Added: time.Unix(int64(e.Added), 0), LastSeen: seen[id], Current: id == c.selfID})
	}
	return out, nil
}

// SafetyNumber returns the safety number of this account and another, and
// the payload of its QR code (docs/protocol.md §3.4). Both people see the
// same number; if it matches, no one has substituted either account key.
func (c *Client) SafetyNumber(ctx context.Context, with string) (number string, qr []byte, err error) {
	name, err := username.Normalize(with)
	if err != nil {
		return "", nil, err
	}
	if name == c.username {
		return "", nil, errors.New("client: a safety number compares two different accounts")
	}
	c.mu.Lock()
	l, err := c.devices(ctx, name, false)
	c.mu.Unlock()
	if err != nil {
		return "", nil, err
	}
	own := c.account.Public()
	return identity.SafetyNumber(c.username, own, name, l.Key), identity.SafetyQR(c.username, own, name, l.Key), nil
}

// MarkVerified records that the person compared their safety number with
// name's (SafetyNumber, in person or by QR) and it matched. The mark
// belongs to the account key of the device list stored for name: if that
// key changes later, sends to name fail with ErrVerifiedKeyChanged until
// the person compares the new number and calls MarkVerified again.
func (c *Client) MarkVerified(ctx context.Context, with string) error {
	name, err := username.Normalize(with)
	if err != nil {
		return err
	}
	if name == c.username {
		return errors.New("client: verify compares two different accounts")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, err := c.devices(ctx, name, false)
	if err != nil {
		return err
	}
	fp := l.Key.Fingerprint()
	return c.db.Update(ctx, func(tx *clientdb.Tx) error {
		ct, err := tx.Contact(name)
		if err != nil {
			return err
		}
		ct.Verified = true
		if err := tx.PutContact(ct); err != nil {
			return err
		}
		return tx.SetSetting(verifiedKeyPrefix+name, fp[:])
	})
}
