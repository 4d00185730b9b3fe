package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/content"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/session"
	"github.com/parleyim/parley/internal/username"
)

// DeliveryState is where a message is on its way.
type DeliveryState = clientdb.DeliveryState

// Message is one message of a conversation.
type Message struct {
	ID           [16]byte
	Conversation string // the other account of the conversation
	From         string
	FromDevice   identity.DeviceID
	Outgoing     bool
	Sent         time.Time // the sender's clock
	Received     time.Time // this device's clock
	Text         string
	State        DeliveryState
	// System marks a line this client wrote into the conversation, not a
	// message anyone sent: a change to the contact's devices ("bob added
	// a device"). From is the contact, FromDevice the device concerned,
	// Text the description; State is StateSystem.
	System bool
}

// StateSystem is the state of a system line (Message.System).
const StateSystem = clientdb.StateSystem

func fromDB(m *clientdb.Message) *Message {
	return &Message{
		ID: m.ID, Conversation: m.Conversation, From: m.Sender, FromDevice: identity.DeviceID(m.SenderDevice),
		Outgoing: m.Outgoing, Sent: m.Sent, Received: m.Received, Text: string(m.Body), State: m.State,
		System: m.State == clientdb.StateSystem,
	}
}

// maxSendAttempts bounds how often Send refreshes device lists after the
// server said they were stale.
const maxSendAttempts = 3

// target is one device a message goes to, with the content it gets.
type target struct {
	account string
	device  *identity.DevicePublic
	body    []byte
}

// Send sends text to an account: to every device in its device list and,
// as a sent copy, to every other device of this account (docs/client.md §5).
// The message and the advanced session states are stored before the send,
// so a crash after the server accepted it loses nothing.
func (c *Client) Send(ctx context.Context, to, text string) (*Message, error) {
	name, err := username.Normalize(to)
	if err != nil {
		return nil, err
	}
	if err := c.alive(); err != nil {
		return nil, err
	}

	var id [16]byte
	primitives.Random(id[:])
	now := c.now().Truncate(time.Millisecond)
	// Both copies carry this device's newest verified checkpoint, so that
	// the recipients can tell whether the log showed them the same history
	// (docs/client.md §10.4).
	// The recipient's list is looked up (and the log verified) first, so
	// that even a first message carries a checkpoint.
	c.mu.Lock()
	_, err = c.devices(ctx, name, false)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	cp := c.Checkpoint()
	toPeer := &content.Content{Type: content.TypeText, ID: id, Sent: now, Text: text, Checkpoint: cp}
	toSelf := &content.Content{Type: content.TypeSentCopy, ID: id, Sent: now, Conversation: name, Text: text, Checkpoint: cp}
	if name == c.username {
		toPeer = toSelf // a note to self reaches only this account's other devices
	}
	peerBody, err := toPeer.Marshal()
	if err != nil {
		return nil, err
	}
	selfBody, err := toSelf.Marshal()
	if err != nil {
		return nil, err
	}
	msg := &clientdb.Message{
		ID: id, Conversation: name, Sender: c.username, SenderDevice: c.selfID, Outgoing: true,
		Sent: now, Received: now, Body: []byte(text), State: clientdb.StatePending,
	}
	// A device being linked is in the account's list before it has
	// uploaded its prekeys (docs/client.md §8.1): wait for it, without
	// holding the client's lock, so that this device's own approval of the
	// link (which needs the lock) can go on.
	refresh := false
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		c.mu.Lock()
		err = c.deliver(ctx, name, id, peerBody, selfBody, msg, now, refresh)
		c.mu.Unlock()
		var np *noPrekeysError
		if !errors.As(err, &np) || wait > newDeviceWait/2 {
			break
		}
		c.log.Debug("a device has no prekeys yet; waiting", "account", np.account, "after", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		refresh = true
	}
	if err != nil {
		return nil, err
	}
	return fromDB(msg), nil
}

// newDeviceWait bounds how long Send waits, in all, for a newly added
// device to upload its prekeys.
const newDeviceWait = 10 * time.Second

// noPrekeysError reports a device in an account's verified list for which
// the server has no prekey bundle: a device being linked that has not
// uploaded its prekeys yet, or one removed since the list was fetched.
type noPrekeysError struct {
	account string
	err     error
}

func (e *noPrekeysError) Error() string {
	return fmt.Sprintf("client: a device of %q has no prekeys on the server yet (it may still be being linked); try again shortly: %v", e.account, e.err)
}

func (e *noPrekeysError) Unwrap() error { return e.err }

