-- 0003: encrypted backups (docs/server.md §5.7, docs/backup.md).
--
-- A row of backups is one upload: pending while generation is NULL, a
-- committed generation of its locator after CommitBackup. The store never
-- learns which account a locator belongs to; write_hash is the hash of
-- the write token that every generation under one locator must carry.
-- Chunks (ciphertext, up to about 1 MiB each) live in their own rowid
-- table, like mailbox frames.

CREATE TABLE backups (
	upload     BLOB PRIMARY KEY,
	locator    BLOB NOT NULL,
	write_hash BLOB NOT NULL,
	generation INTEGER,
	chunks     INTEGER NOT NULL DEFAULT 0,
	bytes      INTEGER NOT NULL DEFAULT 0,
	created    INTEGER NOT NULL,
	expires    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX backups_by_generation ON backups (locator, generation);
CREATE INDEX backups_pending_by_expiry ON backups (expires) WHERE generation IS NULL;

CREATE TABLE backup_chunks (
	upload BLOB NOT NULL REFERENCES backups (upload) ON DELETE CASCADE,
	idx    INTEGER NOT NULL,
	chunk  BLOB NOT NULL,
	PRIMARY KEY (upload, idx)
) STRICT;
