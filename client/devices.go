package client

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
)

// The two halves of adding a device to an account (docs/client.md §8).
// Device linking (a later issue) carries the account key from an existing
// device to the new one over an end-to-end encrypted channel and then runs
// these two steps; any device of the account can run the first.

// addDevice signs and publishes the next version of this account's device
// list with dev added. Only a device holding the account key can do this,
// and every client checks the signature, so the server cannot add a device.
//
// prekeys, if not nil, are the new device's signed and last-resort prekeys
// (from its link offer); they are published with the list, so the device is
// reachable the moment it is added, even if it never finishes linking.
func (c *Client) addDevice(ctx context.Context, dev *identity.DevicePublic, name string, prekeys *parleyv1.PrekeyUpload) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var extra []*parleyv1.NewDevicePrekeys
	if prekeys != nil {
		id := dev.ID()
		extra = []*parleyv1.NewDevicePrekeys{{DeviceId: id[:], Prekeys: prekeys}}
	}
	return c.publishNext(ctx, extra, func(cur []identity.DeviceEntry) ([]identity.DeviceEntry, error) {
		for _, e := range cur {
			if e.Device.ID() == dev.ID() {
				return nil, fmt.Errorf("client: device %s is already in the account", dev.ID())
			}
		}
		if len(cur) >= identity.MaxDevices {
			return nil, fmt.Errorf("client: an account has at most %d devices (identity.MaxDevices); remove one first", identity.MaxDevices)
		}
		return append(cur, identity.DeviceEntry{Device: dev, Name: name, Added: uint64(c.now().Unix())}), nil
	})
}

