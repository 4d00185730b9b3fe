package clientdb

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; the messages are
// what a UI may show.
var (
	// ErrWrongPassphrase reports a passphrase that does not unwrap the
	// storage key. It is also what a tampered salt, parameter or wrapped
	// key gives: the AES-GCM tag cannot say which part was wrong, and this
	// package does not guess.
	ErrWrongPassphrase = errors.New("clientdb: wrong passphrase")
	// ErrCorrupt reports stored bytes that are malformed or fail
	// authentication: a sealed value changed, moved to another row or
	// column, or a clear column it is bound to changed. A thief who can
	// write the file can destroy data, but only ever causes this error,
	// never a wrong value.
	ErrCorrupt = errors.New("clientdb: database is corrupt or has been tampered with")
	// ErrNotFound reports a missing row: no identity before registration,
	// no session with a device, no such contact or setting.
	ErrNotFound = errors.New("clientdb: not found")
	// ErrExists reports Create on a path that already exists. It also
	// matches fs.ErrExist.
	ErrExists = errors.New("clientdb: database file already exists")
	// ErrNotDatabase reports a file that is not a Parley client database.
	ErrNotDatabase = errors.New("clientdb: not a parley client database")
	// ErrSchemaTooNew reports a database written by a newer version of
	// Parley. Older code must not touch it: it cannot know what the newer
	// schema means.
	ErrSchemaTooNew = errors.New("clientdb: database schema is newer than this program supports")
	// ErrEmptyPassphrase reports Create or ChangePassphrase with an empty
	// passphrase. A store without a passphrase must be asked for
	// explicitly, with Options{Insecure: true}.
	ErrEmptyPassphrase = errors.New("clientdb: empty passphrase (an unencrypted store needs Options{Insecure: true})")
	// ErrClosed reports use of a DB after Close.
	ErrClosed = errors.New("clientdb: database is closed")
)
