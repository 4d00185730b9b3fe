// Package store defines the server's storage seam, as described in
// docs/server.md §3: accounts, signed device lists, devices, prekeys and the
// per-device message queues. The server sees only this interface; cmd/
// and tests choose an engine (internal/store/sqlite, later PostgreSQL), and
// internal/store/storetest is the conformance suite every engine runs.
//
// The store holds public keys, signed statements and ciphertext. It never
// interprets them: parsing and verifying is the server's job before it
// calls the store.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DeviceID is a device's 16-byte identifier (docs/protocol.md §3.2).
type DeviceID [16]byte

// MessageID is a sender-chosen 16-byte message identifier; enqueueing is
// idempotent by (recipient device, message id).
type MessageID [16]byte

// Account is a registered account.
type Account struct {
	Username string
	// AccountKey is the encoded account public key that signs the
	// account's device lists.
	AccountKey []byte
	Created    time.Time
	// ListVersion is the version of the current device list.
	ListVersion uint64
}

// Device is a device in its account's current device list.
type Device struct {
	ID       DeviceID
	Username string
	// Public is the encoded identity.DevicePublic (signing key and X25519
	// identity key).
	Public   []byte
	Added    time.Time
	LastSeen time.Time
}

// DeviceList is one version of an account's signed device list.
type DeviceList struct {
	Username string
	Version  uint64
	// Signed is the encoded identity.SignedDeviceList, exactly as the
	// client uploaded it.
	Signed []byte
}

// Prekey is one public prekey as the server keeps it: its id and the
// device's encoding of it (key and signature), opaque to the store.
type Prekey struct {
	ID   uint32
	Body []byte
}

// PrekeyUpload is a batch of public prekeys for one device. Signed and
// LastResort, when set, replace the current ones; one-time prekeys are
// added (an id already held is ignored, so an upload can be retried).
type PrekeyUpload struct {
	Signed     *Prekey
	LastResort *Prekey
	OneTime    []Prekey // X25519
	PQ         []Prekey // ML-KEM-1024
}

// Bundle is what ClaimBundle hands out for one device.
type Bundle struct {
	Signed Prekey
	// OneTime is nil when the device's one-time X25519 prekeys ran out.
	OneTime *Prekey
	// PQ is a one-time ML-KEM prekey, or the last-resort one when
	// PQLastResort is set.
	PQ           Prekey
	PQLastResort bool
	// Remaining counts after this claim, so the server can tell the device
	// to replenish.
	OneTimeLeft, PQLeft int
}

// NewAccount is everything a registration writes, atomically.
type NewAccount struct {
	Account Account
	List    DeviceList // version 1
	Devices []Device   // the devices of List (one at registration)
	Prekeys map[DeviceID]PrekeyUpload
	// InviteHash, if set, must name an unused, unexpired invite, which the
	// registration consumes.
	InviteHash []byte
}

// DeviceListUpdate publishes a new version of an account's device list.
type DeviceListUpdate struct {
	List DeviceList // Version must be the current version + 1
	// Devices is the complete new set. Devices of the account not in it
	// are removed together with their queues and prekeys; devices new to
	// it are added.
	Devices []Device
	Prekeys map[DeviceID]PrekeyUpload // for newly added devices
}

// Envelope is one queued message for one device.
type Envelope struct {
	Device    DeviceID  // recipient device
	MessageID MessageID // sender-chosen, idempotency key
	// Seq orders a device's queue; assigned by the store on insert,
	// strictly increasing per device.
	Seq uint64
	// Prev is set by Enqueue (Fetch leaves it 0): no envelope of the same
	// Device has, or will ever get, a Seq between Prev and Seq
	// (exclusive). It is the Seq of the envelope stored for the Device just
	// before this one, or 0 if the store knows of none (the device's first
	// envelope, or its first since an upgrade that found its queue empty).
	Prev           uint64
	SenderUsername string
	SenderDevice   DeviceID
	Body           []byte
	Created        time.Time
	Expires        time.Time
}

// Send is one client send: its envelopes for every recipient device, all
// stored or none.
type Send struct {
	Envelopes []Envelope
	// MaxQueue is the limit on each recipient queue's length; a send that
	// would exceed it fails with a *QueueFullError.
	MaxQueue int
}

