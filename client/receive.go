package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/ackbatch"
	"github.com/parleyim/parley/internal/backup"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/content"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/ratchet"
	"github.com/parleyim/parley/internal/session"
	"github.com/parleyim/parley/internal/username"
	"github.com/parleyim/parley/internal/wire"
)

// EventKind says what happened on the receive stream.
type EventKind int

const (
	// EventMessage is a new message (Event.Message).
	EventMessage EventKind = iota + 1
	// EventDrained means everything queued when the stream opened has
	// been received.
	EventDrained
	// EventUndecryptable is a message that could not be decrypted or
	// authenticated (Event.Err says why). The session with the sending
	// device is reset automatically, at most once per
	// ResetInterval per device.
	EventUndecryptable
	// EventSessionReset means a device of Event.From started a new session
	// after failing to decrypt this device's messages.
	EventSessionReset
	// EventDeviceAdded means the device list of Event.From (a contact, or
	// this account) gained the device Event.FromDevice, named
	// Event.DeviceName. Messages reach it from now on; a contact's
	// conversation also gets a system line (Message.System).
	EventDeviceAdded
	// EventDeviceRemoved means the device list of Event.From dropped
	// Event.FromDevice; the session with it is deleted. When From is this
	// account and FromDevice this device, this device was removed: its
	// local store is wiped and Receive returns ErrDeviceRemoved.
	EventDeviceRemoved
	// EventRecoveryShare means Event.From made this account one of its
	// trusted contacts: this device now holds a share of its recovery key
	// (parley recovery help gives it back to a new device of theirs).
	EventRecoveryShare
	// EventRecoveryRevoked means Event.From took back its recovery share.
	EventRecoveryRevoked
	// EventKeyTransparencyAlert means monitoring this account found a
	// device-list version in the key-transparency log that none of its
	// devices made (Event.Err, a *SecurityError wrapping a *verify.Error
	// of kind UnexpectedVersion whose Value is that list), or that the log
	// lost one it made: someone may be shown a device that is not yours.
	// Receive goes on; the alert comes back until the log is explained.
	EventKeyTransparencyAlert
	// EventLogFork means the checkpoint Event.From piggybacked on a
	// message is not one history with this device's view of the log
	// (Event.Err, a *SecurityError wrapping a *verify.Error of kind Fork):
	// the server showed the two of you different logs.
	EventLogFork
)

