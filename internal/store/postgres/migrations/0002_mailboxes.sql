-- 0002: provisioning mailboxes (docs/server.md §5.6, docs/protocol.md §9.7),
-- the PostgreSQL twin of internal/store/sqlite/migrations/0002_mailboxes.sql.
--
-- A mailbox is the new device's offer plus an append-only list of
-- transfer frames. frames and bytes are kept on the mailbox row, changed
-- only under its row lock by the append that inserts the frame, so that
-- the order and size checks of an append are one locked row read, not a
-- scan; the lock is also what makes exactly one of several concurrent
-- appends at one index win (mailbox.go). The primary key of
-- mailbox_frames is a backstop: two frames at one index cannot both be
-- stored even if the code were wrong.
--
-- Lock order: a mailbox row before its frames. Mailboxes share no lock
-- with accounts, devices or queues.

CREATE TABLE mailboxes (
	address BYTEA PRIMARY KEY CHECK (octet_length(address) = 16),
	offer   BYTEA NOT NULL,
	frames  BIGINT NOT NULL DEFAULT 0 CHECK (frames BETWEEN 0 AND 4294967295),
	bytes   BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),
	created BIGINT NOT NULL,
	expires BIGINT NOT NULL
);
CREATE INDEX mailboxes_by_expiry ON mailboxes (expires);

CREATE TABLE mailbox_frames (
	address BYTEA NOT NULL REFERENCES mailboxes (address) ON DELETE CASCADE,
	idx     BIGINT NOT NULL CHECK (idx BETWEEN 0 AND 4294967294),
	frame   BYTEA NOT NULL,
	PRIMARY KEY (address, idx)
);

-- Frames (up to about 1 MiB) and offers are ciphertext and public keys,
-- which do not compress: EXTERNAL stores them out of line in TOAST without
-- trying to compress them first.
ALTER TABLE mailboxes ALTER COLUMN offer SET STORAGE EXTERNAL;
ALTER TABLE mailbox_frames ALTER COLUMN frame SET STORAGE EXTERNAL;
