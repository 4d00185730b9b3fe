package client

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/backup"
	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/username"
)

// Backups (docs/backup.md). A backup is an age file encrypted on this device
// to a post-quantum age recipient that only the recovery key derives; the
// server stores it under a locator the recovery key also derives, and
// cannot read it or tell whose it is. The archive holds the account key,
// contacts, settings, verification states and the message history — never
// session state: a restored device starts new sessions.

// Settings the backup feature keeps (sealed, like every setting).
const (
	// settingRecoveryKey is the current recovery key (32 bytes): shown to
	// the person once, kept here so that automatic backups, export-identity
	// and the trusted contacts' shares work without asking for it.
	settingRecoveryKey = "backup/recovery-key"
	// settingBackupInterval is the automatic backup interval in seconds
	// (8 bytes, big-endian); absent or 0: backups only when asked.
	settingBackupInterval = "backup/interval"
	// settingLastBackup is the last upload: Unix seconds then generation,
	// 8 bytes each.
	settingLastBackup = "backup/last"
)

// archivedSettings are the settings a backup carries: preferences the
// person chose, not state of this device.
var archivedSettings = []string{settingBackupInterval, settingRecoveryContacts}

var (
	// ErrBackupsOff reports a backup operation on a device whose backups
	// are not turned on.
	ErrBackupsOff = errors.New("client: backups are off; turn them on first (parley backup on)")
	// ErrBackupsOn reports turning backups on twice.
	ErrBackupsOn = errors.New("client: backups are already on; to change the recovery key, rotate it (parley backup rotate)")
	// ErrNoBackup reports a recovery key under which the server stores no
	// backup: a wrong key that still passed its checksum is very unlikely,
	// so more likely the backup was rotated away, turned off or never made.
	ErrNoBackup = errors.New("client: no backup is stored under this recovery key (it was rotated, turned off or never uploaded)")
	// ErrBackupOtherAccount reports a backup that belongs to another
	// account than the one being restored, or whose account key is not the
	// key the server's device list is signed with.
	ErrBackupOtherAccount = errors.New("client: this backup belongs to another account")
	// ErrWrongRecoveryKey reports a recovery key that does not open the
	// backup.
	ErrWrongRecoveryKey = backup.ErrWrongRecoveryKey
	// ErrRecoveryKeyTypo reports a recovery key whose check characters do
	// not match: a typo. The error says which group looks wrong.
	ErrRecoveryKeyTypo = backup.ErrRecoveryKeyTypo
)

// BackupInfo describes a backup made or restored.
type BackupInfo struct {
	Generation uint64 // on the server; 0 for a backup only written locally
	Size       int64  // bytes of the age file
	Contacts   int
	Messages   int
	Created    time.Time
}

// BackupOptions configure Backup.
type BackupOptions struct {
	// Output, if set, also receives the age file (parley backup create
	// --output FILE).
	Output io.Writer
	// Progress, if set, is called as the archive is written ("archive",
	// messages) and uploaded ("upload", bytes).
	Progress func(Progress)
}

// BackupStatus is what Status reports about backups.
type BackupStatus struct {
	On         bool
	KeyID      string // hex of the recovery key's key ID, when on
	Interval   time.Duration
	Last       time.Time // the last upload, zero if none
	Generation uint64
	// Recovery contacts, if set.
	Threshold int
	Contacts  []string
}

func (c *Client) recoveryKey(ctx context.Context) (backup.RecoveryKey, error) {
	raw, err := c.db.Setting(ctx, settingRecoveryKey)
	if errors.Is(err, clientdb.ErrNotFound) {
		return backup.RecoveryKey{}, ErrBackupsOff
	} else if err != nil {
		return backup.RecoveryKey{}, err
	}
	if len(raw) != backup.RecoveryKeySize {
		return backup.RecoveryKey{}, fmt.Errorf("client: stored recovery key has %d bytes: %w", len(raw), clientdb.ErrCorrupt)
	}
	return backup.RecoveryKey(raw), nil
}

