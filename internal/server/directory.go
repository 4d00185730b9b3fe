package server

import (
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/username"
)

type directoryService struct{ s *Server }

// InviteHash is how the store keeps an invite token: only its hash, so a
// copy of the database does not hold usable invites.
func InviteHash(token string) []byte {
	h := primitives.Hash(primitives.LabelInvite, []byte(token))
	return h[:]
}

func (d *directoryService) Register(ctx context.Context, req *connect.Request[parleyv1.RegisterRequest]) (*connect.Response[parleyv1.RegisterResponse], error) {
	s, m := d.s, req.Msg
	switch s.cfg.Registration {
	case RegistrationClosed:
		return nil, errRegistrationOff
	case RegistrationInvite:
		if m.Invite == "" {
			return nil, errInviteRequired
		}
	}
	name, err := username.Normalize(m.Username)
	if err != nil {
		return nil, err
	}
	signed, err := identity.ParseSignedDeviceList(m.SignedDeviceList)
	if err != nil {
		return nil, err
	}
	list, err := signed.Verify(nil)
	if err != nil {
		return nil, err
	}
	dev, err := identity.ParseDevicePublic(m.Device)
	if err != nil {
		return nil, err
	}
	switch {
	case list.Account != name:
		return nil, badRequest("the device list names account %q, not %q", list.Account, name)
	case list.Version != 1:
		return nil, badRequest("a new account's device list must be version 1, not %d", list.Version)
	case len(list.Devices) != 1 || !list.Devices[0].Device.Equal(dev):
		return nil, badRequest("a new account's device list must name exactly the registering device")
	}
	up, err := s.parseUpload(dev, m.Prekeys, true)
	if err != nil {
		return nil, err
	}
	now := s.now()
	id := store.DeviceID(dev.ID())
	na := store.NewAccount{
		Account: store.Account{Username: name, AccountKey: list.Key.Bytes(), Created: now, ListVersion: 1},
		List:    store.DeviceList{Username: name, Version: 1, Signed: m.SignedDeviceList},
		Devices: []store.Device{{ID: id, Username: name, Public: dev.Marshal(), Added: now, LastSeen: now}},
		Prekeys: map[store.DeviceID]store.PrekeyUpload{id: up},
	}
	if s.cfg.Registration == RegistrationInvite {
		na.InviteHash = InviteHash(m.Invite)
	}
	if err := s.store.CreateAccount(ctx, na); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "account registered", "username", name, "device", fmt.Sprintf("%x", id[:]))
	return connect.NewResponse(&parleyv1.RegisterResponse{DeviceId: id[:], Username: name}), nil
}

// parseUpload parses and verifies every prekey in an upload under the
// device's signing key. Registration must carry the signed and last-resort
// prekeys.
func (s *Server) parseUpload(dev *identity.DevicePublic, pb *parleyv1.PrekeyUpload, registering bool) (store.PrekeyUpload, error) {
	var up store.PrekeyUpload
	if pb == nil {
		pb = &parleyv1.PrekeyUpload{}
	}
	if registering && (pb.SignedPrekey == nil || pb.LastResortPrekey == nil) {
		return up, badRequest("registration needs a signed prekey and a last-resort prekey")
	}
	if n := max(len(pb.OneTimePrekeys), len(pb.PqPrekeys)); n > s.cfg.MaxPrekeysPerUpload {
		return up, badRequest("at most %d one-time prekeys of each kind per upload, got %d", s.cfg.MaxPrekeysPerUpload, n)
	}
	x25519 := func(b []byte, kind prekey.Kind) (store.Prekey, error) {
		p, err := prekey.ParseX25519Public(b, kind)
		if err != nil {
			return store.Prekey{}, err
		}
		if err := p.Verify(dev.Signing, kind); err != nil {
			return store.Prekey{}, err
		}
		return store.Prekey{ID: uint32(p.ID), Body: b}, nil
	}
	mlkem := func(b []byte, kind prekey.Kind) (store.Prekey, error) {
		p, err := prekey.ParseMLKEMPublic(b, kind)
		if err != nil {
			return store.Prekey{}, err
		}
		if err := p.Verify(dev.Signing); err != nil {
			return store.Prekey{}, err
		}
		return store.Prekey{ID: uint32(p.ID), Body: b}, nil
	}
	if pb.SignedPrekey != nil {
		p, err := x25519(pb.SignedPrekey, prekey.KindSignedX25519)
		if err != nil {
			return up, err
		}
		up.Signed = &p
	}
	if pb.LastResortPrekey != nil {
		p, err := mlkem(pb.LastResortPrekey, prekey.KindLastResortMLKEM)
		if err != nil {
			return up, err
		}
		up.LastResort = &p
	}
	for _, b := range pb.OneTimePrekeys {
		p, err := x25519(b, prekey.KindOneTimeX25519)
		if err != nil {
			return up, err
		}
		up.OneTime = append(up.OneTime, p)
	}
	for _, b := range pb.PqPrekeys {
		p, err := mlkem(b, prekey.KindOneTimeMLKEM)
		if err != nil {
			return up, err
		}
		up.PQ = append(up.PQ, p)
	}
	return up, nil
}

