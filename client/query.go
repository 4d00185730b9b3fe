package client

import (
	"context"
	"errors"

	"time"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/username"
)

// History returns up to limit messages of the conversation with an
// account, oldest first, ending before before (the zero time: now).
func (c *Client) History(ctx context.Context, with string, limit int, before time.Time) ([]*Message, error) {
	name, err := username.Normalize(with)
	if err != nil {
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
	Verified bool
	Added    time.Time
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
		if s, err := identity.ParseSignedDeviceList(ct.DeviceList); err == nil {
			if l, err := s.Verify(nil); err == nil {
				n = len(l.Devices)
			}
		}
		out = append(out, Contact{Username: ct.Username, Devices: n, Verified: ct.Verified, Added: ct.Added})
	}
	return out, nil
}

// Device is one device of this account.
type Device struct {
	ID      identity.DeviceID
	Name    string
	Added   time.Time
	Current bool // this device
}

// Devices lists this account's devices, as its current verified device
// list names them; refresh fetches the list from the server first.
func (c *Client) Devices(ctx context.Context, refresh bool) ([]Device, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, err := c.devices(ctx, c.username, refresh)
	if err != nil {
		return nil, err
	}
	out := make([]Device, 0, len(l.Devices))
	for _, e := range l.Devices {
		id := e.Device.ID()
		out = append(out, Device{ID: id, Name: e.Name, Added: time.Unix(int64(e.Added), 0), Current: id == c.selfID})
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
