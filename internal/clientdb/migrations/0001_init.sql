-- Parley client store, schema version 1 (docs/drafts/clientdb.md §3).
--
-- Every BLOB column except the keyed hashes (named *_hash or used as a
-- key) holds a value sealed with AES-256-GCM under the seal key; its
-- associated data binds the table, the column, the row key and the row's
-- clear columns. Clear columns hold only what queries need: keyed hashes,
-- times, flags and states.

-- The storage key, wrapped under the passphrase (or in the clear when the
-- user asked for an insecure store). One row.
CREATE TABLE keyring (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	wrapped BLOB NOT NULL
) STRICT;

-- This device's own account. One row, written at registration. The token
-- column seals expiry (8 bytes, Unix ns, big-endian) || token.
CREATE TABLE identity (
	id               INTEGER PRIMARY KEY CHECK (id = 1),
	username         BLOB NOT NULL,
	server_url       BLOB NOT NULL,
	account_key_seed BLOB NOT NULL,
	device_keys      BLOB NOT NULL,
	prekeys          BLOB NOT NULL,
	device_list      BLOB NOT NULL,
	token            BLOB NOT NULL
) STRICT;

-- People this user talks to. name_hash is the keyed hash of the username.
CREATE TABLE contacts (
	name_hash   BLOB PRIMARY KEY,
	verified    INTEGER NOT NULL,
	added       INTEGER NOT NULL,
	username    BLOB NOT NULL,
	device_list BLOB NOT NULL
) STRICT, WITHOUT ROWID;

-- Pairwise sessions, one per remote device. device_hash is the keyed hash
-- of the remote device ID, name_hash that of its account's username; ident
-- seals device ID (16 bytes) || username.
CREATE TABLE sessions (
	device_hash BLOB PRIMARY KEY,
	name_hash   BLOB NOT NULL,
	ident       BLOB NOT NULL,
	record      BLOB NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_by_name ON sessions (name_hash);

-- Messages. dedup_hash is the keyed hash of (sender, message ID): the
-- sender picks the ID, so that pair is what names a message, and the
-- unique index is the de-duplication the relay's at-least-once delivery
-- relies on. meta seals message ID (16) || sender device ID (16) ||
-- sender username.
CREATE TABLE messages (
	seq          INTEGER PRIMARY KEY,
	dedup_hash   BLOB NOT NULL UNIQUE,
	conversation BLOB NOT NULL,
	outgoing     INTEGER NOT NULL,
	sent         INTEGER NOT NULL,
	received     INTEGER NOT NULL,
	state        INTEGER NOT NULL,
	meta         BLOB NOT NULL,
	body         BLOB NOT NULL
) STRICT;
CREATE INDEX messages_history ON messages (conversation, sent, seq);

-- Settings: keyed hash of the name -> sealed value.
CREATE TABLE settings (
	name_hash BLOB PRIMARY KEY,
	value     BLOB NOT NULL
) STRICT, WITHOUT ROWID;
