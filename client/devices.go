package client

import (
	"context"
	"errors"
	"fmt"

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
func (c *Client) addDevice(ctx context.Context, dev *identity.DevicePublic, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := c.devices(ctx, c.username, true)
	if err != nil {
		return err
	}
	if _, ok := cur.Lookup(dev.ID()); ok {
		return fmt.Errorf("client: device %s is already in the account", dev.ID())
	}
	if len(cur.Devices) >= identity.MaxDevices {
		return fmt.Errorf("client: an account has at most %d devices (identity.MaxDevices); remove one first", identity.MaxDevices)
	}
	prev, err := c.storedList(ctx, c.username)
	if err != nil {
		return err
	}
	next := &identity.DeviceList{
		Account: c.username, Version: cur.Version + 1, Prev: prev.Hash(),
		Devices: append(append([]identity.DeviceEntry(nil), cur.Devices...), identity.DeviceEntry{Device: dev, Name: name, Added: uint64(c.now().Unix())}),
	}
	signed, err := identity.SignDeviceList(c.account, next)
	if err != nil {
		return err
	}
	if _, err := call(ctx, c, "publishing the device list", c.dir.PublishDeviceList, &parleyv1.PublishDeviceListRequest{SignedDeviceList: signed.Marshal()}); err != nil {
		return err
	}
	list, err := signed.Verify(prev)
	if err != nil {
		return err
	}
	if err := c.storeList(ctx, c.username, signed); err != nil {
		return err
	}
	c.lists[c.username] = list
	return nil
}

// joinAccount sets up a new home for a device that an existing device has
// already added to the account's list: it stores the account key and this
// device's keys, verifies that the published list is signed by that account
// key and names this device, and uploads the device's prekeys.
func joinAccount(ctx context.Context, home, server, name string, account *identity.AccountKey, device *identity.DeviceKeys, opts Options) (*Client, error) {
	c, fail, err := newHome(home, server, name, opts)
	if err != nil {
		return nil, err
	}
	c.account, c.device, c.self = account, device, device.Public()
	c.selfID = c.self.ID()
	signed, err := c.checkJoined(ctx, nil)
	if err != nil {
		return fail(err)
	}
	if err := c.finishJoin(ctx, signed); err != nil {
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
	got, err := call(ctx, c, "fetching the device list", c.dir.GetDeviceList, &parleyv1.GetDeviceListRequest{Username: c.username})
	if err != nil {
		return nil, err
	}
	signed, err := identity.ParseSignedDeviceList(got.SignedDeviceList)
	if err != nil {
		return nil, securityError("own device list", err)
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
	c.lists[c.username] = list
	return signed, nil
}

// finishJoin makes this device's prekeys, stores its identity and uploads
// the prekeys. The private keys are stored before the public ones leave.
func (c *Client) finishJoin(ctx context.Context, list *identity.SignedDeviceList) error {
	set, up, err := prekey.NewSet(c.device.Signing, InitialPrekeys)
	if err != nil {
		return err
	}
	c.prekeys = set
	if err := c.db.PutIdentity(ctx, &clientdb.Identity{
		Username: c.username, ServerURL: c.server, AccountKeySeed: c.account.Seed(),
		DeviceKeys: c.device.Marshal(), Prekeys: set.Marshal(), DeviceList: list.Marshal(),
	}); err != nil {
		return err
	}
	_, err = call(ctx, c, "uploading prekeys", c.dir.UploadPrekeys, &parleyv1.UploadPrekeysRequest{Prekeys: uploadProto(up)})
	return err
}