func (d *directoryService) GetDeviceList(ctx context.Context, req *connect.Request[parleyv1.GetDeviceListRequest]) (*connect.Response[parleyv1.GetDeviceListResponse], error) {
	name, err := username.Normalize(req.Msg.Username)
	if err != nil {
		return nil, err
	}
	l, err := d.s.store.DeviceList(ctx, name, req.Msg.Version)
	if err != nil {
		return nil, err
	}
	resp := &parleyv1.GetDeviceListResponse{SignedDeviceList: l.Signed}
	// Key transparency (docs/server.md §5.2): the head and the search
	// proof of the greatest version sequenced into the newest published
	// epoch, whatever version was asked for. signed_device_list may be a
	// newer, not yet sequenced successor of kt_value; the client checks
	// the chain from kt_value to it.
	if d.s.kt != nil {
		if v := d.s.kt.view.Load(); v != nil {
			if resp.KtHead, err = v.head(req.Msg.KtFromSize); err != nil {
				return nil, err
			}
			if resp.KtSearch, resp.KtValue, err = d.s.ktSearch(ctx, v, name); err != nil {
				return nil, err
			}
		}
	}
	return connect.NewResponse(resp), nil
}

func (d *directoryService) UploadPrekeys(ctx context.Context, req *connect.Request[parleyv1.UploadPrekeysRequest]) (*connect.Response[parleyv1.UploadPrekeysResponse], error) {
	s, dev := d.s, caller(ctx)
	full, err := s.store.Device(ctx, dev.ID)
	if err != nil {
		return nil, err
	}
	pub, err := identity.ParseDevicePublic(full.Public)
	if err != nil {
		return nil, err
	}
	up, err := s.parseUpload(pub, req.Msg.Prekeys, false)
	if err != nil {
		return nil, err
	}
	if err := s.store.AddPrekeys(ctx, dev.ID, up); err != nil {
		return nil, err
	}
	ot, pq, err := s.store.PrekeyCounts(ctx, dev.ID)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&parleyv1.UploadPrekeysResponse{OneTimePrekeys: uint32(ot), PqPrekeys: uint32(pq)}), nil
}