// EnableBackups turns backups on: it makes a recovery key on this device
// and returns its written form, to be shown to the person once. The key
// never leaves the device; the server only ever sees what it derives.
// Make the first backup with Backup.
func (c *Client) EnableBackups(ctx context.Context) (string, error) {
	if err := c.alive(); err != nil {
		return "", err
	}
	if _, err := c.recoveryKey(ctx); err == nil {
		return "", ErrBackupsOn
	} else if !errors.Is(err, ErrBackupsOff) {
		return "", err
	}
	k := backup.NewRecoveryKey()
	if err := c.db.SetSetting(ctx, settingRecoveryKey, k[:]); err != nil {
		return "", err
	}
	return k.String(), nil
}

// BackupIdentity returns the age identity (AGE-SECRET-KEY-PQ-1…) that
// decrypts this account's backups with the standard age tool. It is as
// secret as the recovery key.
func (c *Client) BackupIdentity(ctx context.Context) (string, error) {
	k, err := c.recoveryKey(ctx)
	if err != nil {
		return "", err
	}
	return k.AgeIdentityString(), nil
}

// SetBackupInterval sets how often MaybeBackup makes a backup; 0 turns
// automatic backups off (backups are then made only when asked).
func (c *Client) SetBackupInterval(ctx context.Context, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("client: backup interval %s is negative", d)
	}
	return c.db.SetSetting(ctx, settingBackupInterval, binary.BigEndian.AppendUint64(nil, uint64(d/time.Second)))
}

// BackupStatus reports whether backups are on, when the last one was
// made, the automatic interval and the recovery contacts.
func (c *Client) BackupStatus(ctx context.Context) (*BackupStatus, error) {
	st := &BackupStatus{}
	k, err := c.recoveryKey(ctx)
	switch {
	case err == nil:
		st.On = true
		id := k.KeyID()
		st.KeyID = fmt.Sprintf("%x", id[:])
	case !errors.Is(err, ErrBackupsOff):
		return nil, err
	}
	if v, err := c.db.Setting(ctx, settingBackupInterval); err == nil && len(v) == 8 {
		st.Interval = time.Duration(binary.BigEndian.Uint64(v)) * time.Second
	}
	if v, err := c.db.Setting(ctx, settingLastBackup); err == nil && len(v) == 16 {
		st.Last = time.Unix(int64(binary.BigEndian.Uint64(v)), 0)
		st.Generation = binary.BigEndian.Uint64(v[8:])
	}
	rc, err := c.recoveryContacts(ctx)
	if err != nil {
		return nil, err
	}
	if rc != nil {
		st.Threshold, st.Contacts = rc.threshold, rc.names
	}
	return st, nil
}

// Backup writes the archive, encrypts it to the recovery key's age
// recipient and uploads it as the newest generation (the server keeps a
// few and prunes the rest).
func (c *Client) Backup(ctx context.Context, opts BackupOptions) (*BackupInfo, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	k, err := c.recoveryKey(ctx)
	if err != nil {
		return nil, err
	}
	return c.backupWith(ctx, k, opts)
}