// Store is the server's storage. Every method is safe for concurrent use.
// A method that returns without error has made its change durable unless
// its documentation says otherwise.
type Store interface {
	// CreateAccount writes a new account, its first device list, devices
	// and prekeys, consumes the invite and queues the list for key
	// transparency (Transparency), all in one transaction.
	// ErrAccountExists if the username is taken (also, together with
	// ErrUsernameInLog, if a deleted account used it), ErrDeviceExists if a
	// device id is registered already, ErrInviteInvalid if the invite is
	// unknown, used or expired.
	CreateAccount(ctx context.Context, a NewAccount) error
	// Account returns an account or ErrNotFound.
	Account(ctx context.Context, username string) (*Account, error)
	// DeleteAccount removes an account, its devices, lists, prekeys and
	// queues.
	DeleteAccount(ctx context.Context, username string) error

	// DeviceList returns a version of an account's device list; version 0
	// means the current one. ErrNotFound if there is no such version.
	DeviceList(ctx context.Context, username string, version uint64) (*DeviceList, error)
	// UpdateDeviceList publishes a new version and queues it for key
	// transparency in the same transaction. ErrVersionConflict if its
	// version is not the current version + 1 (a concurrent update won).
	// It returns the ids of removed devices.
	UpdateDeviceList(ctx context.Context, u DeviceListUpdate) (removed []DeviceID, err error)
	// Devices returns an account's current devices, ordered by id.
	Devices(ctx context.Context, username string) ([]Device, error)
	// DeviceIDs returns, for each username, the ids of its account's
	// current devices, ordered by id: ids[i] belongs to usernames[i], and
	// an unknown account has none. It is the read every send makes, so it
	// reads no keys.
	DeviceIDs(ctx context.Context, usernames ...string) (ids [][]DeviceID, err error)
	// Device returns a current device or ErrNotFound.
	Device(ctx context.Context, id DeviceID) (*Device, error)
	// TouchDevice records that a device was seen. Not necessarily durable.
	TouchDevice(ctx context.Context, id DeviceID, at time.Time) error

	// AddPrekeys stores prekeys for a current device (ErrNotFound
	// otherwise).
	AddPrekeys(ctx context.Context, id DeviceID, u PrekeyUpload) error
	// ClaimBundle atomically takes one one-time prekey of each kind (if
	// any) and returns them with the signed and, if no one-time ML-KEM
	// prekey remains, the last-resort prekey. No one-time prekey is ever
	// returned twice, even to concurrent callers. ErrNotFound if the
	// device is unknown or has no signed/last-resort prekey.
	ClaimBundle(ctx context.Context, id DeviceID) (*Bundle, error)
	// PrekeyCounts returns how many one-time prekeys of each kind remain.
	PrekeyCounts(ctx context.Context, id DeviceID) (oneTime, pq int, err error)

	// Enqueue stores every envelope of a send, or none. It is idempotent:
	// an envelope whose (Device, MessageID) is still queued is not stored
	// again, and the send still succeeds. (A retry after the recipient
	// acknowledged is stored again; clients de-duplicate by message id.)
	// Envelopes addressed to a device that is not current fail the whole
	// send with *UnknownDeviceError. When Enqueue returns nil every
	// envelope is durable. Implementations batch concurrent sends into one
	// transaction (group commit).
	//
	// On success (nil error), Enqueue sets Seq and Prev of every envelope
	// of s.Envelopes it stored: the slice's elements are written in place,
	// so concurrent Enqueues must not share one slice. An envelope not
	// stored because its (Device, MessageID) was still queued keeps Seq 0
	// and Prev 0. On error, the values are unspecified. For one device's
	// envelopes in Seq order, each one's Prev is the previous one's Seq,
	// whichever sends, batches or nodes stored them; failed sends and
	// duplicates advance nothing, and acks, expiry and Fetch do not change
	// what the next Prev will be.
	Enqueue(ctx context.Context, s Send) error
	// Fetch returns up to limit envelopes of a device's queue with Seq >
	// after, in Seq order, skipping expired ones.
	Fetch(ctx context.Context, id DeviceID, after uint64, limit int) ([]Envelope, error)
	// Ack deletes envelopes from a device's queue by Seq. Acks need not be
	// durable: a lost ack only causes a redelivery, which clients
	// de-duplicate by message id.
	Ack(ctx context.Context, id DeviceID, seqs []uint64) error
	// QueueLength returns the number of envelopes queued for a device.
	QueueLength(ctx context.Context, id DeviceID) (int, error)
	// Expire deletes every envelope whose Expires is before now and
	// returns how many.
	Expire(ctx context.Context, now time.Time) (int, error)

	// Secret returns the named server secret, creating it with gen on
	// first use (atomically: concurrent first calls agree).
	Secret(ctx context.Context, name string, gen func() []byte) ([]byte, error)
	// CreateInvite stores an invite by the hash of its token.
	CreateInvite(ctx context.Context, hash []byte, expires time.Time) error

	// Close waits for in-flight writes and releases the store.
	Close() error
}

var (
	// ErrNotFound reports a missing account, device, list version or prekey.
	ErrNotFound = errors.New("store: not found")
	// ErrAccountExists reports a username already registered.
	ErrAccountExists = errors.New("store: account exists")
	// ErrDeviceExists reports a device id already registered.
	ErrDeviceExists = errors.New("store: device exists")
	// ErrVersionConflict reports a device-list update that is not the
	// successor of the current version.
	ErrVersionConflict = errors.New("store: device list version conflict")
	// ErrInviteInvalid reports an unknown, used or expired invite.
	ErrInviteInvalid = errors.New("store: invite is unknown, used or expired")
	// ErrClosed reports use of a closed store.
	ErrClosed = errors.New("store: closed")
	// ErrUnavailable reports that the database could not be reached, or
	// cut the connection (it is restarting, shutting down, or the network
	// failed). The call may succeed if made again; a write that failed so
	// may or may not have taken effect, which is harmless for the writes
	// clients retry (sends are idempotent by message id).
	ErrUnavailable = errors.New("store: database unavailable")
)

// UnknownDeviceError reports a send addressed to devices that are not
// current.
type UnknownDeviceError struct{ Devices []DeviceID }

func (e *UnknownDeviceError) Error() string {
	return fmt.Sprintf("store: %d envelope(s) addressed to devices that are not current", len(e.Devices))
}

// QueueFullError reports a send to a device whose queue is at its limit.
type QueueFullError struct {
	Device DeviceID
	Limit  int
}

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("store: queue of device %x is full (limit %d envelopes)", e.Device[:], e.Limit)
}
