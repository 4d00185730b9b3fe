-- 0001: the first schema (docs/server.md §3).
--
-- Every time is Unix microseconds: PostgreSQL keeps microseconds too, so
-- both engines round-trip the same values, and unlike nanoseconds the range
-- covers the zero time.Time. Tables are STRICT so a wrongly typed bind
-- fails loudly instead of being stored.

CREATE TABLE accounts (
	username     TEXT PRIMARY KEY,
	account_key  BLOB NOT NULL,
	created      INTEGER NOT NULL,
	list_version INTEGER NOT NULL
) STRICT;

-- Device lists are append-only: a row is never updated, only added, or
-- deleted with its account.
CREATE TABLE device_lists (
	username TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
	version  INTEGER NOT NULL,
	signed   BLOB NOT NULL,
	PRIMARY KEY (username, version)
) STRICT;

-- queue_len is kept by the triggers below so that the MaxQueue check of
-- every send is one row read, not a count over the queue.
CREATE TABLE devices (
	id        BLOB PRIMARY KEY,
	username  TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
	public    BLOB NOT NULL,
	added     INTEGER NOT NULL,
	last_seen INTEGER NOT NULL,
	queue_len INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX devices_by_account ON devices (username, id);

-- kind: 0 signed, 1 last-resort ML-KEM, 2 one-time X25519, 3 one-time
-- ML-KEM. A rowid table rather than WITHOUT ROWID: bodies carry hybrid
-- signatures of several kilobytes, too large for a clustered index.
CREATE TABLE prekeys (
	device BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	kind   INTEGER NOT NULL,
	id     INTEGER NOT NULL,
	body   BLOB NOT NULL,
	UNIQUE (device, kind, id)
) STRICT;

-- seq is AUTOINCREMENT, not a plain rowid: a plain rowid reuses the largest
-- value after it is deleted, so acknowledging the newest envelope and then
-- receiving another would hand out the same seq again, and a device that
-- fetches "after" its last seq would never see the new one. One global
-- sequence is strictly increasing per device too, and costs no per-device
-- counter row.
CREATE TABLE envelopes (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	device          BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	message_id      BLOB NOT NULL,
	sender_username TEXT NOT NULL,
	sender_device   BLOB NOT NULL,
	body            BLOB NOT NULL,
	created         INTEGER NOT NULL,
	expires         INTEGER NOT NULL,
	UNIQUE (device, message_id)
) STRICT;
CREATE INDEX envelopes_by_device ON envelopes (device, seq);
CREATE INDEX envelopes_by_expiry ON envelopes (expires);

CREATE TRIGGER envelopes_count_insert AFTER INSERT ON envelopes BEGIN
	UPDATE devices SET queue_len = queue_len + 1 WHERE id = NEW.device;
END;
CREATE TRIGGER envelopes_count_delete AFTER DELETE ON envelopes BEGIN
	UPDATE devices SET queue_len = queue_len - 1 WHERE id = OLD.device;
END;

-- Invites are deleted when used, so "used" and "unknown" are one case.
CREATE TABLE invites (
	hash    BLOB PRIMARY KEY,
	expires INTEGER NOT NULL
) STRICT;

CREATE TABLE secrets (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;
