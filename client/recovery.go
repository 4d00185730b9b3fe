package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
	"github.com/parleyim/parley/internal/backup"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/content"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/provision"
	"github.com/parleyim/parley/internal/username"
)

// Trusted contacts (docs/backup.md, social recovery). The recovery key is
// split with Shamir's scheme into one share per chosen contact, any K of
// which recover it; each share travels end-to-end encrypted as a
// content.TypeRecoveryShare message. A contact's device keeps the newest
// share per owner and hands it back only to a device the person vouches
// for: the recovering device shows a code (a provisioning offer), the
// contact compares its confirmation string with the person out of band,
// and seals the share to that offer alone (provision.SealShare).

const (
	// settingRecoveryContacts is the owner's side: threshold (1), key ID
	// (8), count (1), then each username as u8 length || bytes.
	settingRecoveryContacts = "recovery/contacts"
	// heldSharePrefix + owner is the contact's side: the share it holds
	// for owner (a backup.Share encoding).
	heldSharePrefix = "recovery/share/"
	// MaxRecoveryContacts bounds the trusted contacts of one account.
	MaxRecoveryContacts = 16
	// maxShareFrameTries bounds how many mailbox indexes a helping contact
	// tries: other contacts' shares take the indexes before it.
	maxShareFrameTries = 2 * MaxRecoveryContacts
)

var (
	// ErrNoShare reports a request to help recover an account this device
	// holds no recovery share for.
	ErrNoShare = errors.New("client: this device holds no recovery share for that account")
	// ErrRecoveryEnded reports a recovery whose mailbox closed or expired
	// before enough shares arrived; start again with a new code.
	ErrRecoveryEnded = errors.New("client: the recovery code expired or was closed before enough shares arrived; start again")
)

type recoveryContacts struct {
	threshold int
	keyID     [backup.KeyIDSize]byte
	names     []string
}

func (rc *recoveryContacts) marshal() []byte {
	b := append([]byte{byte(rc.threshold)}, rc.keyID[:]...)
	b = append(b, byte(len(rc.names)))
	for _, n := range rc.names {
		b = append(b, byte(len(n)))
		b = append(b, n...)
	}
	return b
}

func parseRecoveryContacts(b []byte) (*recoveryContacts, error) {
	bad := fmt.Errorf("client: stored recovery contacts: %w", clientdb.ErrCorrupt)
	if len(b) < 1+backup.KeyIDSize+1 {
		return nil, bad
	}
	rc := &recoveryContacts{threshold: int(b[0])}
	copy(rc.keyID[:], b[1:])
	n := int(b[1+backup.KeyIDSize])
	b = b[2+backup.KeyIDSize:]
	for range n {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return nil, bad
		}
		rc.names = append(rc.names, string(b[1:1+b[0]]))
		b = b[1+b[0]:]
	}
	if len(b) != 0 || rc.threshold < 1 || rc.threshold > n {
		return nil, bad
	}
	return rc, nil
}

