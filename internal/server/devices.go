package server

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/username"
)

// The directory calls that manage an account's own devices and the account
// itself (docs/server.md §2, §3.5): listing with the server's times,
// deleting the account, and the proof a removed device asks for.

// maxRemovalProofLists bounds how many device-list versions one
// GetRemovalProof answer carries (a list is at most ~40 KB); the device asks
// again from the last one for more.
const maxRemovalProofLists = 64

var (
	errAccountDeleted = errors.New("this device's account was deleted")
	errDeviceCurrent  = errors.New("this device is in its account's current device list; authenticate instead")
)

// ListDevices returns the caller's own account's current devices with the
// times only the server knows. It takes no account name: a device sees the
// last-seen times of its own account only.
func (d *directoryService) ListDevices(ctx context.Context, req *connect.Request[parleyv1.ListDevicesRequest]) (*connect.Response[parleyv1.ListDevicesResponse], error) {
	devs, err := d.s.store.Devices(ctx, caller(ctx).Username)
	if err != nil {
		return nil, err
	}
	resp := &parleyv1.ListDevicesResponse{Devices: make([]*parleyv1.DeviceInfo, 0, len(devs))}
	for _, dv := range devs {
		resp.Devices = append(resp.Devices, &parleyv1.DeviceInfo{
			DeviceId: append([]byte(nil), dv.ID[:]...), AddedUnixMs: dv.Added.UnixMilli(), LastSeenUnixMs: dv.LastSeen.UnixMilli(),
		})
	}
	return connect.NewResponse(resp), nil
}

// DeleteAccount deletes the caller's own account with everything the store
// keeps for it, then ends the delivery streams of its devices (they end with
// PermissionDenied, errAccountDeleted). The request names the account so
// that a client cannot delete one it did not mean to.
func (d *directoryService) DeleteAccount(ctx context.Context, req *connect.Request[parleyv1.DeleteAccountRequest]) (*connect.Response[parleyv1.DeleteAccountResponse], error) {
	s, dev := d.s, caller(ctx)
	name, err := username.Normalize(req.Msg.Username)
	if err != nil {
		return nil, err
	}
	if name != dev.Username {
		return nil, errNotYourAccount
	}
	devs, err := s.store.Devices(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteAccount(ctx, name); err != nil {
		return nil, err
	}
	for _, dv := range devs {
		s.cache.forgetAccount(name, dv.ID)
		// As for a removed device: claiming the stream displaces it, and
		// the stream finds its device gone.
		if _, release, err := s.bus.Claim(ctx, dv.ID); err == nil {
			release()
		}
	}
	s.log.InfoContext(ctx, "account deleted", "username", name, "devices", len(devs))
	return connect.NewResponse(&parleyv1.DeleteAccountResponse{}), nil
}

// GetRemovalProof answers a device that proves possession of its signing
// key, is named in version known_version of its account's list, and is no
// longer current, with the list versions after known_version. The device
// verifies them under its account key and wipes itself only if one of them,
// chained to what it knew, drops it (docs/client.md §8.2): the server alone
// cannot make a device wipe itself.
func (d *directoryService) GetRemovalProof(ctx context.Context, req *connect.Request[parleyv1.GetRemovalProofRequest]) (*connect.Response[parleyv1.GetRemovalProofResponse], error) {
	s, m := d.s, req.Msg
	id, err := deviceID(m.DeviceId)
	if err != nil {
		return nil, err
	}
	name, err := username.Normalize(m.Username)
	if err != nil {
		return nil, err
	}
	if err := s.checkChallenge(id, m.Challenge); err != nil {
		return nil, err
	}
	if _, err := s.store.Account(ctx, name); err != nil {
		return nil, err // NotFound: the account was deleted
	}
	known, err := s.store.DeviceList(ctx, name, m.KnownVersion)
	if errors.Is(err, store.ErrNotFound) || m.KnownVersion == 0 {
		return nil, errUnauthenticated
	} else if err != nil {
		return nil, err
	}
	signed, err := identity.ParseSignedDeviceList(known.Signed)
	if err != nil {
		return nil, fmt.Errorf("server: stored device list of %q is corrupt: %v", name, err)
	}
	list, err := signed.Verify(nil)
	if err != nil {
		return nil, fmt.Errorf("server: stored device list of %q does not verify: %v", name, err)
	}
	entry, ok := list.Lookup(identity.DeviceID(id))
	if !ok {
		return nil, errUnauthenticated
	}
	if err := entry.Device.Signing.Verify(primitives.LabelSigAuthChallenge, m.Challenge, m.Signature); err != nil {
		return nil, errUnauthenticated
	}
	if _, err := s.store.Device(ctx, id); err == nil {
		return nil, errDeviceCurrent
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	cur, err := s.store.DeviceList(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	resp := &parleyv1.GetRemovalProofResponse{}
	for v := m.KnownVersion + 1; v <= cur.Version; v++ {
		if len(resp.SignedDeviceLists) == maxRemovalProofLists {
			resp.More = true
			break
		}
		l, err := s.store.DeviceList(ctx, name, v)
		if err != nil {
			return nil, err
		}
		resp.SignedDeviceLists = append(resp.SignedDeviceLists, l.Signed)
	}
	return connect.NewResponse(resp), nil
}

// goneReason says why a device's rows are gone: its account was deleted, or
// the account removed it.
func (s *Server) goneReason(ctx context.Context, dev *store.Device) error {
	if _, err := s.store.Account(ctx, dev.Username); errors.Is(err, store.ErrNotFound) {
		return errAccountDeleted
	}
	return errDeviceRemoved
}
