-- 0003: encrypted backups (docs/server.md §5.7, docs/backup.md), the
-- PostgreSQL twin of internal/store/sqlite/migrations/0003_backups.sql.
--
-- A row of backups is one upload: pending while generation is NULL, a
-- committed generation of its locator after CommitBackup. write_hash is
-- the hash of the write token every generation under a locator carries.
-- Writes to an upload's chunks hold its row locked; a commit locks every
-- row of its locator (in upload order) so that generation numbers and
-- pruning are decided by one writer at a time.

CREATE TABLE backups (
	upload     BYTEA PRIMARY KEY CHECK (octet_length(upload) = 16),
	locator    BYTEA NOT NULL CHECK (octet_length(locator) = 32),
	write_hash BYTEA NOT NULL CHECK (octet_length(write_hash) = 32),
	generation BIGINT CHECK (generation >= 1),
	chunks     BIGINT NOT NULL DEFAULT 0 CHECK (chunks BETWEEN 0 AND 4294967295),
	bytes      BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),
	created    BIGINT NOT NULL,
	expires    BIGINT NOT NULL
);
CREATE UNIQUE INDEX backups_by_generation ON backups (locator, generation);
CREATE INDEX backups_by_locator ON backups (locator);
CREATE INDEX backups_pending_by_expiry ON backups (expires) WHERE generation IS NULL;

CREATE TABLE backup_chunks (
	upload BYTEA NOT NULL REFERENCES backups (upload) ON DELETE CASCADE,
	idx    BIGINT NOT NULL CHECK (idx BETWEEN 0 AND 4294967294),
	chunk  BYTEA NOT NULL,
	PRIMARY KEY (upload, idx)
);
ALTER TABLE backup_chunks ALTER COLUMN chunk SET STORAGE EXTERNAL;