// deliver encrypts peerBody for every device of account name and selfBody
// for every other device of this account, and sends them as one message.
// If msg is set it is stored with the session states before the send and
// its state updated after. c.mu must be held.
func (c *Client) deliver(ctx context.Context, name string, id [16]byte, peerBody, selfBody []byte, msg *clientdb.Message, now time.Time, refresh bool) (err error) {
	if err := c.alive(); err != nil {
		return err
	}
	stored := false
	defer func() {
		// A message stored as pending by an earlier attempt, whose retry
		// failed before reaching the server (a refused device list, say),
		// is not on its way.
		if err != nil && stored && msg.State == clientdb.StatePending {
			if uerr := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.SetMessageState(c.username, id, clientdb.StateFailed) }); uerr == nil {
				msg.State = clientdb.StateFailed
			}
		}
	}()
	for attempt := 1; ; attempt++ {
		var targets []target
		peer, err := c.devices(ctx, name, refresh)
		if err != nil {
			return err
		}
		if name != c.username {
			if err := c.checkVerified(ctx, name, peer); err != nil {
				return err
			}
		}
		for _, e := range peer.Devices {
			if e.Device.ID() != c.selfID {
				targets = append(targets, target{name, e.Device, peerBody})
			}
		}
		if name != c.username {
			own, err := c.devices(ctx, c.username, refresh)
			if err != nil {
				return err
			}
			for _, e := range own.Devices {
				if e.Device.ID() != c.selfID {
					targets = append(targets, target{c.username, e.Device, selfBody})
				}
			}
		}
		envs, records, err := c.encryptAll(ctx, targets, now)
		if err != nil {
			return err
		}
		if err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
			if msg != nil {
				if _, err := tx.PutMessage(msg); err != nil {
					return err
				}
			}
			for _, r := range records {
				if err := tx.PutSession(r.device, r.account, r.record.Marshal()); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		stored = msg != nil
		_, err = call(ctx, c, "send", c.relay.Send, &parleyv1.SendRequest{MessageId: id[:], Recipient: name, Envelopes: envs})
		if connect.CodeOf(err) == connect.CodeNotFound {
			err = fmt.Errorf("%w: %q (the account was deleted): %w", ErrNoSuchUser, name, err)
		}
		if mismatchOf(err) != nil && attempt < maxSendAttempts {
			// Our copy of a device list is out of date: refresh and
			// encrypt again for the current devices.
			c.log.Debug("device lists changed; refreshing", "to", name)
			refresh = true
			continue
		}
		if msg == nil {
			return err
		}
		state := clientdb.StateSent
		if err != nil {
			state = clientdb.StateFailed
		}
		if uerr := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.SetMessageState(c.username, id, state) }); uerr != nil && err == nil {
			err = uerr
		}
		msg.State = state
		return err
	}
}

type updatedRecord struct {
	device  [16]byte
	account string
	record  *session.Record
}

// encryptAll encrypts each target's body on its session, starting sessions
// from freshly claimed bundles where there are none. c.mu must be held.
func (c *Client) encryptAll(ctx context.Context, targets []target, now time.Time) ([]*parleyv1.OutgoingEnvelope, []updatedRecord, error) {
	records := make([]*session.Record, len(targets))
	need := map[string][]*identity.DevicePublic{}
	for i, t := range targets {
		id := t.device.ID()
		raw, err := c.db.Session(ctx, id)
		switch {
		case errors.Is(err, clientdb.ErrNotFound):
			records[i] = session.New()
		case err != nil:
			return nil, nil, err
		default:
			if records[i], err = session.Unmarshal(raw); err != nil {
				return nil, nil, fmt.Errorf("client: stored session with %s: %w", id, err)
			}
		}
		if !records[i].HasSession() {
			need[t.account] = append(need[t.account], t.device)
		}
	}
	bundles := map[identity.DeviceID]*prekey.Bundle{}
	for account, devs := range need {
		got, err := c.claimBundles(ctx, account, devs)
		if connect.CodeOf(err) == connect.CodeNotFound {
			return nil, nil, &noPrekeysError{account: account, err: err}
		} else if err != nil {
			return nil, nil, err
		}
		for id, b := range got {
			bundles[id] = b
		}
	}
	envs := make([]*parleyv1.OutgoingEnvelope, 0, len(targets))
	updated := make([]updatedRecord, 0, len(targets))
	for i, t := range targets {
		id := t.device.ID()
		r := records[i]
		if !r.HasSession() {
			b, ok := bundles[id]
			if !ok {
				return nil, nil, fmt.Errorf("client: the server sent no prekey bundle for device %s of %q", id, t.account)
			}
			if err := r.Initiate(c.device, t.device, b, now); err != nil {
				return nil, nil, securityError(fmt.Sprintf("prekey bundle of device %s of %q", id, t.account), err)
			}
		}
		env, err := r.Encrypt(t.body, now)
		if err != nil {
			return nil, nil, err
		}
		envs = append(envs, &parleyv1.OutgoingEnvelope{DeviceId: id[:], Body: env.Marshal()})
		updated = append(updated, updatedRecord{device: id, account: t.account, record: r})
	}
	return envs, updated, nil
}