// publishNext signs the next version of this account's device list, with
// the devices change returns (given a copy of the current ones, from a
// freshly fetched and verified list), publishes it and stores it. c.mu must
// be held.
func (c *Client) publishNext(ctx context.Context, newDevices []*parleyv1.NewDevicePrekeys, change func(cur []identity.DeviceEntry) ([]identity.DeviceEntry, error)) error {
	if _, err := c.devices(ctx, c.username, true); err != nil {
		return err
	}
	prev, err := c.storedList(ctx, c.username)
	if err != nil {
		return err
	}
	cur, err := prev.Verify(nil)
	if err != nil {
		return securityError("stored own device list", err)
	}
	devs, err := change(append([]identity.DeviceEntry(nil), cur.Devices...))
	if err != nil {
		return err
	}
	signed, err := identity.SignDeviceList(c.account, &identity.DeviceList{
		Account: c.username, Version: cur.Version + 1, Prev: prev.Hash(), Devices: devs,
	})
	if err != nil {
		return err
	}
	if _, err := call(ctx, c, "publishing the device list", c.dir.PublishDeviceList, &parleyv1.PublishDeviceListRequest{SignedDeviceList: signed.Marshal(), NewDevices: newDevices}); err != nil {
		return err
	}
	list, err := signed.Verify(prev)
	if err != nil {
		return err
	}
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
		if err := tx.PutDeviceList(signed.Marshal()); err != nil {
			return err
		}
		// Sessions with devices this version drops are of no more use.
		for _, id := range removedDevices(cur, list) {
			if err := tx.DeleteSession(id); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	c.lists[c.username] = list
	return nil
}

// RemoveDevice removes a device from this account: it publishes the next
// version of the account's device list without it (docs/client.md §8.2).
// The server then deletes the device's queue, prekeys and tokens; the
// device wipes its local store when it learns of it. Any device of the
// account may remove any other, or itself: removing this device wipes its
// local store at once and closes the client (RemoveDevice then returns
// nil, and every later call ErrDeviceRemoved). The last device cannot be
// removed (ErrLastDevice; delete the account instead).
func (c *Client) RemoveDevice(ctx context.Context, id identity.DeviceID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone.Load() {
		return ErrDeviceRemoved
	}
	err := c.publishNext(ctx, nil, func(cur []identity.DeviceEntry) ([]identity.DeviceEntry, error) {
		for i, e := range cur {
			if e.Device.ID() != id {
				continue
			}
			if len(cur) == 1 {
				return nil, ErrLastDevice
			}
			return append(cur[:i], cur[i+1:]...), nil
		}
		return nil, fmt.Errorf("%w: %s", ErrNoSuchDevice, id)
	})
	if err != nil {
		return err
	}
	if id == c.selfID {
		return c.wipe()
	}
	return nil
}

// RenameDevice gives a device of this account a new name, by publishing
// the next version of the account's device list. The name is at most
// identity.MaxDeviceNameSize bytes of UTF-8.
func (c *Client) RenameDevice(ctx context.Context, id identity.DeviceID, name string) error {
	if len(name) > identity.MaxDeviceNameSize || !utf8.ValidString(name) {
		return fmt.Errorf("client: a device name is at most %d bytes of UTF-8", identity.MaxDeviceNameSize)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone.Load() {
		return ErrDeviceRemoved
	}
	cur, err := c.devices(ctx, c.username, true)
	if err != nil {
		return err
	}
	if e, ok := cur.Lookup(id); ok && e.Name == name {
		return nil // nothing to publish
	}
	return c.publishNext(ctx, nil, func(cur []identity.DeviceEntry) ([]identity.DeviceEntry, error) {
		for i := range cur {
			if cur[i].Device.ID() == id {
				cur[i].Name = name
				return cur, nil
			}
		}
		return nil, fmt.Errorf("%w: %s", ErrNoSuchDevice, id)
	})
}

// DeleteAccount deletes this account from the server — every device, every
// version of its device list, its prekeys and queues — and then wipes this
// device's local store and closes the client. It does not ask: confirming
// is the caller's job. The account's other devices can no longer
// authenticate; they report ErrAccountDeleted (and keep their local store,
// since the server's word that an account is gone cannot be verified).
// The username becomes free for anyone to register; contacts who knew this
// account refuse a new account under the name (a changed account key).
func (c *Client) DeleteAccount(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone.Load() {
		return ErrDeviceRemoved
	}
	if _, err := call(ctx, c, "deleting the account", c.dir.DeleteAccount, &parleyv1.DeleteAccountRequest{Username: c.username}); err != nil {
		return err
	}
	return c.wipe()
}

// removedDevices returns the devices of from that to does not name.
func removedDevices(from, to *identity.DeviceList) []identity.DeviceID {
	var out []identity.DeviceID
	for _, e := range from.Devices {
		if _, ok := to.Lookup(e.Device.ID()); !ok {
			out = append(out, e.Device.ID())
		}
	}
	return out
}

// joinAccount sets up a new home for a device that an existing device has
// already added to the account's list: it stores the account key and this
// device's keys, verifies that the published list is signed by that account
// key and names this device, and uploads the device's prekeys.
func joinAccount(ctx context.Context, home, server, name string, account *identity.AccountKey, device *identity.DeviceKeys, opts Options) (*Client, error) {
	c, fail, err := newHome(ctx, home, server, name, opts)
	if err != nil {
		return nil, err
	}
	c.account, c.device, c.self = account, device, device.Public()
	c.selfID = c.self.ID()
	signed, err := c.checkJoined(ctx, nil)
	if err != nil {
		return fail(err)
	}
	if err := c.finishJoin(ctx, signed, nil, nil); err != nil {
		return fail(err)
	}
	return c, nil
}

// checkJoined authenticates (possible only once the account's list names
// this device) and checks the account's current list: signed by this
// client's account key, naming this device, and — if given — the same as or
// a chained successor of the list the device was handed. c.mu need not be
// held: the client is not shared yet.
func (c *Client) checkJoined(ctx context.Context, handed *identity.SignedDeviceList) (*identity.SignedDeviceList, error) {
	signed, trusted, err := c.lookup(ctx, c.username, c.authedGet)
	if err != nil {
		return nil, err
	}
	list, err := signed.Verify(handed)
	if err != nil {
		return nil, securityError("own device list", err)
	}
	if !list.Key.Equal(c.account.Public()) || list.Account != c.username {
		return nil, securityError("own device list", errors.New("not signed by this account's key"))
	}
	if _, ok := list.Lookup(c.selfID); !ok {
		return nil, securityError("own device list", errors.New("does not name this device"))
	}
	if err := c.commitTrusted(ctx, trusted); err != nil {
		return nil, err
	}
	c.lists[c.username] = list
	return signed, nil
}

// finishJoin stores this device's identity and prekeys and uploads the
// prekeys (making them first unless set is given; a set from a link offer
// has its signed and last-resort keys on the server already, and uploading
// them again changes nothing). The private keys are stored before the public
// ones leave.
func (c *Client) finishJoin(ctx context.Context, list *identity.SignedDeviceList, set *prekey.Set, up *prekey.Upload) error {
	if set == nil {
		var err error
		if set, up, err = prekey.NewSet(c.device.Signing, InitialPrekeys); err != nil {
			return err
		}
	}
	c.prekeys = set
	if err := c.db.PutIdentity(ctx, &clientdb.Identity{
		Username: c.username, ServerURL: c.server, AccountKeySeed: c.account.Seed(),
		DeviceKeys: c.device.Marshal(), Prekeys: set.Marshal(), DeviceList: list.Marshal(),
	}); err != nil {
		return err
	}
	_, err := call(ctx, c, "uploading prekeys", c.dir.UploadPrekeys, &parleyv1.UploadPrekeysRequest{Prekeys: uploadProto(up)})
	return err
}
