package clientdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Tx is one read-write transaction, handed to the function given to
// Update. It is valid only during that call and must not be shared between
// goroutines.
type Tx struct {
	ctx context.Context
	tx  *sql.Tx
	k   *keys
}

// Update runs fn in one transaction and commits it if fn returns nil; if fn
// returns an error (or panics) nothing it wrote is kept.
//
// This is the SDK's receive path: store the decrypted message, the
// session record the decryption advanced and, when a one-time prekey was
// used, the prekey set without it, in one commit — then ack the relay. A
// crash before the commit loses nothing (the relay redelivers, and the
// session state that decrypts it is the old one); a crash after it but
// before the ack redelivers a message PutMessage then reports as a
// duplicate. The commit is durable (synchronous = FULL) before Update
// returns.
//
// fn must do all its work through tx: a DB method called from inside fn
// waits for this transaction's write lock (and a DB read does not see its
// uncommitted writes).
func (db *DB) Update(ctx context.Context, fn func(tx *Tx) error) error {
	return db.use(func(k *keys) error {
		stx, err := db.sql.BeginTx(ctx, nil)
		if err != nil {
			return sqlError("begin", err)
		}
		// A no-op after Commit; after an error or a panic in fn, the
		// rollback.
		defer stx.Rollback()
		if err := fn(&Tx{ctx: ctx, tx: stx, k: k}); err != nil {
			return err
		}
		if err := stx.Commit(); err != nil {
			return sqlError("commit", err)
		}
		return nil
	})
}

// view runs a read on the store outside a write transaction. Every reader
// is a single SELECT, which SQLite runs on one consistent snapshot.
func (db *DB) view(fn func(q querier, k *keys) error) error {
	return db.use(func(k *keys) error { return fn(db.sql, k) })
}

// Identity returns this device's own account, or ErrNotFound before
// registration.
func (db *DB) Identity(ctx context.Context) (id *Identity, err error) {
	err = db.view(func(q querier, k *keys) error {
		id, err = getIdentity(ctx, q, k)
		return err
	})
	return id, err
}

// PutIdentity stores (or replaces) this device's own account.
func (db *DB) PutIdentity(ctx context.Context, id *Identity) error {
	return db.Update(ctx, func(tx *Tx) error { return tx.PutIdentity(id) })
}

// Session returns the session record with a remote device, or ErrNotFound.
func (db *DB) Session(ctx context.Context, remote [16]byte) (record []byte, err error) {
	err = db.view(func(q querier, k *keys) error {
		record, err = getSession(ctx, q, k, remote)
		return err
	})
	return record, err
}

// SessionsFor returns the session records with every device of a user
// that this device has a session with, keyed by remote device ID (empty,
// not an error, if there is none).
func (db *DB) SessionsFor(ctx context.Context, username string) (records map[[16]byte][]byte, err error) {
	err = db.view(func(q querier, k *keys) error {
		records, err = sessionsFor(ctx, q, k, username)
		return err
	})
	return records, err
}

// History returns up to limit messages of a conversation sent strictly
// before before (the zero time: the latest), oldest first. To page back,
// pass the Sent time of the first message returned. limit is capped at
// MaxHistory.
func (db *DB) History(ctx context.Context, conversation string, limit int, before time.Time) (msgs []Message, err error) {
	err = db.view(func(q querier, k *keys) error {
		msgs, err = history(ctx, q, k, conversation, limit, before)
		return err
	})
	return msgs, err
}

// ExportMessages returns up to limit messages of a conversation stored after
// the position afterSeq (0 for the start), in storage order, with the
// position of the last one to pass next time. It is for copying a whole
// history (device linking): unlike History it never skips messages that
// share a timestamp.
func (db *DB) ExportMessages(ctx context.Context, conversation string, afterSeq int64, limit int) (msgs []Message, last int64, err error) {
	err = db.view(func(q querier, k *keys) error {
		msgs, last, err = exportMessages(ctx, q, k, conversation, afterSeq, limit)
		return err
	})
	return msgs, last, err
}

// Contact returns one contact, or ErrNotFound.
func (db *DB) Contact(ctx context.Context, username string) (c *Contact, err error) {
	err = db.view(func(q querier, k *keys) error {
		c, err = getContact(ctx, q, k, username)
		return err
	})
	return c, err
}

// Contacts returns every contact, sorted by username.
func (db *DB) Contacts(ctx context.Context) (cs []Contact, err error) {
	err = db.view(func(q querier, k *keys) error {
		cs, err = listContacts(ctx, q, k)
		return err
	})
	return cs, err
}

// Setting returns the value of a setting, or ErrNotFound.
func (db *DB) Setting(ctx context.Context, name string) (v []byte, err error) {
	err = db.view(func(q querier, k *keys) error {
		v, err = getSetting(ctx, q, k, name)
		return err
	})
	return v, err
}

