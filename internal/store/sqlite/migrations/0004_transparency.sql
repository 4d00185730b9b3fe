-- 0004: key transparency (docs/transparency.md, "Server").
--
-- kt_pending is the queue of device lists not yet sequenced into an epoch:
-- CreateAccount and UpdateDeviceList append to it in their own
-- transaction, the sequencer deletes what an epoch consumed in the epoch's
-- transaction. It has no foreign key to accounts: a list that was
-- published stays in the log even if its account is deleted before the
-- next epoch. version is the KT version (the device-list version - 1).
CREATE TABLE kt_pending (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	username TEXT NOT NULL,
	version  INTEGER NOT NULL CHECK (version BETWEEN 0 AND 16777215),
	value    BLOB NOT NULL,
	UNIQUE (username, version)
) STRICT;

-- One row per epoch: the kt.Epoch and kt.LogEntry encodings and the log's
-- signed checkpoint of the log of epoch + 1 entries.
CREATE TABLE kt_epochs (
	epoch      INTEGER PRIMARY KEY CHECK (epoch >= 0),
	encoded    BLOB NOT NULL,
	entry      BLOB NOT NULL,
	checkpoint BLOB NOT NULL
) STRICT;

-- Every sequenced version with its commitment opening.
CREATE TABLE kt_values (
	username TEXT NOT NULL,
	version  INTEGER NOT NULL CHECK (version BETWEEN 0 AND 16777215),
	epoch    INTEGER NOT NULL REFERENCES kt_epochs (epoch),
	opening  BLOB NOT NULL CHECK (length(opening) = 16),
	value    BLOB NOT NULL,
	PRIMARY KEY (username, version)
) STRICT;

-- Witness cosignature lines per checkpoint size.
CREATE TABLE kt_cosignatures (
	size    INTEGER NOT NULL CHECK (size >= 1),
	witness TEXT NOT NULL,
	line    BLOB NOT NULL,
	PRIMARY KEY (size, witness)
) STRICT;

-- Published log data is immutable.
CREATE TRIGGER kt_epochs_immutable BEFORE UPDATE ON kt_epochs BEGIN
	SELECT RAISE(ABORT, 'kt_epochs rows are immutable');
END;
CREATE TRIGGER kt_epochs_undeletable BEFORE DELETE ON kt_epochs BEGIN
	SELECT RAISE(ABORT, 'kt_epochs rows are immutable');
END;
CREATE TRIGGER kt_values_immutable BEFORE UPDATE ON kt_values BEGIN
	SELECT RAISE(ABORT, 'kt_values rows are immutable');
END;
CREATE TRIGGER kt_values_undeletable BEFORE DELETE ON kt_values BEGIN
	SELECT RAISE(ABORT, 'kt_values rows are immutable');
END;
CREATE TRIGGER kt_cosignatures_immutable BEFORE UPDATE ON kt_cosignatures BEGIN
	SELECT RAISE(ABORT, 'kt_cosignatures rows are immutable');
END;

-- Device lists published before this migration enter the log too, each
-- account's versions in order.
INSERT INTO kt_pending (username, version, value)
	SELECT username, version - 1, signed FROM device_lists ORDER BY username, version;
