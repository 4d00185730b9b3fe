package client

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
)

// deviceList fetches an account's current device list and verifies it
// against the last version this device accepted (docs/client.md §4):
// signed by the account key, newer, chaining by hash; a jump over missed
// versions is filled in and every link verified. A first-seen account is
// trusted on first use of its account key (key transparency replaces this
// in a later issue). The accepted list is stored. c.mu must be held.
func (c *Client) deviceList(ctx context.Context, name string) (*identity.DeviceList, error) {
	prev, err := c.storedList(ctx, name)
	if err != nil {
		return nil, err
	}
	resp, err := call(ctx, c, "fetching the device list of "+name, c.dir.GetDeviceList, &parleyv1.GetDeviceListRequest{Username: name})
	if err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound {
			return nil, fmt.Errorf("%w: %q", ErrNoSuchUser, name)
		}
		return nil, err
	}
	signed, err := identity.ParseSignedDeviceList(resp.SignedDeviceList)
	if err != nil {
		return nil, securityError(fmt.Sprintf("device list of %q", name), err)
	}
	list, err := signed.Verify(prev)
	var gap *identity.GapError
	if errors.As(err, &gap) {
		list, err = c.fillGap(ctx, name, prev, signed, gap)
	}
	if err != nil {
		return nil, securityError(fmt.Sprintf("device list of %q", name), err)
	}
	if list.Account != name {
		return nil, securityError(fmt.Sprintf("device list of %q", name), fmt.Errorf("it names account %q", list.Account))
	}
	if prev == nil || prev.Hash() != signed.Hash() {
		if err := c.storeList(ctx, name, signed); err != nil {
			return nil, err
		}
	}
	c.lists[name] = list
	return list, nil
}

// devices returns an account's device list: the one this device accepted
// last, or, with refresh or when there is none, a freshly fetched and
// verified one. Sends use the stored list; the server refuses a send whose
// device set is stale, and the sender then refreshes (docs/client.md §5).
// c.mu must be held.
func (c *Client) devices(ctx context.Context, name string, refresh bool) (*identity.DeviceList, error) {
	if !refresh {
		if l := c.lists[name]; l != nil {
			return l, nil
		}
		s, err := c.storedList(ctx, name)
		if err != nil {
			return nil, err
		}
		if s != nil {
			// Verified before it was stored; verified again because the
			// store is only as trustworthy as the disk.
			l, err := s.Verify(nil)
			if err != nil {
				return nil, securityError(fmt.Sprintf("stored device list of %q", name), err)
			}
			c.lists[name] = l
			return l, nil
		}
	}
	return c.deviceList(ctx, name)
}

// fillGap fetches the versions between prev and newest and verifies the
// whole run.
func (c *Client) fillGap(ctx context.Context, name string, prev, newest *identity.SignedDeviceList, gap *identity.GapError) (*identity.DeviceList, error) {
	const maxGap = 1000
	if gap.Got-gap.Have > maxGap {
		return nil, fmt.Errorf("client: %q's device list jumped %d versions; refusing to fetch more than %d", name, gap.Got-gap.Have, maxGap)
	}
	var run []*identity.SignedDeviceList
	for v := gap.Have + 1; v < gap.Got; v++ {
		resp, err := call(ctx, c, "fetching a device list version", c.dir.GetDeviceList, &parleyv1.GetDeviceListRequest{Username: name, Version: v})
		if err != nil {
			return nil, err
		}
		s, err := identity.ParseSignedDeviceList(resp.SignedDeviceList)
		if err != nil {
			return nil, err
		}
		run = append(run, s)
	}
	return identity.VerifyChain(prev, append(run, newest))
}

// storedList returns the last accepted list of an account, or nil.
func (c *Client) storedList(ctx context.Context, name string) (*identity.SignedDeviceList, error) {
	var raw []byte
	if name == c.username {
		id, err := c.db.Identity(ctx)
		if err != nil {
			return nil, err
		}
		raw = id.DeviceList
	} else {
		ct, err := c.db.Contact(ctx, name)
		if errors.Is(err, clientdb.ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		raw = ct.DeviceList
	}
	s, err := identity.ParseSignedDeviceList(raw)
	if err != nil {
		return nil, fmt.Errorf("client: stored device list of %q: %w", name, err)
	}
	return s, nil
}

func (c *Client) storeList(ctx context.Context, name string, s *identity.SignedDeviceList) error {
	return c.db.Update(ctx, func(tx *clientdb.Tx) error {
		if name == c.username {
			return tx.PutDeviceList(s.Marshal())
		}
		ct, err := tx.Contact(name)
		if errors.Is(err, clientdb.ErrNotFound) {
			ct = &clientdb.Contact{Username: name, Added: c.now()}
		} else if err != nil {
			return err
		}
		ct.DeviceList = s.Marshal()
		return tx.PutContact(ct)
	})
}

// knownDevice returns the public keys of a device of an account, from the
// stored list, refreshing it from the server if the device is not in it.
// c.mu must be held.
func (c *Client) knownDevice(ctx context.Context, name string, id identity.DeviceID) (*identity.DevicePublic, error) {
	for _, refresh := range []bool{false, true} {
		l, err := c.devices(ctx, name, refresh)
		if err != nil {
			return nil, err
		}
		if e, ok := l.Lookup(id); ok {
			return e.Device, nil
		}
	}
	return nil, securityError(fmt.Sprintf("device %s of %q", id, name), errors.New("not in the account's device list"))
}

// claimBundles fetches and verifies one bundle per device.
func (c *Client) claimBundles(ctx context.Context, name string, devs []*identity.DevicePublic) (map[identity.DeviceID]*prekey.Bundle, error) {
	req := &parleyv1.ClaimBundlesRequest{Username: name}
	for _, d := range devs {
		id := d.ID()
		req.DeviceIds = append(req.DeviceIds, id[:])
	}
	resp, err := call(ctx, c, "claiming prekeys of "+name, c.dir.ClaimBundles, req)
	if err != nil {
		return nil, err
	}
	out := map[identity.DeviceID]*prekey.Bundle{}
	for _, db := range resp.Bundles {
		if len(db.DeviceId) != identity.DeviceIDSize {
			return nil, securityError("prekey bundles of "+name, errors.New("bad device id"))
		}
		b, err := prekey.ParseBundle(db.Bundle)
		if err != nil {
			return nil, securityError("prekey bundles of "+name, err)
		}
		out[identity.DeviceID(db.DeviceId)] = b
	}
	// Signatures are verified by handshake.Initiate against the device's
	// key from the verified list.
	return out, nil
}