func (d *directoryService) ClaimBundles(ctx context.Context, req *connect.Request[parleyv1.ClaimBundlesRequest]) (*connect.Response[parleyv1.ClaimBundlesResponse], error) {
	s := d.s
	name, err := username.Normalize(req.Msg.Username)
	if err != nil {
		return nil, err
	}
	current, err := s.store.Devices(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(current) == 0 {
		return nil, fmt.Errorf("account %q: %w", name, store.ErrNotFound)
	}
	want := make([]store.DeviceID, 0, len(current))
	if len(req.Msg.DeviceIds) == 0 {
		for _, dv := range current {
			want = append(want, dv.ID)
		}
	} else {
		if len(req.Msg.DeviceIds) > identity.MaxDevices {
			return nil, badRequest("at most %d devices per claim", identity.MaxDevices)
		}
		for _, b := range req.Msg.DeviceIds {
			id, err := deviceID(b)
			if err != nil {
				return nil, err
			}
			found := false
			for _, dv := range current {
				found = found || dv.ID == id
			}
			if !found {
				return nil, fmt.Errorf("device %x of %q: %w", id[:], name, store.ErrNotFound)
			}
			want = append(want, id)
		}
	}
	resp := &parleyv1.ClaimBundlesResponse{}
	for _, id := range want {
		b, err := s.store.ClaimBundle(ctx, id)
		if err != nil {
			return nil, err
		}
		bundle, err := assembleBundle(b)
		if err != nil {
			return nil, err
		}
		resp.Bundles = append(resp.Bundles, &parleyv1.DeviceBundle{DeviceId: id[:], Bundle: bundle.Marshal()})
		if b.OneTimeLeft < s.cfg.PrekeyLowWater || b.PQLeft < s.cfg.PrekeyLowWater {
			// Wake the device's stream, which tells it to replenish.
			_ = s.bus.Notify(ctx, id, 0)
		}
	}
	return connect.NewResponse(resp), nil
}

// assembleBundle rebuilds a prekey.Bundle from the stored encodings, which
// were verified at upload.
func assembleBundle(b *store.Bundle) (*prekey.Bundle, error) {
	signed, err := prekey.ParseX25519Public(b.Signed.Body, prekey.KindSignedX25519)
	if err != nil {
		return nil, fmt.Errorf("server: stored signed prekey is corrupt: %v", err)
	}
	kind := prekey.KindOneTimeMLKEM
	if b.PQLastResort {
		kind = prekey.KindLastResortMLKEM
	}
	pq, err := prekey.ParseMLKEMPublic(b.PQ.Body, kind)
	if err != nil {
		return nil, fmt.Errorf("server: stored ML-KEM prekey is corrupt: %v", err)
	}
	out := &prekey.Bundle{Signed: *signed, PQ: *pq}
	if b.OneTime != nil {
		ot, err := prekey.ParseX25519Public(b.OneTime.Body, prekey.KindOneTimeX25519)
		if err != nil {
			return nil, fmt.Errorf("server: stored one-time prekey is corrupt: %v", err)
		}
		out.OneTime = ot
	}
	return out, nil
}

// NewInviteToken returns a fresh invite token: 128 random bits, base32
// without padding, easy to paste.
func NewInviteToken() string {
	var b [16]byte
	primitives.Random(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func (d *directoryService) PublishDeviceList(ctx context.Context, req *connect.Request[parleyv1.PublishDeviceListRequest]) (*connect.Response[parleyv1.PublishDeviceListResponse], error) {
	resp, err := d.s.publishList(ctx, caller(ctx).Username, req.Msg.SignedDeviceList, req.Msg.NewDevices)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// RecoverAccount publishes the next device list for a device that holds the
// account key but has no token: a device restoring a backup. The account
// key's signature over the chained next version is the whole authority,
// exactly as in PublishDeviceList; an unauthenticated caller can do no more
// than replay a version that is already published (a no-op) or one that is
// no longer the next (refused).
func (d *directoryService) RecoverAccount(ctx context.Context, req *connect.Request[parleyv1.RecoverAccountRequest]) (*connect.Response[parleyv1.RecoverAccountResponse], error) {
	name, err := username.Normalize(req.Msg.Username)
	if err != nil {
		return nil, err
	}
	resp, err := d.s.publishList(ctx, name, req.Msg.SignedDeviceList, req.Msg.NewDevices)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&parleyv1.RecoverAccountResponse{Version: resp.Version}), nil
}

// publishList verifies and stores the next version of an account's device
// list with the prekeys of the devices it adds.
func (s *Server) publishList(ctx context.Context, account string, signedList []byte, newDevices []*parleyv1.NewDevicePrekeys) (*parleyv1.PublishDeviceListResponse, error) {
	signed, err := identity.ParseSignedDeviceList(signedList)
	if err != nil {
		return nil, err
	}
	cur, err := s.store.DeviceList(ctx, account, 0)
	if err != nil {
		return nil, err
	}
	prev, err := identity.ParseSignedDeviceList(cur.Signed)
	if err != nil {
		return nil, fmt.Errorf("server: stored device list of %q is corrupt: %v", account, err)
	}
	// The same checks every client applies (docs/protocol.md §3.3): signed
	// by the same account key, the same account, the next version, chained
	// by hash. The server refuses what clients would refuse, so that a
	// buggy or malicious device cannot publish a list that breaks its
	// account for everyone.
	list, err := signed.Verify(prev)
	var gap *identity.GapError
	if errors.As(err, &gap) {
		return nil, badRequest("the next device list version is %d, not %d", gap.Have+1, gap.Got)
	} else if err != nil {
		return nil, err
	}
	resp := &parleyv1.PublishDeviceListResponse{Version: list.Version}
	if list.Version == cur.Version {
		return resp, nil // a retry of the current version
	}
	now := s.now()
	devices := make([]store.Device, 0, len(list.Devices))
	for _, e := range list.Devices {
		devices = append(devices, store.Device{
			ID: store.DeviceID(e.Device.ID()), Username: account, Public: e.Device.Marshal(), Added: now, LastSeen: now,
		})
	}
	// Prekeys of devices this version adds: each verified under the new
	// device's own signing key, from the list just verified.
	var prekeys map[store.DeviceID]store.PrekeyUpload
	if n := len(newDevices); n > identity.MaxDevices {
		return nil, badRequest("prekeys for at most %d new devices", identity.MaxDevices)
	}
	prevList, err := prev.Verify(nil)
	if err != nil {
		return nil, fmt.Errorf("server: stored device list of %q does not verify: %v", account, err)
	}
	for _, nd := range newDevices {
		id, err := deviceID(nd.DeviceId)
		if err != nil {
			return nil, err
		}
		entry, ok := list.Lookup(identity.DeviceID(id))
		if _, before := prevList.Lookup(identity.DeviceID(id)); !ok || before {
			return nil, badRequest("prekeys for device %x, which this version does not add", id[:])
		}
		up, err := s.parseUpload(entry.Device, nd.Prekeys, true)
		if err != nil {
			return nil, err
		}
		if prekeys == nil {
			prekeys = map[store.DeviceID]store.PrekeyUpload{}
		}
		prekeys[id] = up
	}
	removed, err := s.store.UpdateDeviceList(ctx, store.DeviceListUpdate{
		List:    store.DeviceList{Username: account, Version: list.Version, Signed: signedList},
		Devices: devices,
		Prekeys: prekeys,
	})
	if err != nil {
		return nil, err
	}
	s.cache.forgetAccount(account, removed...)
	for _, id := range removed {
		resp.Removed = append(resp.Removed, append([]byte(nil), id[:]...))
		// End the removed device's delivery stream: claiming its stream
		// displaces whoever holds it. Its token stops working at once,
		// because authentication looks the device up.
		if _, release, err := s.bus.Claim(ctx, id); err == nil {
			release()
		}
	}
	s.log.InfoContext(ctx, "device list published", "username", account, "version", list.Version, "devices", len(devices), "removed", len(removed))
	return resp, nil
}