func (c *Client) backupWith(ctx context.Context, k backup.RecoveryKey, opts BackupOptions) (*BackupInfo, error) {
	progress := opts.Progress
	if progress == nil {
		progress = func(Progress) {}
	}
	// Stage the age file next to the store: it is ciphertext, and the
	// upload needs its size first.
	f, err := os.CreateTemp(c.home, ".backup-*.age")
	if err != nil {
		return nil, fmt.Errorf("client: backup: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	info, err := c.writeArchive(ctx, f, k, progress)
	if err != nil {
		return nil, err
	}
	if opts.Output != nil {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if _, err := io.Copy(opts.Output, f); err != nil {
			return nil, fmt.Errorf("client: writing the backup file: %w", err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	gen, err := c.upload(ctx, k, f, info.Size, progress)
	if err != nil {
		return nil, err
	}
	info.Generation = gen
	last := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(info.Created.Unix())), gen)
	if err := c.db.SetSetting(ctx, settingLastBackup, last); err != nil {
		return nil, err
	}
	return info, nil
}

// MaybeBackup makes a backup if backups are on, an interval is set and the
// last backup is at least that old. It returns nil, nil when none was due.
func (c *Client) MaybeBackup(ctx context.Context, progress func(Progress)) (*BackupInfo, error) {
	st, err := c.BackupStatus(ctx)
	if err != nil || !st.On || st.Interval == 0 || c.now().Sub(st.Last) < st.Interval {
		return nil, err
	}
	return c.Backup(ctx, BackupOptions{Progress: progress})
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}

// writeArchive writes the age-encrypted archive to w.
func (c *Client) writeArchive(ctx context.Context, w io.Writer, k backup.RecoveryKey, progress func(Progress)) (*BackupInfo, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	info := &BackupInfo{Created: c.now().Truncate(time.Second)}
	aw, err := backup.NewWriter(bw, k, backup.Header{
		Username: c.username, Server: c.server, AccountKey: c.account, Created: info.Created,
	})
	if err != nil {
		return nil, err
	}
	contacts, err := c.db.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	conversations := []string{c.username}
	for _, ct := range contacts {
		if err := aw.AddContact(backup.Contact{Username: ct.Username, DeviceList: ct.DeviceList, Verified: ct.Verified, Added: ct.Added}); err != nil {
			return nil, err
		}
		conversations = append(conversations, ct.Username)
	}
	info.Contacts = len(contacts)
	for _, name := range archivedSettings {
		v, err := c.db.Setting(ctx, name)
		if errors.Is(err, clientdb.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if err := aw.AddSetting(backup.Setting{Name: name, Value: v}); err != nil {
			return nil, err
		}
	}
	for _, conv := range conversations {
		var after int64
		for {
			ms, last, err := c.db.ExportMessages(ctx, conv, after, clientdb.MaxHistory)
			if err != nil {
				return nil, err
			}
			if len(ms) == 0 {
				break
			}
			for i := range ms {
				m := &ms[i]
				if err := aw.AddMessage(&backup.Message{
					ID: m.ID, Conversation: m.Conversation, Sender: m.Sender, SenderDevice: m.SenderDevice,
					Outgoing: m.Outgoing, Sent: m.Sent, Received: m.Received, Body: m.Body, State: uint8(m.State),
				}); err != nil {
					return nil, err
				}
			}
			info.Messages += len(ms)
			progress(Progress{Phase: "archive", Done: info.Messages})
			after = last
		}
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("client: writing the backup: %w", err)
	}
	info.Size = cw.n
	return info, nil
}

// upload sends size bytes from r as a new generation under k's locator.
func (c *Client) upload(ctx context.Context, k backup.RecoveryKey, r io.Reader, size int64, progress func(Progress)) (uint64, error) {
	locator, token := k.Locator(), k.WriteToken()
	begin, err := call(ctx, c, "starting the backup upload", c.backup.BeginBackup,
		&parleyv1.BeginBackupRequest{Locator: locator[:], WriteToken: token[:], Size: size})
	if err != nil {
		return 0, err
	}
	chunk := int(begin.MaxChunk)
	if chunk <= 0 || chunk > maxBackupChunk {
		chunk = maxBackupChunk
	}
	buf := make([]byte, chunk)
	var index uint32
	var sent int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := call(ctx, c, "uploading the backup", c.backup.PutBackupChunk,
				&parleyv1.PutBackupChunkRequest{UploadId: begin.UploadId, Index: index, Chunk: buf[:n]}); err != nil {
				return 0, err
			}
			index++
			sent += int64(n)
			progress(Progress{Phase: "upload", Done: int(sent), Total: int(size)})
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return 0, fmt.Errorf("client: reading the staged backup: %w", rerr)
		}
	}
	done, err := call(ctx, c, "committing the backup", c.backup.CommitBackup,
		&parleyv1.CommitBackupRequest{UploadId: begin.UploadId, Chunks: index})
	if err != nil {
		return 0, err
	}
	return done.Generation, nil
}

// maxBackupChunk is the largest chunk the client sends, whatever the
// server allows.
const maxBackupChunk = 1 << 20

// deleteBackups deletes every generation under k's locator.
func (c *Client) deleteBackups(ctx context.Context, k backup.RecoveryKey) error {
	locator, token := k.Locator(), k.WriteToken()
	_, err := call(ctx, c, "deleting the backups", c.backup.DeleteBackups,
		&parleyv1.DeleteBackupsRequest{Locator: locator[:], WriteToken: token[:]})
	return err
}

// RotateRecoveryKey makes a new recovery key, uploads a backup under it,
// deletes every backup made under the old one, and re-issues the trusted
// contacts' shares (the old shares then recover a key that opens nothing).
// It returns the new key's written form, to be shown once.
func (c *Client) RotateRecoveryKey(ctx context.Context, opts BackupOptions) (string, *BackupInfo, error) {
	if err := c.alive(); err != nil {
		return "", nil, err
	}
	old, err := c.recoveryKey(ctx)
	if err != nil {
		return "", nil, err
	}
	k := backup.NewRecoveryKey()
	// The new backup first: if anything below fails, the old key and its
	// backups still work.
	info, err := c.backupWith(ctx, k, opts)
	if err != nil {
		return "", nil, err
	}
	if err := c.db.SetSetting(ctx, settingRecoveryKey, k[:]); err != nil {
		return "", nil, err
	}
	if err := c.deleteBackups(ctx, old); err != nil {
		return "", nil, fmt.Errorf("client: the new recovery key is in use, but deleting the old key's backups failed (run rotate again or turn backups off and on): %w", err)
	}
	if err := c.reissueShares(ctx, k); err != nil {
		return "", nil, err
	}
	return k.String(), info, nil
}

// DisableBackups deletes every backup on the server, revokes the trusted
// contacts' shares and forgets the recovery key.
func (c *Client) DisableBackups(ctx context.Context) error {
	if err := c.alive(); err != nil {
		return err
	}
	k, err := c.recoveryKey(ctx)
	if err != nil {
		return err
	}
	if err := c.deleteBackups(ctx, k); err != nil {
		return err
	}
	if err := c.revokeShares(ctx, k); err != nil {
		return err
	}
	return c.db.Update(ctx, func(tx *clientdb.Tx) error {
		for _, s := range []string{settingRecoveryKey, settingLastBackup, settingRecoveryContacts} {
			if err := tx.DeleteSetting(s); err != nil {
				return err
			}
		}
		return nil
	})
}

// Restore recovers an account on a fresh device from its backup: it asks
// the server for the backup under the recovery key's locator, decrypts and
// checks all of it, adds this device to the account's device list (signed
// with the restored account key) and stores everything the archive holds.
// New sessions are made with every contact as messages flow. Nothing is
// left behind on failure: the home directory is removed again and the
// account is not changed.
func Restore(ctx context.Context, home, server, name, recoveryKey string, opts Options, progress func(Progress)) (*Client, error) {
	k, err := backup.ParseRecoveryKey(recoveryKey)
	if err != nil {
		return nil, err
	}
	return restore(ctx, home, server, name, k, identity.GenerateDeviceKeys(), opts, progress)
}

func restore(ctx context.Context, home, server, name string, k backup.RecoveryKey, dev *identity.DeviceKeys, opts Options, progress func(Progress)) (*Client, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	name, err := username.Normalize(name)
	if err != nil {
		return nil, err
	}
	c, fail, err := newHome(ctx, home, server, name, opts)
	if err != nil {
		return nil, err
	}
	staged, err := os.CreateTemp(home, ".restore-*.age")
	if err != nil {
		return fail(fmt.Errorf("client: restore: %w", err))
	}
	defer func() {
		staged.Close()
		os.Remove(staged.Name())
	}()
	if err := c.download(ctx, k, staged, progress); err != nil {
		return fail(err)
	}
	// First pass: decrypt and check everything before anything is stored
	// or published.
	open := func() (*backup.Reader, error) {
		if _, err := staged.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return backup.NewReader(bufio.NewReaderSize(staged, 256<<10), k)
	}
	r, err := open()
	if err != nil {
		return fail(err)
	}
	defer r.Close() // before staged is closed: the Reader reads ahead
	h := r.Header()
	if h.Username != name {
		return fail(fmt.Errorf("%w: it is a backup of %q, not %q", ErrBackupOtherAccount, h.Username, name))
	}
	var total [2]int
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		switch rec.Kind {
		case backup.KindContact:
			total[0]++
		case backup.KindMessage:
			total[1]++
		}
	}
	c.account = h.AccountKey
	c.device, c.self = dev, dev.Public()
	c.selfID = c.self.ID()

	// The account as the directory shows it must be signed by the key the
	// backup holds: otherwise this is a backup of another account (or of
	// an account deleted and registered again by someone else).
	prevSigned, trusted, err := c.lookup(ctx, name, c.anonymousGet)
	if err != nil {
		return fail(err)
	}
	if err := c.commitTrusted(ctx, trusted); err != nil {
		return fail(err)
	}
	prev, err := prevSigned.Verify(nil)
	if err != nil {
		return fail(securityError("own device list", err))
	}
	if prev.Account != name {
		return fail(securityError("own device list", fmt.Errorf("names %q, not %q", prev.Account, name)))
	}
	if !prev.Key.Equal(c.account.Public()) {
		return fail(fmt.Errorf("%w: the server's device list of %q is signed by another account key than the backup's", ErrBackupOtherAccount, name))
	}
	devs := append([]identity.DeviceEntry(nil), prev.Devices...)
	if len(devs) >= identity.MaxDevices {
		return fail(fmt.Errorf("client: %q already has %d devices (identity.MaxDevices); remove one from another device first", name, len(devs)))
	}
	devName := opts.DeviceName
	if devName == "" {
		devName = defaultDeviceName()
	}
	devs = append(devs, identity.DeviceEntry{Device: c.self, Name: devName, Added: uint64(c.now().Unix())})
	signed, err := identity.SignDeviceList(c.account, &identity.DeviceList{
		Account: name, Version: prev.Version + 1, Prev: prevSigned.Hash(), Devices: devs,
	})
	if err != nil {
		return fail(err)
	}
	set, up, err := prekey.NewSet(c.device.Signing, InitialPrekeys)
	if err != nil {
		return fail(err)
	}
	c.prekeys = set

	// Second pass: store everything, then publish. The publication is the
	// last step: until it succeeds nothing on the server has changed, and
	// a failure removes the home directory.
	r, err = open()
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	var done [2]int
	batch := func(fn func(tx *clientdb.Tx) error) error { return c.db.Update(ctx, fn) }
	var pending []backup.Record
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		err := batch(func(tx *clientdb.Tx) error {
			for i := range pending {
				rec := &pending[i]
				switch rec.Kind {
				case backup.KindContact:
					ct := &rec.Contact
					if err := tx.PutContact(&clientdb.Contact{Username: ct.Username, DeviceList: ct.DeviceList, Verified: ct.Verified, Added: ct.Added}); err != nil {
						return err
					}
				case backup.KindSetting:
					if err := tx.SetSetting(rec.Setting.Name, rec.Setting.Value); err != nil {
						return err
					}
				case backup.KindMessage:
					m := &rec.Message
					if _, err := tx.PutMessage(&clientdb.Message{
						ID: m.ID, Conversation: m.Conversation, Sender: m.Sender, SenderDevice: m.SenderDevice,
						Outgoing: m.Outgoing, Sent: m.Sent, Received: m.Received, Body: m.Body, State: clientdb.DeliveryState(m.State),
					}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		pending = pending[:0]
		return err
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		if rec.Kind == backup.KindSetting && !isArchivedSetting(rec.Setting.Name) {
			continue // a setting this client does not restore
		}
		pending = append(pending, rec)
		switch rec.Kind {
		case backup.KindContact:
			done[0]++
		case backup.KindMessage:
			done[1]++
		}
		if len(pending) == clientdb.MaxHistory {
			if err := flush(); err != nil {
				return fail(err)
			}
			progress(Progress{Phase: "restore", Done: done[1], Total: total[1]})
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	progress(Progress{Phase: "restore", Done: done[1], Total: total[1]})
	if err := c.db.Update(ctx, func(tx *clientdb.Tx) error {
		if err := tx.SetSetting(settingRecoveryKey, k[:]); err != nil {
			return err
		}
		return tx.PutIdentity(&clientdb.Identity{
			Username: name, ServerURL: c.server, AccountKeySeed: c.account.Seed(),
			DeviceKeys: c.device.Marshal(), Prekeys: set.Marshal(), DeviceList: signed.Marshal(),
		})
	}); err != nil {
		return fail(err)
	}
	id := c.selfID
	_, err = c.dir.RecoverAccount(ctx, connect.NewRequest(&parleyv1.RecoverAccountRequest{
		Username: name, SignedDeviceList: signed.Marshal(),
		NewDevices: []*parleyv1.NewDevicePrekeys{{DeviceId: id[:], Prekeys: uploadProto(&prekey.Upload{Signed: up.Signed, LastResort: up.LastResort})}},
	}))
	if err != nil {
		return fail(wrapRPC("adding this device to the account", err))
	}
	list, err := signed.Verify(prevSigned)
	if err != nil {
		return fail(err)
	}
	c.lists[name] = list
	// From here on the device is in the account: keep the home whatever
	// happens. The one-time prekeys can be uploaded later (maintenance
	// replenishes them), so a failure here is only logged.
	if _, err := call(ctx, c, "uploading prekeys", c.dir.UploadPrekeys, &parleyv1.UploadPrekeysRequest{Prekeys: uploadProto(up)}); err != nil {
		c.log.Warn("uploading one-time prekeys after restore", "err", err)
	}
	return c, nil
}

func isArchivedSetting(name string) bool {
	for _, s := range archivedSettings {
		if s == name {
			return true
		}
	}
	return false
}

// download fetches the newest backup under k's locator into w.
func (c *Client) download(ctx context.Context, k backup.RecoveryKey, w io.Writer, progress func(Progress)) error {
	locator := k.Locator()
	stream, err := c.backup.GetBackup(ctx, connect.NewRequest(&parleyv1.GetBackupRequest{Locator: locator[:]}))
	if err != nil {
		return wrapRPC("downloading the backup", err)
	}
	defer stream.Close()
	var size, got int64
	first := true
	for stream.Receive() {
		m := stream.Msg()
		if first {
			size, first = m.Size, false
		}
		if _, err := w.Write(m.Chunk); err != nil {
			return fmt.Errorf("client: staging the backup: %w", err)
		}
		got += int64(len(m.Chunk))
		progress(Progress{Phase: "download", Done: int(got), Total: int(size)})
	}
	if err := stream.Err(); err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound {
			return ErrNoBackup
		}
		return wrapRPC("downloading the backup", err)
	}
	if first || got != size {
		return fmt.Errorf("client: downloading the backup: got %d of %d bytes; try again", got, size)
	}
	return nil
}