func (k EventKind) String() string {
	switch k {
	case EventMessage:
		return "message"
	case EventDrained:
		return "drained"
	case EventUndecryptable:
		return "undecryptable"
	case EventSessionReset:
		return "session-reset"
	case EventDeviceAdded:
		return "device-added"
	case EventDeviceRemoved:
		return "device-removed"
	case EventRecoveryShare:
		return "recovery-share"
	case EventRecoveryRevoked:
		return "recovery-revoked"
	case EventKeyTransparencyAlert:
		return "key-transparency-alert"
	case EventLogFork:
		return "log-fork"
	default:
		return "EventKind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Event is one thing Receive reports.
type Event struct {
	Kind       EventKind
	Message    *Message
	From       string
	FromDevice identity.DeviceID
	// DeviceName is the name of the added or removed device.
	DeviceName string
	Err        error
}

// ackTimeout bounds one Ack call, which may go out after the stream's
// context has ended.
const ackTimeout = 10 * time.Second

// ResetInterval is the least time between two automatic session resets
// towards one device, so that a peer sending garbage cannot make this
// device spend its prekey claims and bandwidth.
const ResetInterval = time.Hour

// ReceiveOptions configure Receive.
type ReceiveOptions struct {
	// Follow keeps receiving after the queue is drained, reconnecting
	// after network errors, until ctx ends.
	Follow bool
}

// Receive opens this device's delivery stream and calls fn for each event.
// Every message is decrypted and stored together with the new session state
// before it is acknowledged to the server, so a crash at any point causes
// at most a redelivery, which is de-duplicated by message id. Without
// Follow, Receive returns after EventDrained.
//
// If this device was removed from its account (proven by a signed device
// list, docs/client.md §8.2), Receive wipes the local store, reports
// EventDeviceRemoved for this device and returns ErrDeviceRemoved; if the
// account was deleted, it returns ErrAccountDeleted.
func (c *Client) Receive(ctx context.Context, opts ReceiveOptions, fn func(Event) error) error {
	err := c.receive(ctx, opts, fn)
	if errors.Is(err, ErrDeviceRemoved) {
		if ferr := fn(Event{Kind: EventDeviceRemoved, From: c.username, FromDevice: c.selfID}); ferr != nil {
			c.log.Debug("callback after removal", "err", ferr)
		}
	}
	return err
}

func (c *Client) receive(ctx context.Context, opts ReceiveOptions, fn func(Event) error) error {
	backoff := 100 * time.Millisecond
	for {
		err := c.receiveOnce(ctx, opts, fn)
		if err == nil || !opts.Follow || ctx.Err() != nil {
			if ctx.Err() != nil && opts.Follow {
				return nil
			}
			return err
		}
		var stop *stopError
		if errors.As(err, &stop) || isSecurity(err) || connect.CodeOf(err) == connect.CodeAborted ||
			errors.Is(err, ErrDeviceRemoved) || errors.Is(err, ErrAccountDeleted) {
			// The callback stopped us, the server lied, another stream for
			// this device took over, or the device is gone: reconnecting
			// would not help.
			return err
		}
		c.log.Debug("receive stream ended; reconnecting", "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// stopError carries an error returned by the caller's callback.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }
func (e *stopError) Unwrap() error { return e.err }

func (c *Client) receiveOnce(ctx context.Context, opts ReceiveOptions, fn func(Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Watch this account's entries in the log on every (re)connection.
	if err := c.MonitorAccount(ctx); isSecurity(err) {
		if ferr := fn(Event{Kind: EventKeyTransparencyAlert, From: c.username, Err: err}); ferr != nil {
			return &stopError{ferr}
		}
	} else if err != nil {
		c.log.Debug("monitoring this account", "err", err)
	}
	var stream *connect.ServerStreamForClient[parleyv1.ReceiveResponse]
	for attempt := 0; ; attempt++ {
		tok, err := c.login(ctx)
		if err != nil {
			return err
		}
		req := connect.NewRequest(&parleyv1.ReceiveRequest{})
		req.Header().Set("Authorization", "Bearer "+tok)
		stream, err = c.relay.Receive(ctx, req)
		if err != nil {
			return wrapRPC("receive", err)
		}
		if stream.Receive() {
			break
		}
		err = stream.Err()
		stream.Close()
		if connect.CodeOf(err) == connect.CodeUnauthenticated && attempt == 0 {
			c.forgetToken(tok)
			continue
		}
		if err == nil {
			return errors.New("client: receive: the server closed the stream")
		}
		return c.streamError(ctx, err)
	}
	defer stream.Close()
	// Acks go out in batches from a goroutine of their own; Close (on
	// every way out) sends what is left and waits for it.
	acks := ackbatch.New(ackbatch.DefaultMax, ackbatch.DefaultDelay, func(seqs []uint64) {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		defer cancel()
		if _, err := call(actx, c, "ack", c.relay.Ack, &parleyv1.AckRequest{Seqs: seqs}); err != nil {
			// Stored but not acknowledged: they will come again and be
			// recognised as duplicates.
			c.log.Debug("ack failed", "n", len(seqs), "err", err)
		}
	})
	defer acks.Close()
	for first := true; first || stream.Receive(); first = false {
		switch ev := stream.Msg().Event.(type) {
		case *parleyv1.ReceiveResponse_Envelope:
			events, err := c.handleEnvelope(ctx, ev.Envelope)
			if err != nil {
				return err
			}
			acks.Add(ev.Envelope.Seq)
			for _, e := range events {
				if err := fn(e); err != nil {
					return &stopError{err}
				}
			}
		case *parleyv1.ReceiveResponse_Drained:
			acks.Flush()
			if err := fn(Event{Kind: EventDrained}); err != nil {
				return &stopError{err}
			}
			if !opts.Follow {
				return nil
			}
		case *parleyv1.ReceiveResponse_PrekeysLow:
			if err := c.replenish(ctx); err != nil {
				c.log.Debug("replenishing prekeys", "err", err)
			}
		}
	}
	if err := stream.Err(); err != nil {
		return c.streamError(ctx, err)
	}
	return errors.New("client: receive: the server closed the stream")
}

// streamError turns the error that ended the delivery stream into the
// caller's: PermissionDenied (the server says this device or its account is
// gone) makes the device ask for proof (confirmRemoval), whose answer wins
// if it concludes.
func (c *Client) streamError(ctx context.Context, err error) error {
	if connect.CodeOf(err) == connect.CodePermissionDenied {
		if rerr := c.confirmRemoval(ctx); rerr != nil {
			return rerr
		}
	}
	return wrapRPC("receive", err)
}

// handleEnvelope decrypts and stores one envelope; the caller then
// acknowledges it. It returns an error only when the envelope should be
// delivered again (the store or the network failed); anything wrong with
// the envelope itself is reported as an event and the envelope is
// acknowledged, so that it does not come back forever.
func (c *Client) handleEnvelope(ctx context.Context, e *parleyv1.Envelope) ([]Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.processEnvelope(ctx, e)
}

// processEnvelope is handleEnvelope under c.mu. Device-list changes
// accepted on the way (an unknown sender device makes the client refresh
// the sender's list) come first in the events. c.mu must be held.
func (c *Client) processEnvelope(ctx context.Context, e *parleyv1.Envelope) ([]Event, error) {
	var changes []Event
	c.changes = &changes
	events, err := c.decryptEnvelope(ctx, e)
	c.changes = nil
	if err != nil {
		return nil, err
	}
	return append(changes, events...), nil
}

func (c *Client) decryptEnvelope(ctx context.Context, e *parleyv1.Envelope) ([]Event, error) {
	bad := func(from string, dev identity.DeviceID, err error) ([]Event, error) {
		return []Event{{Kind: EventUndecryptable, From: from, FromDevice: dev, Err: err}}, nil
	}
	sender, err := username.Normalize(e.Sender)
	if err != nil || len(e.SenderDevice) != identity.DeviceIDSize {
		return bad(e.Sender, identity.DeviceID{}, fmt.Errorf("client: envelope with an invalid sender"))
	}
	devID := identity.DeviceID(e.SenderDevice)
	dev, err := c.knownDevice(ctx, sender, devID)
	if err != nil {
		if isSecurity(err) || errors.Is(err, ErrNoSuchUser) {
			return bad(sender, devID, err)
		}
		return nil, err
	}
	env, err := wire.UnmarshalEnvelope(e.Body)
	if err != nil {
		return bad(sender, devID, err)
	}
	rec := session.New()
	if raw, err := c.db.Session(ctx, devID); err == nil {
		if rec, err = session.Unmarshal(raw); err != nil {
			return nil, fmt.Errorf("client: stored session with %s: %w", devID, err)
		}
	} else if !errors.Is(err, clientdb.ErrNotFound) {
		return nil, err
	}
	// Decrypt against a copy of the prekey set: it is replaced only once
	// the consumed prekeys are durably gone.
	set := c.prekeys
	if env.Type == wire.TypePrekey {
		if set, err = prekey.UnmarshalSet(c.prekeys.Marshal()); err != nil {
			return nil, err
		}
	}
	now := c.now()
	pt, err := rec.Decrypt(env, c.device, set, dev, now)
	if errors.Is(err, ratchet.ErrDuplicate) {
		return nil, nil // a redelivery: already stored
	}
	if err != nil {
		ev := Event{Kind: EventUndecryptable, From: sender, FromDevice: devID, Err: err}
		if rerr := c.resetSession(ctx, sender, dev); rerr != nil {
			c.log.Debug("session reset", "err", rerr)
		}
		return []Event{ev}, nil
	}

	var stored *clientdb.Message
	var events []Event
	// heldShare, when set, stores (value) or deletes (no value) the
	// recovery share held for a contact, with the session.
	var heldShare *setting
	ct, cerr := content.Unmarshal(pt)
	if cerr == nil {
		switch {
		case ct.Type == content.TypeText && sender != c.username:
			stored = &clientdb.Message{ID: ct.ID, Conversation: sender, Sender: sender, SenderDevice: devID,
				Sent: ct.Sent, Received: now, Body: []byte(ct.Text), State: clientdb.StateReceived}
		case ct.Type == content.TypeSentCopy && sender == c.username:
			conv, err := username.Normalize(ct.Conversation)
			if err != nil {
				cerr = err
				break
			}
			stored = &clientdb.Message{ID: ct.ID, Conversation: conv, Sender: sender, SenderDevice: devID, Outgoing: true,
				Sent: ct.Sent, Received: now, Body: []byte(ct.Text), State: clientdb.StateSent}
		case ct.Type == content.TypeSessionReset:
			// The peer can no longer read the session we were using:
			// switch to the one this notice came on (docs/protocol.md §6.4).
			rec.PromoteLast(c.device, dev)
			events = append(events, Event{Kind: EventSessionReset, From: sender, FromDevice: devID})
		case (ct.Type == content.TypeRecoveryShare || ct.Type == content.TypeRecoveryRevoke) && sender == c.username:
			// This account's own copy of a share or revoke it sent to a
			// trusted contact (recovery.go): nothing to do.
		case ct.Type == content.TypeRecoveryShare:
			if _, err := backup.ParseShare(ct.Data); err != nil {
				cerr = err
				break
			}
			heldShare = &setting{name: heldSharePrefix + sender, value: ct.Data}
			events = append(events, Event{Kind: EventRecoveryShare, From: sender, FromDevice: devID})
		case ct.Type == content.TypeRecoveryRevoke:
			held, err := c.db.Setting(ctx, heldSharePrefix+sender)
			if err != nil {
				break // nothing held: nothing to revoke
			}
			if sh, err := backup.ParseShare(held); len(ct.Data) == 0 || err != nil || primitives.Equal(sh.KeyID[:], ct.Data) {
				heldShare = &setting{name: heldSharePrefix + sender}
				events = append(events, Event{Kind: EventRecoveryRevoked, From: sender, FromDevice: devID})
			}
		default:
			cerr = fmt.Errorf("client: a %s from %q is not allowed", ct.Type, sender)
		}
	}
	if cerr == nil && ct.Checkpoint != nil {
		// A contact's (or own other device's) view of the log, compared
		// with ours; only a fork is worth an event.
		if err := c.checkPeerCheckpoint(ctx, sender, ct.Checkpoint); isFork(err) {
			events = append(events, Event{Kind: EventLogFork, From: sender, FromDevice: devID, Err: err})
		} else if err != nil {
			c.log.Debug("comparing a piggybacked checkpoint", "from", sender, "err", err)
		}
	}
	// The session advanced whatever the content says: store it.
	inserted := false
	err = c.db.Update(ctx, func(tx *clientdb.Tx) error {
		if err := tx.PutSession(devID, sender, rec.Marshal()); err != nil {
			return err
		}
		if set != c.prekeys {
			if err := tx.PutPrekeys(set.Marshal()); err != nil {
				return err
			}
		}
		if heldShare != nil {
			if err := heldShare.apply(tx); err != nil {
				return err
			}
		}
		if stored != nil {
			var err error
			inserted, err = tx.PutMessage(stored)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.prekeys = set
	if cerr != nil {
		return append(events, Event{Kind: EventUndecryptable, From: sender, FromDevice: devID, Err: cerr}), nil
	}
	if stored != nil && inserted {
		events = append(events, Event{Kind: EventMessage, Message: fromDB(stored), From: sender, FromDevice: devID})
	}
	if set.LastResortUses() >= RotateLastResortAfter {
		if err := c.rotateLastResort(ctx); err != nil {
			c.log.Debug("rotating the last-resort prekey", "err", err)
		}
	}
	return events, nil
}

// setting is a setting to store with a received message's session, or to
// delete when value is nil.
type setting struct {
	name  string
	value []byte
}

func (s *setting) apply(tx *clientdb.Tx) error {
	if s.value == nil {
		return tx.DeleteSetting(s.name)
	}
	return tx.SetSetting(s.name, s.value)
}