func (c *Client) recoveryContacts(ctx context.Context) (*recoveryContacts, error) {
	raw, err := c.db.Setting(ctx, settingRecoveryContacts)
	if errors.Is(err, clientdb.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return parseRecoveryContacts(raw)
}

// SetRecoveryContacts makes names this account's trusted contacts: any
// threshold of them can together help recover the account on a new device.
// Each gets one share of the recovery key, end-to-end encrypted; contacts
// no longer in the set are told to delete theirs. Backups must be on.
func (c *Client) SetRecoveryContacts(ctx context.Context, threshold int, names []string) error {
	if err := c.alive(); err != nil {
		return err
	}
	k, err := c.recoveryKey(ctx)
	if err != nil {
		return err
	}
	var canon []string
	for _, n := range names {
		n, err := username.Normalize(n)
		if err != nil {
			return err
		}
		if n == c.username {
			return errors.New("client: you cannot be your own trusted contact; choose other people")
		}
		if !slices.Contains(canon, n) {
			canon = append(canon, n)
		}
	}
	switch {
	case len(canon) == 0:
		return errors.New("client: name at least one trusted contact")
	case len(canon) > MaxRecoveryContacts:
		return fmt.Errorf("client: at most %d trusted contacts (MaxRecoveryContacts)", MaxRecoveryContacts)
	case threshold < 1 || threshold > len(canon):
		return fmt.Errorf("client: the threshold must be between 1 and the number of contacts (%d), not %d", len(canon), threshold)
	}
	return c.issueShares(ctx, k, threshold, canon)
}

// issueShares splits k among names and sends the shares, revokes the
// shares of contacts dropped from the set, and records the set.
func (c *Client) issueShares(ctx context.Context, k backup.RecoveryKey, threshold int, names []string) error {
	old, err := c.recoveryContacts(ctx)
	if err != nil {
		return err
	}
	shares, err := backup.SplitRecoveryKey(k, len(names), threshold)
	if err != nil {
		return err
	}
	for i, n := range names {
		if err := c.sendControl(ctx, n, content.TypeRecoveryShare, shares[i].Marshal()); err != nil {
			return fmt.Errorf("client: sending the recovery share to %q: %w", n, err)
		}
	}
	if old != nil {
		for _, n := range old.names {
			if !slices.Contains(names, n) {
				if err := c.sendControl(ctx, n, content.TypeRecoveryRevoke, nil); err != nil {
					return fmt.Errorf("client: revoking the recovery share of %q: %w", n, err)
				}
			}
		}
	}
	rc := &recoveryContacts{threshold: threshold, keyID: k.KeyID(), names: names}
	return c.db.SetSetting(ctx, settingRecoveryContacts, rc.marshal())
}

// reissueShares gives the current trusted contacts shares of a new
// recovery key (after a rotation); their old shares are replaced.
func (c *Client) reissueShares(ctx context.Context, k backup.RecoveryKey) error {
	rc, err := c.recoveryContacts(ctx)
	if err != nil || rc == nil {
		return err
	}
	return c.issueShares(ctx, k, rc.threshold, rc.names)
}

// revokeShares tells every trusted contact to delete its share.
func (c *Client) revokeShares(ctx context.Context, k backup.RecoveryKey) error {
	rc, err := c.recoveryContacts(ctx)
	if err != nil || rc == nil {
		return err
	}
	id := k.KeyID()
	for _, n := range rc.names {
		if err := c.sendControl(ctx, n, content.TypeRecoveryRevoke, id[:]); err != nil {
			return fmt.Errorf("client: revoking the recovery share of %q: %w", n, err)
		}
	}
	return nil
}

// sendControl sends a recovery share or revoke to every device of to. This
// account's other devices get an empty revoke, which they drop: the send
// must reach them (the server checks the device set), but the share is for
// the contact alone.
func (c *Client) sendControl(ctx context.Context, to string, typ content.Type, data []byte) error {
	var id [16]byte
	primitives.Random(id[:])
	now := c.now().Truncate(time.Millisecond)
	body, err := (&content.Content{Type: typ, ID: id, Sent: now, Data: data}).Marshal()
	if err != nil {
		return err
	}
	self, err := (&content.Content{Type: content.TypeRecoveryRevoke, ID: id, Sent: now}).Marshal()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deliver(ctx, to, id, body, self, nil, now, false)
}

// HeldShares lists the accounts this device holds a recovery share for.
// The names are kept sealed; the list comes from the contacts, since
// only a contact can have sent one.
func (c *Client) HeldShares(ctx context.Context) ([]string, error) {
	cs, err := c.db.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ct := range cs {
		if _, err := c.db.Setting(ctx, heldSharePrefix+ct.Username); err == nil {
			out = append(out, ct.Username)
		} else if !errors.Is(err, clientdb.ErrNotFound) {
			return nil, err
		}
	}
	return out, nil
}

// HelpRecover gives this device's recovery share for owner to the
// recovering device whose code the person read out: it fetches and checks
// the device's offer, asks confirm (which shows the device's name and the
// confirmation string, and returns nil only if the person recovering
// confirms they see the same), then seals the share to that device alone.
func (c *Client) HelpRecover(ctx context.Context, owner, code string, confirm func(deviceName, confirmation string) error) error {
	if err := c.alive(); err != nil {
		return err
	}
	owner, err := username.Normalize(owner)
	if err != nil {
		return err
	}
	share, err := c.db.Setting(ctx, heldSharePrefix+owner)
	if errors.Is(err, clientdb.ErrNotFound) {
		return fmt.Errorf("%w: %q", ErrNoShare, owner)
	} else if err != nil {
		return err
	}
	addr, err := provision.ParseCode(code)
	if err != nil {
		return err
	}
	got, err := call(ctx, c, "fetching the recovering device's offer", c.prov.GetOffer, &parleyv1.GetOfferRequest{Address: addr[:]})
	if err != nil {
		return err
	}
	offer, err := provision.VerifyOffer(addr, got.Offer, provision.MaxOfferAge, c.now())
	if errors.Is(err, provision.ErrSecurity) {
		return securityError("the recovering device's offer", err)
	} else if err != nil {
		return err
	}
	if err := confirm(offer.Name(), offer.Confirmation()); err != nil {
		return err
	}
	frame, err := provision.SealShare(offer, owner, share)
	if err != nil {
		return err
	}
	// Other contacts' shares may hold the first indexes: take the next
	// free one.
	for index := uint32(0); index < maxShareFrameTries; index++ {
		_, err := call(ctx, c, "sending the share", c.prov.PutFrame, &parleyv1.PutFrameRequest{Address: addr[:], Index: index, Frame: frame})
		var se *ServerError
		if errors.As(err, &se) && se.Code == connect.CodeFailedPrecondition {
			continue
		}
		return err
	}
	return fmt.Errorf("client: the recovering device's mailbox holds %d frames already; ask them to start again", maxShareFrameTries)
}

// PendingRecovery is a fresh device waiting for its trusted contacts'
// shares. Show Code (and Confirmation) to the person, who gives the code to
// each contact; then call Wait.
type PendingRecovery struct {
	home, server, username string
	opts                   Options
	device                 *identity.DeviceKeys
	secret                 *provision.OfferSecret
	prov                   parleyv1connect.ProvisioningServiceClient
	address                [provision.AddressSize]byte
}

// StartRecovery begins recovering account name on this fresh device with
// the help of its trusted contacts.
func StartRecovery(ctx context.Context, home, server, name string, opts Options) (*PendingRecovery, error) {
	name, err := username.Normalize(name)
	if err != nil {
		return nil, err
	}
	server, err = NormalizeServerURL(server)
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
	dev := identity.GenerateDeviceKeys()
	offer, secret, err := provision.NewOffer(dev.Public(), devName, time.Now())
	if err != nil {
		return nil, err
	}
	p := &PendingRecovery{home: home, server: server, username: name, opts: opts, device: dev, secret: secret,
		prov: parleyv1connect.NewProvisioningServiceClient(opts.httpClient(), server), address: offer.Address()}
	if _, err := p.prov.PutOffer(ctx, connect.NewRequest(&parleyv1.PutOfferRequest{Offer: offer.Marshal()})); err != nil &&
		connect.CodeOf(err) != connect.CodeAlreadyExists {
		return nil, wrapRPC("starting recovery", err)
	}
	return p, nil
}

// Code is what each trusted contact types (parley recovery help USER CODE).
func (p *PendingRecovery) Code() string { return p.secret.Offer().Code() }

// Confirmation is what each contact must see too before sending a share.
func (p *PendingRecovery) Confirmation() string { return p.secret.Offer().Confirmation() }

// Wait collects shares until enough of one generation combine into the
// recovery key, then restores the backup (as Restore does). progress gets
// Phase "shares" with Done shares of Total needed, then the restore's
// phases. Frames that do not open, or shares that do not combine, are
// skipped: anyone can write to the mailbox, and only shares that together
// open the backup count.
func (p *PendingRecovery) Wait(ctx context.Context, progress func(Progress)) (*Client, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = p.prov.CloseMailbox(cctx, connect.NewRequest(&parleyv1.CloseMailboxRequest{Address: p.address[:]}))
		cancel()
	}()
	stream, err := p.prov.ReceiveFrames(ctx, connect.NewRequest(&parleyv1.ReceiveFramesRequest{Address: p.address[:]}))
	if err != nil {
		return nil, wrapRPC("waiting for shares", err)
	}
	defer stream.Close()
	groups := map[[backup.KeyIDSize]byte][]backup.Share{}
	var lastErr error
	for stream.Receive() {
		data, err := p.secret.OpenShare(p.username, stream.Msg().Frame)
		if err != nil {
			lastErr = err
			continue
		}
		sh, err := backup.ParseShare(data)
		if err != nil {
			lastErr = err
			continue
		}
		g := append(groups[sh.KeyID], sh)
		groups[sh.KeyID] = g
		progress(Progress{Phase: "shares", Done: len(g), Total: int(sh.Threshold)})
		if len(g) < int(sh.Threshold) {
			continue
		}
		k, err := backup.CombineShares(g)
		if err != nil {
			lastErr = err
			continue
		}
		c, err := restore(ctx, p.home, p.server, p.username, k, p.device, p.opts, progress)
		if errors.Is(err, ErrNoBackup) {
			return nil, fmt.Errorf("client: the shares recover a recovery key that no longer opens a backup: they are from a revoked generation (the key was rotated or backups turned off): %w", err)
		}
		return c, err
	}
	err = stream.Err()
	if connect.CodeOf(err) == connect.CodeNotFound || err == nil {
		if lastErr != nil {
			return nil, fmt.Errorf("%w (last problem: %v)", ErrRecoveryEnded, lastErr)
		}
		return nil, ErrRecoveryEnded
	}
	return nil, wrapRPC("waiting for shares", err)
}
