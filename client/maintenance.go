package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/content"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/session"
)

// replenish tops the one-time prekeys up to ReplenishTo. The new private
// keys are stored before the public halves are uploaded: a crash in between
// leaves unused private keys, never published keys this device cannot use.
func (c *Client) replenish(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ot, pq := c.prekeys.Counts()
	n := ReplenishTo - min(ot, pq)
	if n <= 0 {
		return nil
	}
	return c.updatePrekeys(ctx, func(set *prekey.Set) (*prekey.Upload, error) {
		return set.Replenish(c.device.Signing, n)
	})
}

// rotateLastResort replaces the last-resort prekey (and with it the record
// of handshakes against it) before that record fills. c.mu must be held.
func (c *Client) rotateLastResort(ctx context.Context) error {
	return c.updatePrekeys(ctx, func(set *prekey.Set) (*prekey.Upload, error) {
		return &prekey.Upload{LastResort: set.RotateLastResort(c.device.Signing)}, nil
	})
}

func (c *Client) updatePrekeys(ctx context.Context, change func(*prekey.Set) (*prekey.Upload, error)) error {
	set, err := prekey.UnmarshalSet(c.prekeys.Marshal())
	if err != nil {
		return err
	}
	up, err := change(set)
	if err != nil {
		return err
	}
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutPrekeys(set.Marshal()) }); err != nil {
		return err
	}
	c.prekeys = set
	_, err = call(ctx, c, "uploading prekeys", c.dir.UploadPrekeys, &parleyv1.UploadPrekeysRequest{Prekeys: uploadProto(up)})
	return err
}

func resetSetting(id identity.DeviceID) string { return "session-reset/" + id.String() }

// resetSession starts a new session with a device whose message this
// device could not decrypt, and tells it so; at most once per
// ResetInterval per device. c.mu must be held.
func (c *Client) resetSession(ctx context.Context, account string, dev *identity.DevicePublic) error {
	id := dev.ID()
	now := c.now()
	last, err := c.db.Setting(ctx, resetSetting(id))
	if err == nil && len(last) == 8 {
		if at := time.Unix(int64(binary.BigEndian.Uint64(last)), 0); now.Sub(at) < ResetInterval {
			return fmt.Errorf("client: session with %s was reset %s ago; not again before %s", id, now.Sub(at).Round(time.Second), ResetInterval)
		}
	} else if err != nil && !errors.Is(err, clientdb.ErrNotFound) {
		return err
	}
	if raw, err := c.db.Session(ctx, id); err == nil {
		rec, err := session.Unmarshal(raw)
		if err != nil {
			return err
		}
		rec.Reset()
		if err := c.db.Update(ctx, func(tx *clientdb.Tx) error { return tx.PutSession(id, account, rec.Marshal()) }); err != nil {
			return err
		}
	}
	stamp := binary.BigEndian.AppendUint64(nil, uint64(now.Unix()))
	if err := c.db.SetSetting(ctx, resetSetting(id), stamp); err != nil {
		return err
	}
	var mid [16]byte
	primitives.Random(mid[:])
	body, err := (&content.Content{Type: content.TypeSessionReset, ID: mid, Sent: now.Truncate(time.Millisecond)}).Marshal()
	if err != nil {
		return err
	}
	return c.deliver(ctx, account, mid, body, body, nil, now, false)
}
