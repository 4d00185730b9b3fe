package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/provision"
	"github.com/parleyim/parley/internal/username"
)

// Linking a new device (docs/protocol.md §9, docs/client.md §8): the new
// device makes an offer and shows its code; an existing device approves the
// code, adds the new device to the account's device list and sends it the
// account key, the contacts and the whole history, end to end encrypted,
// through a one-time mailbox on the server.

// Progress reports long work: Done of Total items of Phase.
type Progress struct {
	Phase       string // "contacts" or "history"
	Done, Total int
}

var (
	// ErrLinkDeclined reports an approval the person declined (the
	// confirmation strings differed, or they said no).
	ErrLinkDeclined = errors.New("client: link declined: the confirmation did not match")
	// ErrLinkEnded reports, on the new device, that its mailbox is gone:
	// the approval was declined on the other device, or the code expired.
	ErrLinkEnded = errors.New("client: the link was declined on the other device or its code expired; start linking again")
)

// PendingLink is a new device waiting for an existing device to approve it.
type PendingLink struct {
	// Code is what the person types on the existing device
	// (parley device approve CODE); QR is the same as a QR code payload.
	Code, QR string
	// Confirmation is shown on both devices; the person compares them.
	Confirmation string
	// DeviceName is this device's name in the account's device list.
	DeviceName string

	home, server, username string
	opts                   Options
	device                 *identity.DeviceKeys
	secret                 *provision.OfferSecret
	address                [provision.AddressSize]byte
	prov                   parleyv1connect.ProvisioningServiceClient
	// prekeys are made before the offer, which carries the signed and
	// last-resort ones: the approving device publishes them with the list.
	prekeys *prekey.Set
	upload  *prekey.Upload
}

// StartLink begins linking a new device, with a new home, to the account
// name on server: it makes the offer and puts it in a mailbox on the server.
// Show the code (or QR) and the confirmation string, then call Wait.
func StartLink(ctx context.Context, home, server, name string, opts Options) (*PendingLink, error) {
	server, err := NormalizeServerURL(server)
	if err != nil {
		return nil, err
	}
	name, err = username.Normalize(name)
	if err != nil {
		return nil, err
	}
	devName := opts.DeviceName
	if devName == "" {
		devName = defaultDeviceName()
	}
	if opts.LogConfig == nil {
		// Pin the log now, before anything else is asked of the server.
		if opts.LogConfig, err = FetchLogConfig(ctx, server, opts.HTTPClient); err != nil {
			return nil, err
		}
	}
	p := &PendingLink{DeviceName: devName, home: home, server: server, username: name, opts: opts, device: identity.GenerateDeviceKeys()}
	if p.prekeys, p.upload, err = prekey.NewSet(p.device.Signing, InitialPrekeys); err != nil {
		return nil, err
	}
	offer, secret, err := provision.NewOfferWithPrekeys(p.device.Public(), devName, time.Now(), p.upload.Signed, p.upload.LastResort)
	if err != nil {
		return nil, err
	}
	p.secret, p.address = secret, offer.Address()
	p.Code, p.QR, p.Confirmation = offer.Code(), offer.QR(), offer.Confirmation()
	p.prov = parleyv1connect.NewProvisioningServiceClient(opts.httpClient(), server)
	if _, err := p.prov.PutOffer(ctx, connect.NewRequest(&parleyv1.PutOfferRequest{Offer: offer.Marshal()})); err != nil {
		return nil, wrapRPC("link", err)
	}
	return p, nil
}