// SetSetting stores the value of a setting.
func (db *DB) SetSetting(ctx context.Context, name string, value []byte) error {
	return db.Update(ctx, func(tx *Tx) error { return tx.SetSetting(name, value) })
}

// DeleteSetting deletes a setting; deleting one that is not set succeeds.
func (db *DB) DeleteSetting(ctx context.Context, name string) error {
	return db.Update(ctx, func(tx *Tx) error { return tx.DeleteSetting(name) })
}

// Identity is DB.Identity inside the transaction.
func (tx *Tx) Identity() (*Identity, error) { return getIdentity(tx.ctx, tx.tx, tx.k) }

// PutIdentity stores (or replaces) this device's own account.
func (tx *Tx) PutIdentity(id *Identity) error { return putIdentity(tx.ctx, tx.tx, tx.k, id) }

// PutPrekeys replaces the prekey set (prekey.Set.Marshal) of the stored
// identity: after a one-time prekey is used, or after a rotation.
func (tx *Tx) PutPrekeys(set []byte) error {
	return updateIdentity(tx.ctx, tx.tx, tx.k, colPrekeys, set)
}

// PutDeviceList replaces the account's own signed device list.
func (tx *Tx) PutDeviceList(list []byte) error {
	return updateIdentity(tx.ctx, tx.tx, tx.k, colDeviceList, list)
}

// SetToken replaces the auth token and its expiry.
func (tx *Tx) SetToken(token string, expiry time.Time) error {
	if err := checkTime("token expiry", expiry); err != nil {
		return err
	}
	return updateIdentity(tx.ctx, tx.tx, tx.k, colToken, encodeToken(token, expiry))
}

// Session is DB.Session inside the transaction.
func (tx *Tx) Session(remote [16]byte) ([]byte, error) {
	return getSession(tx.ctx, tx.tx, tx.k, remote)
}

// SessionsFor is DB.SessionsFor inside the transaction.
func (tx *Tx) SessionsFor(username string) (map[[16]byte][]byte, error) {
	return sessionsFor(tx.ctx, tx.tx, tx.k, username)
}

// PutSession stores (or replaces) the session record (session.Record.Marshal)
// with a remote device of a user.
func (tx *Tx) PutSession(remote [16]byte, username string, record []byte) error {
	return putSession(tx.ctx, tx.tx, tx.k, remote, username, record)
}

// DeleteSession removes the session with a remote device (a device that
// left its account's list). Deleting a missing session is not an error.
func (tx *Tx) DeleteSession(remote [16]byte) error {
	return deleteSession(tx.ctx, tx.tx, tx.k, remote)
}

// PutMessage stores a message unless one with the same (Sender, ID) is
// already stored, and reports whether it did. The sender chooses the ID,
// so only that pair names a message; a false return is the redelivery the
// relay's at-least-once delivery produces, which the SDK acks without
// showing twice. The stored copy is left as it was.
func (tx *Tx) PutMessage(m *Message) (inserted bool, err error) {
	return putMessage(tx.ctx, tx.tx, tx.k, m)
}

// SetMessageState changes the delivery state of a stored message, or
// returns ErrNotFound.
func (tx *Tx) SetMessageState(sender string, id [16]byte, state DeliveryState) error {
	return setMessageState(tx.ctx, tx.tx, tx.k, sender, id, state)
}

// History is DB.History inside the transaction.
func (tx *Tx) History(conversation string, limit int, before time.Time) ([]Message, error) {
	return history(tx.ctx, tx.tx, tx.k, conversation, limit, before)
}

// Contact is DB.Contact inside the transaction.
func (tx *Tx) Contact(username string) (*Contact, error) {
	return getContact(tx.ctx, tx.tx, tx.k, username)
}

// Contacts is DB.Contacts inside the transaction.
func (tx *Tx) Contacts() ([]Contact, error) { return listContacts(tx.ctx, tx.tx, tx.k) }

// PutContact stores (or replaces) a contact.
func (tx *Tx) PutContact(c *Contact) error { return putContact(tx.ctx, tx.tx, tx.k, c) }

// DeleteContact removes a contact; removing a missing one is not an error.
// Sessions and messages are kept.
func (tx *Tx) DeleteContact(username string) error {
	return deleteContact(tx.ctx, tx.tx, tx.k, username)
}

// Setting is DB.Setting inside the transaction.
func (tx *Tx) Setting(name string) ([]byte, error) { return getSetting(tx.ctx, tx.tx, tx.k, name) }

// SetSetting stores the value of a setting.
func (tx *Tx) SetSetting(name string, value []byte) error {
	return setSetting(tx.ctx, tx.tx, tx.k, name, value)
}

// DeleteSetting deletes a setting; deleting one that is not set succeeds.
func (tx *Tx) DeleteSetting(name string) error {
	return deleteSetting(tx.ctx, tx.tx, tx.k, name)
}

// notFound turns sql.ErrNoRows into ErrNotFound.
func notFound(what string, err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return sqlError("read "+what, err)
}
