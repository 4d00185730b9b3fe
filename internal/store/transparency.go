package store

import (
	"context"
	"errors"
)

// Key transparency (docs/transparency.md, the server section). Every
// engine's CreateAccount and UpdateDeviceList append the device list they
// write to a queue of pending key-transparency updates in the same
// transaction, so a published device list and its transparency update
// cannot diverge: either both are stored or neither is. The sequencer
// (internal/server) drains that queue into epochs.
//
// The store treats the transparency data as opaque bytes: it never parses
// an epoch, log entry or checkpoint. It keeps them immutable: a committed
// epoch, value or cosignature is never updated, and an engine refuses to
// (a trigger in the schema).

// KTUpdate is one pending key-transparency update: a device list that was
// published and not yet sequenced into an epoch.
type KTUpdate struct {
	// Seq is the update's place in the queue, assigned by the store,
	// increasing in commit order for the updates of one username.
	Seq      uint64
	Username string
	// Version is the KT version: the device-list version − 1.
	Version uint32
	// Value is the signed device list, as published.
	Value []byte
}

// KTValue is a sequenced version of a username: its value and the
// commitment opening the sequencer chose.
type KTValue struct {
	Username string
	Version  uint32 // KT version
	// Epoch is the epoch that inserted it.
	Epoch   uint64
	Opening [16]byte
	Value   []byte
}

// KTEpoch is one published epoch of the log.
type KTEpoch struct {
	Number uint64
	// Epoch is the kt.Epoch encoding (the leaves it inserted), Entry the
	// kt.LogEntry encoding, Checkpoint the log's signed checkpoint note
	// for the log of Number+1 entries (without witness cosignatures).
	Epoch, Entry, Checkpoint []byte
}

// KTCommit is everything one epoch writes, atomically.
type KTCommit struct {
	Epoch KTEpoch
	// Values are the versions the epoch sequenced; each one's Epoch must
	// be Epoch.Number.
	Values []KTValue
	// Consumed are the Seq of the pending updates the epoch sequenced,
	// deleted from the queue in the same transaction. Every one must
	// still be pending.
	Consumed []uint64
}

// Cosignature is a witness's signature line on a checkpoint.
type Cosignature struct {
	// Witness names the witness (its key name).
	Witness string
	// Line is the signature line, "— name base64\n".
	Line []byte
}

// Transparency stores the key-transparency log. Like Backups it is a seam
// of its own beside Store; every engine implements it, and the server
// requires it. Every method is safe for concurrent use; a method that
// returns without error has made its change durable.
type Transparency interface {
	// PendingKT returns up to limit pending updates whose Seq is greater
	// than after, oldest (lowest Seq) first; after 0 starts at the
	// oldest. Where transactions commit concurrently (PostgreSQL) an
	// update may become visible after one with a greater Seq, so reading
	// on from the greatest Seq seen can miss updates; only after = 0 sees
	// every pending update.
	PendingKT(ctx context.Context, after uint64, limit int) ([]KTUpdate, error)
	// PendingKTCount returns how many updates are pending.
	PendingKTCount(ctx context.Context) (int, error)

	// AcquireKTSequencer makes the caller the one sequencer of the log,
	// across every process sharing the store, until it releases the
	// returned sequencer (or its connection to the database ends). It
	// does not wait: if another holds it, ErrKTSequencerHeld.
	AcquireKTSequencer(ctx context.Context) (KTSequencer, error)

	// KTSize returns the number of committed epochs.
	KTSize(ctx context.Context) (uint64, error)
	// KTEpochs returns up to limit committed epochs from number from on,
	// in order; none if from is the size or beyond.
	KTEpochs(ctx context.Context, from uint64, limit int) ([]KTEpoch, error)
	// KTGreatest returns the greatest version of username sequenced in
	// an epoch below size, or ErrNotFound.
	KTGreatest(ctx context.Context, username string, size uint64) (*KTValue, error)
	// KTValues returns the versions from..to (inclusive) of username
	// sequenced in epochs below size, in version order; a version not
	// sequenced there is missing from the result.
	KTValues(ctx context.Context, username string, from, to uint32, size uint64) ([]KTValue, error)

	// AddKTCosignatures stores witnesses' cosignatures of the checkpoint
	// of size epochs. A witness that already has a cosignature for that
	// size keeps its first one.
	AddKTCosignatures(ctx context.Context, size uint64, cs []Cosignature) error
	// KTCosignatures returns the cosignatures stored for size, ordered
	// by witness name.
	KTCosignatures(ctx context.Context, size uint64) ([]Cosignature, error)
}

// KTSequencer is the held sequencer role (AcquireKTSequencer).
type KTSequencer interface {
	// CommitKTEpoch writes an epoch in one transaction: the epoch, its
	// values, and the deletion of the pending updates it consumed.
	// ErrKTConflict (and nothing written) if the epoch's number is not
	// the log's size, a consumed update is no longer pending, or a value
	// is already sequenced; ErrKTSequencerLost if the role was lost.
	CommitKTEpoch(ctx context.Context, c KTCommit) error
	// Release gives up the role. Releasing twice is harmless.
	Release()
}

// MaxKTVersion is the greatest KT version (kt.MaxVersion): device-list
// versions beyond MaxKTVersion + 1 are refused with ErrVersionConflict.
const MaxKTVersion = 1<<24 - 1

var (
	// ErrUsernameInLog reports a registration of a username that was used
	// before: its device lists are in the transparency log for good, and a
	// new account's versions would restart at 1, which the log cannot hold
	// (docs/transparency.md, "Server"). It is returned wrapped together
	// with ErrAccountExists.
	ErrUsernameInLog = errors.New("store: the username was used before and its history is in the transparency log")
	// ErrKTSequencerHeld reports that another process (or caller) is the
	// sequencer.
	ErrKTSequencerHeld = errors.New("store: another node holds the key-transparency sequencer")
	// ErrKTSequencerLost reports a commit by a sequencer that no longer
	// holds the role (its database session ended, or it released it).
	ErrKTSequencerLost = errors.New("store: the key-transparency sequencer role was lost")
	// ErrKTConflict reports an epoch commit that does not extend the
	// stored log: another sequencer committed first.
	ErrKTConflict = errors.New("store: the epoch does not extend the stored key-transparency log")
)