// Wait receives the transfer, checks it, and sets up the new home: the
// account key, the contacts and the history, then this device's prekeys.
// It returns the new device's client. On any error the new home is removed,
// so the person can start again.
func (p *PendingLink) Wait(ctx context.Context, progress func(Progress)) (*Client, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	stream, err := p.prov.ReceiveFrames(ctx, connect.NewRequest(&parleyv1.ReceiveFramesRequest{Address: p.address[:]}))
	if err != nil {
		return nil, wrapRPC("link", err)
	}
	defer stream.Close()
	rx := provision.NewReceiver(p.secret, p.username)
	var (
		c        *Client
		fail     func(error) (*Client, error)
		list     *identity.SignedDeviceList
		total    [2]int // contacts, messages announced
		contacts int
		messages int
		finished bool
	)
	abort := func(err error) (*Client, error) {
		// Close the mailbox so that the code cannot be approved any more:
		// an approval after this device gave up would add a device that
		// will never exist. (An approval already made stays published; the
		// person removes the device.) With a fresh context: ctx may be
		// the reason we stop.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = p.prov.CloseMailbox(cctx, connect.NewRequest(&parleyv1.CloseMailboxRequest{Address: p.address[:]}))
		cancel()
		if errors.Is(err, provision.ErrSecurity) {
			err = securityError("the link transfer", err)
		}
		if fail != nil {
			return fail(err)
		}
		return nil, err
	}
	for !finished {
		if !stream.Receive() {
			err := stream.Err()
			if connect.CodeOf(err) == connect.CodeNotFound {
				return abort(ErrLinkEnded)
			}
			if err != nil {
				return abort(wrapRPC("link", err))
			}
			return abort(provision.ErrIncomplete)
		}
		item, err := rx.Open(stream.Msg().Frame)
		if err != nil {
			return abort(err)
		}
		switch v := item.(type) {
		case *provision.Account:
			if c, fail, err = newHome(ctx, p.home, p.server, p.username, p.opts); err != nil {
				return nil, err
			}
			c.account, c.device, c.self = v.Key, p.device, p.device.Public()
			c.selfID = c.self.ID()
			// The transfer is not authenticated by itself (anyone who knows
			// the offer can seal to it): it counts only if the directory's
			// list is the one it carries or a chained successor, signed by
			// the account key it carries (provision.NewReceiver).
			if list, err = c.checkJoined(ctx, v.List); err != nil {
				return fail(err)
			}
			// Publish the one-time prekeys at once (the signed and
			// last-resort ones came with the list): contacts' first
			// messages then get one-time keys too.
			if err := c.finishJoin(ctx, list, p.prekeys, p.upload); err != nil {
				return fail(err)
			}
			total = [2]int{int(v.Contacts), int(v.Messages)}
		case []provision.Contact:
			if err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
				for _, ct := range v {
					if err := tx.PutContact(&clientdb.Contact{Username: ct.Username, DeviceList: ct.List.Marshal(), Verified: ct.Verified, Added: ct.Added}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return fail(err)
			}
			contacts += len(v)
			progress(Progress{Phase: "contacts", Done: contacts, Total: total[0]})
		case []provision.HistoryMessage:
			if err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
				for i := range v {
					m := &v[i]
					if _, err := tx.PutMessage(&clientdb.Message{
						ID: m.ID, Conversation: m.Conversation, Sender: m.Sender, SenderDevice: m.SenderDevice,
						Outgoing: m.Outgoing, Sent: m.Sent, Received: m.Received, Body: m.Body, State: clientdb.DeliveryState(m.State),
					}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return fail(err)
			}
			messages += len(v)
			progress(Progress{Phase: "history", Done: messages, Total: total[1]})
		case *provision.End:
			if err := rx.Finish(); err != nil {
				return fail(err)
			}
			finished = true
		}
	}
	// The mailbox has served its purpose; the server also expires it.
	if _, err := p.prov.CloseMailbox(ctx, connect.NewRequest(&parleyv1.CloseMailboxRequest{Address: p.address[:]})); err != nil {
		c.log.Debug("closing the provisioning mailbox", "err", err)
	}
	return c, nil
}

// ApproveLink links the new device whose code the person typed: it fetches
// and checks the device's offer, asks confirm (which shows the new device's
// name and the confirmation string and returns nil if the person confirms
// they match), adds the device to the account's device list, and sends it
// the account key, the contacts and the whole history.
func (c *Client) ApproveLink(ctx context.Context, code string, confirm func(deviceName, confirmation string) error, progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	if err := c.alive(); err != nil {
		return err
	}
	addr, err := provision.ParseCode(code)
	if err != nil {
		return err
	}
	prov := c.prov
	got, err := call(ctx, c, "fetching the new device's offer", prov.GetOffer, &parleyv1.GetOfferRequest{Address: addr[:]})
	if err != nil {
		return err
	}
	offer, err := provision.VerifyOffer(addr, got.Offer, provision.MaxOfferAge, c.now())
	if errors.Is(err, provision.ErrSecurity) {
		return securityError("the new device's offer", err)
	} else if err != nil {
		return err
	}
	if err := confirm(offer.Name(), offer.Confirmation()); err != nil {
		// Tell the new device at once (its wait ends) rather than let it
		// wait for the code to expire.
		_, _ = prov.CloseMailbox(ctx, connect.NewRequest(&parleyv1.CloseMailboxRequest{Address: addr[:]}))
		return err
	}
	// Publish first, then drain this device's queue and snapshot: every
	// message sent before the publication is in the snapshot, every
	// message after it is queued for the new device too.
	var newPrekeys *parleyv1.PrekeyUpload
	if signed, lastResort := offer.Prekeys(); signed != nil {
		newPrekeys = uploadProto(&prekey.Upload{Signed: signed, LastResort: lastResort})
	}
	if err := c.addDevice(ctx, offer.Device(), offer.Name(), newPrekeys); err != nil {
		return err
	}
	if err := c.Receive(ctx, ReceiveOptions{}, func(Event) error { return nil }); err != nil {
		return err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	listBytes, err := c.storedList(ctx, c.username)
	if err != nil {
		return err
	}
	dbContacts, err := c.db.Contacts(ctx)
	if err != nil {
		return err
	}
	var contacts []provision.Contact
	conversations := []string{c.username}
	for _, ct := range dbContacts {
		l, err := identity.ParseSignedDeviceList(ct.DeviceList)
		if err != nil {
			return fmt.Errorf("client: stored device list of %q: %w", ct.Username, err)
		}
		contacts = append(contacts, provision.Contact{Username: ct.Username, List: l, Verified: ct.Verified, Added: ct.Added})
		conversations = append(conversations, ct.Username)
	}
	var history []provision.HistoryMessage
	for _, conv := range conversations {
		var after int64
		for {
			ms, last, err := c.db.ExportMessages(ctx, conv, after, clientdb.MaxHistory)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				break
			}
			for _, m := range ms {
				history = append(history, provision.HistoryMessage{
					ID: m.ID, Conversation: m.Conversation, Sender: m.Sender, SenderDevice: identity.DeviceID(m.SenderDevice),
					Outgoing: m.Outgoing, Sent: m.Sent, Received: m.Received, State: uint8(m.State), Body: m.Body,
				})
			}
			after = last
		}
	}

	tx := provision.NewSender(offer)
	var index uint32
	put := func(frame []byte, err error) error {
		if err != nil {
			return err
		}
		if _, err := call(ctx, c, "sending to the new device", prov.PutFrame, &parleyv1.PutFrameRequest{Address: addr[:], Index: index, Frame: frame}); err != nil {
			return err
		}
		index++
		return nil
	}
	if err := put(tx.Account(&provision.Account{
		Username: c.username, Server: c.server, Key: c.account, List: listBytes,
		Contacts: uint32(len(contacts)), Messages: uint32(len(history)),
	})); err != nil {
		return err
	}
	for sent := 0; sent < len(contacts); {
		n := provision.FitContacts(contacts[sent:])
		if err := put(tx.Contacts(contacts[sent : sent+n])); err != nil {
			return err
		}
		sent += n
		progress(Progress{Phase: "contacts", Done: sent, Total: len(contacts)})
	}
	for sent := 0; sent < len(history); {
		n := provision.FitHistory(history[sent:])
		if err := put(tx.History(history[sent : sent+n])); err != nil {
			return err
		}
		sent += n
		progress(Progress{Phase: "history", Done: sent, Total: len(history)})
	}
	return put(tx.End())
}
