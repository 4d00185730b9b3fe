package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// BackupLocator names where a user's encrypted backups are stored
// (docs/backup.md): 32 bytes derived from the recovery key. The server
// cannot link it to an account; knowing it is the capability to download
// the (age-encrypted) backups stored under it.
type BackupLocator [32]byte

// BackupUploadID names one upload in progress: 16 random bytes chosen by
// the server and known only to the uploading device.
type BackupUploadID [16]byte

// BackupUpload is an upload as BeginBackup records it.
type BackupUpload struct {
	ID      BackupUploadID
	Locator BackupLocator
	// WriteHash is the hash of the write token (docs/backup.md): every
	// generation under a locator carries the same one, and replacing or
	// deleting the locator's backups needs the token. The store compares
	// hashes of a 256-bit secret, never the token itself.
	WriteHash [32]byte
	Created   time.Time
	// Expires is when an upload that was never committed may be deleted
	// by ExpireBackupUploads.
	Expires time.Time
}

// Backup is one committed generation of the backups under a locator.
type Backup struct {
	Locator    BackupLocator
	Generation uint64 // 1 for the first backup under a locator, then 2, 3, ...
	Chunks     uint32
	Size       int64 // bytes, all chunks together
	Created    time.Time
}

// Backups stores encrypted backups as chunked ciphertext (docs/server.md
// §5.7). It is a seam of its own beside Store, like Mailboxes: the server
// serves the BackupService only if its store implements it. Every method
// is safe for concurrent use; a method that returns without error has made
// its change durable unless its documentation says otherwise.
type Backups interface {
	// BeginBackup records a pending upload. If committed generations are
	// stored under u.Locator with another write hash, it fails with
	// ErrBackupForbidden and records nothing.
	BeginBackup(ctx context.Context, u BackupUpload) error
	// PutBackupChunk stores chunk index of a pending upload. index must be
	// the number of chunks stored so far; a retry of the last chunk with
	// identical bytes changes nothing and succeeds. Any other index, or the
	// last one with other bytes, fails with *FrameIndexError; a chunk that
	// would take the upload over maxBytes (if > 0) fails with
	// *BackupTooLargeError; an unknown or already committed upload is
	// ErrNotFound.
	PutBackupChunk(ctx context.Context, id BackupUploadID, index uint32, chunk []byte, maxBytes int64) error
	// CommitBackup makes a pending upload of exactly chunks chunks the
	// newest generation under its locator and deletes every generation but
	// the newest keep (keep >= 1), in one transaction: a reader sees the old
	// generations or the new set, never a mix, and a crash keeps the old
	// ones. *BackupChunkCountError if the upload holds another number of
	// chunks; ErrBackupForbidden if, meanwhile, another write hash committed
	// under the locator; ErrNotFound for an unknown upload. Committing an
	// upload that is already committed returns its generation again, so a
	// client whose answer was lost can retry.
	CommitBackup(ctx context.Context, id BackupUploadID, chunks uint32, keep int) (*Backup, error)
	// LatestBackup returns the newest committed generation under a locator,
	// or ErrNotFound.
	LatestBackup(ctx context.Context, locator BackupLocator) (*Backup, error)
	// BackupChunks returns up to limit chunks of a committed generation in
	// index order from index from. ErrNotFound if that generation is not
	// stored (never committed, or pruned or deleted since).
	BackupChunks(ctx context.Context, locator BackupLocator, generation uint64, from uint32, limit int) ([][]byte, error)
	// DeleteBackups deletes every generation and pending upload under a
	// locator whose write hash is writeHash, and returns how many
	// generations it deleted. ErrBackupForbidden if committed generations
	// with another write hash are stored there. Deleting where nothing is
	// stored succeeds with 0. Durable: the user is told their backups are
	// gone only once they are.
	DeleteBackups(ctx context.Context, locator BackupLocator, writeHash [32]byte) (int, error)
	// ExpireBackupUploads deletes pending uploads whose Expires is before
	// now, with their chunks, and returns how many. Not necessarily
	// durable: a deletion lost in a power failure is redone by the next
	// sweep.
	ExpireBackupUploads(ctx context.Context, now time.Time) (int, error)
}

// ErrBackupForbidden reports a write or delete under a locator whose
// backups were stored with another write token.
var ErrBackupForbidden = errors.New("store: backups under this locator belong to another write token")

// BackupTooLargeError reports a chunk that would take an upload over its
// size limit.
type BackupTooLargeError struct {
	Limit int64 // bytes
}

func (e *BackupTooLargeError) Error() string {
	return fmt.Sprintf("store: backup would exceed its limit of %d bytes", e.Limit)
}

// BackupChunkCountError reports a commit whose chunk count does not match
// the chunks stored.
type BackupChunkCountError struct {
	Want, Stored uint32
}

func (e *BackupChunkCountError) Error() string {
	return fmt.Sprintf("store: backup commit names %d chunks, but %d are stored", e.Want, e.Stored)
}
