-- 0002: provisioning mailboxes (docs/server.md §5.6, docs/protocol.md §9.7).
--
-- A mailbox is the new device's offer plus an append-only list of
-- transfer frames. frames and bytes are kept on the mailbox row by the
-- writer as it appends, so that the order and size checks of every append
-- are one row read, not a scan. Frames live in their own table keyed by
-- (address, idx): a rowid table, not WITHOUT ROWID, because a frame is up
-- to about 1 MiB, far too large for a clustered index.

CREATE TABLE mailboxes (
	address BLOB PRIMARY KEY,
	offer   BLOB NOT NULL,
	frames  INTEGER NOT NULL DEFAULT 0,
	bytes   INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL
) STRICT;
CREATE INDEX mailboxes_by_expiry ON mailboxes (expires);

CREATE TABLE mailbox_frames (
	address BLOB NOT NULL REFERENCES mailboxes (address) ON DELETE CASCADE,
	idx     INTEGER NOT NULL,
	frame   BLOB NOT NULL,
	PRIMARY KEY (address, idx)
) STRICT;
