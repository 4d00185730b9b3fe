package client

import (
	"context"
	"errors"
	"fmt"
	"time"

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
//
// Key transparency (lookup) vouches first that the list is the one the log
// commits to for everyone (or its chained successor); the chain to what
// this device accepted before is checked on top. The verified checkpoint
// is stored only once all of it passed.
func (c *Client) deviceList(ctx context.Context, name string) (*identity.DeviceList, error) {
	prev, err := c.storedList(ctx, name)
	if err != nil {
		return nil, err
	}
	signed, trusted, err := c.lookup(ctx, name, c.authedGet)
	if err != nil {
		return nil, err
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
	if name == c.username {
		if _, ok := list.Lookup(c.selfID); !ok {
			// Signed by the account key and chained to what this device
			// accepted: proof that the account removed this device.
			if err := c.wipe(); err != nil {
				return nil, fmt.Errorf("%w (but deleting the local store failed: %v)", ErrDeviceRemoved, err)
			}
			return nil, ErrDeviceRemoved
		}
	}
	if err := c.commitTrusted(ctx, trusted); err != nil {
		return nil, err
	}
	if prev == nil || prev.Hash() != signed.Hash() {
		var old *identity.DeviceList
		if prev != nil {
			if old, err = prev.Verify(nil); err != nil {
				return nil, securityError(fmt.Sprintf("stored device list of %q", name), err)
			}
		}
		if err := c.acceptList(ctx, name, signed, old, list); err != nil {
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

// acceptList stores a newly accepted device list of an account and, if it
// replaces an older one (old), acts on the change (docs/client.md §8.4):
// the sessions with devices it drops are deleted (new devices get sessions
// on the next send), a contact's conversation gets a system line per added
// or removed device, and Receive reports each change as an event. c.mu must
// be held.
func (c *Client) acceptList(ctx context.Context, name string, signed *identity.SignedDeviceList, old, list *identity.DeviceList) error {
	var changes []Event
	if old != nil {
		for _, e := range list.Devices {
			if _, ok := old.Lookup(e.Device.ID()); !ok {
				changes = append(changes, Event{Kind: EventDeviceAdded, From: name, FromDevice: e.Device.ID(), DeviceName: e.Name})
			}
		}
		for _, e := range old.Devices {
			if _, ok := list.Lookup(e.Device.ID()); !ok {
				changes = append(changes, Event{Kind: EventDeviceRemoved, From: name, FromDevice: e.Device.ID(), DeviceName: e.Name})
			}
		}
	}
	now := c.now().Truncate(time.Millisecond)
	listHash := signed.Hash()
	err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
		if name == c.username {
			if err := tx.PutDeviceList(signed.Marshal()); err != nil {
				return err
			}
		} else {
			ct, err := tx.Contact(name)
			if errors.Is(err, clientdb.ErrNotFound) {
				ct = &clientdb.Contact{Username: name, Added: c.now()}
			} else if err != nil {
				return err
			}
			ct.DeviceList = signed.Marshal()
			if err := tx.PutContact(ct); err != nil {
				return err
			}
		}
		for _, ch := range changes {
			if ch.Kind == EventDeviceRemoved {
				if err := tx.DeleteSession(ch.FromDevice); err != nil {
					return err
				}
			}
			if name == c.username {
				continue // changes to this account are not a conversation's
			}
			if _, err := tx.PutMessage(systemLine(name, listHash, ch, now)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if c.changes != nil {
		*c.changes = append(*c.changes, changes...)
	}
	return nil
}

// systemLine is the conversation line recording a change to a contact's
// devices. Its id is derived from the list version that made the change and
// the device, so that the line is stored once however often the change is
// seen (a redelivery, a history transfer to a new device).
func systemLine(contact string, listHash [32]byte, ch Event, now time.Time) *clientdb.Message {
	var id [16]byte
	for i := range id {
		id[i] = listHash[i] ^ ch.FromDevice[i]
	}
	verb := "added"
	if ch.Kind == EventDeviceRemoved {
		verb = "removed"
	}
	text := fmt.Sprintf("%s %s a device", contact, verb)
	if ch.DeviceName != "" {
		text += fmt.Sprintf(" (%q)", ch.DeviceName)
	}
	return &clientdb.Message{ID: id, Conversation: contact, Sender: contact, SenderDevice: ch.FromDevice,
		Sent: now, Received: now, Body: []byte(text), State: clientdb.StateSystem}
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
