-- 0001: the first schema (docs/server.md §3), the PostgreSQL twin of
-- internal/store/sqlite/migrations/0001_init.sql.
--
-- Every time is Unix microseconds in a BIGINT, as in the SQLite engine: the
-- two engines then hold identical values (a row can be copied from one to
-- the other unchanged), and the range covers the zero time.Time.
--
-- Lock order (see postgres.go): an account row before its device rows,
-- device rows in ascending id order, a device row before the envelopes of
-- its queue. Every statement that inserts or deletes envelopes runs in a
-- transaction that holds the device row locked, which is what keeps Seq
-- order and queue_len exact (see batch.go).

CREATE TABLE accounts (
	username     TEXT PRIMARY KEY,
	account_key  BYTEA NOT NULL,
	created      BIGINT NOT NULL,
	list_version BIGINT NOT NULL CHECK (list_version >= 1)
);

-- Device lists are append-only: a row is never updated, only added, or
-- deleted with its account.
CREATE TABLE device_lists (
	username TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
	version  BIGINT NOT NULL CHECK (version >= 1),
	signed   BYTEA NOT NULL,
	PRIMARY KEY (username, version)
);

-- queue_len is the number of envelopes queued for the device, so that the
-- MaxQueue check of a send is one row read, not a count over the queue. It
-- changes only under the row's lock, in the transaction that inserts or
-- deletes the envelopes (there is no trigger: the code takes the locks in
-- the documented order, which a trigger firing per row would not).
CREATE TABLE devices (
	id        BYTEA PRIMARY KEY CHECK (octet_length(id) = 16),
	username  TEXT NOT NULL REFERENCES accounts (username) ON DELETE CASCADE,
	public    BYTEA NOT NULL,
	added     BIGINT NOT NULL,
	last_seen BIGINT NOT NULL,
	queue_len BIGINT NOT NULL DEFAULT 0 CHECK (queue_len >= 0)
);
CREATE INDEX devices_by_account ON devices (username, id);

-- kind: 0 signed, 1 last-resort ML-KEM, 2 one-time X25519, 3 one-time
-- ML-KEM. A device has at most one current signed and one last-resort
-- prekey (prekeys_current); replacing one updates its row in place, so a
-- ClaimBundle waiting on that row's lock finds the new key, not nothing.
CREATE TABLE prekeys (
	device BYTEA NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	kind   SMALLINT NOT NULL CHECK (kind BETWEEN 0 AND 3),
	id     BIGINT NOT NULL CHECK (id BETWEEN 0 AND 4294967295),
	body   BYTEA NOT NULL,
	PRIMARY KEY (device, kind, id)
);
CREATE UNIQUE INDEX prekeys_current ON prekeys (device, kind) WHERE kind IN (0, 1);

-- Seqs come from one sequence, so they are unique across devices (an ack
-- naming another device's Seq deletes nothing), but they are taken only
-- while the device rows are locked, which keeps each device's Seqs
-- committing in increasing order (batch.go). CACHE 1, the default, is
-- load-bearing: with a larger cache each connection would hand out its
-- own block of numbers, and a device could get a smaller Seq after a
-- larger one.
CREATE SEQUENCE envelope_seq AS BIGINT CACHE 1;

-- The queue, by (device, seq).
CREATE TABLE envelopes (
	device          BYTEA NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
	seq             BIGINT NOT NULL CHECK (seq >= 1),
	message_id      BYTEA NOT NULL CHECK (octet_length(message_id) = 16),
	sender_username TEXT NOT NULL,
	sender_device   BYTEA NOT NULL CHECK (octet_length(sender_device) = 16),
	body            BYTEA NOT NULL,
	created         BIGINT NOT NULL,
	expires         BIGINT NOT NULL,
	PRIMARY KEY (device, seq),
	UNIQUE (device, message_id)
);
CREATE INDEX envelopes_by_expiry ON envelopes (expires);

-- Invites are deleted when used, so "used" and "unknown" are one case.
CREATE TABLE invites (
	hash    BYTEA PRIMARY KEY,
	expires BIGINT NOT NULL
);

CREATE TABLE secrets (
	name  TEXT PRIMARY KEY,
	value BYTEA NOT NULL
);
