-- 0004: key transparency (docs/transparency.md, "Server"), the PostgreSQL
-- twin of internal/store/sqlite/migrations/0004_transparency.sql.
--
-- kt_pending is the queue of device lists not yet sequenced: CreateAccount
-- and UpdateDeviceList append to it in their own transaction, an epoch's
-- transaction deletes what it consumed. seq comes from a sequence, so
-- sequence numbers may commit out of order across accounts; the sequencer
-- therefore reads the whole queue in seq order each time rather than
-- "after" a cursor. For one account they commit in order (the account row
-- is locked by each update). No foreign key to accounts: a published list
-- stays in the log even if its account is deleted before the next epoch.
CREATE TABLE kt_pending (
	seq      BIGSERIAL PRIMARY KEY,
	username TEXT NOT NULL,
	version  BIGINT NOT NULL CHECK (version BETWEEN 0 AND 16777215),
	value    BYTEA NOT NULL,
	UNIQUE (username, version)
);

CREATE TABLE kt_epochs (
	epoch      BIGINT PRIMARY KEY CHECK (epoch >= 0),
	encoded    BYTEA NOT NULL,
	entry      BYTEA NOT NULL,
	checkpoint BYTEA NOT NULL
);

CREATE TABLE kt_values (
	username TEXT NOT NULL,
	version  BIGINT NOT NULL CHECK (version BETWEEN 0 AND 16777215),
	epoch    BIGINT NOT NULL REFERENCES kt_epochs (epoch),
	opening  BYTEA NOT NULL CHECK (octet_length(opening) = 16),
	value    BYTEA NOT NULL,
	PRIMARY KEY (username, version)
);

CREATE TABLE kt_cosignatures (
	size    BIGINT NOT NULL CHECK (size >= 1),
	witness TEXT NOT NULL,
	line    BYTEA NOT NULL,
	PRIMARY KEY (size, witness)
);

-- Published log data is immutable.
CREATE FUNCTION kt_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER kt_epochs_immutable BEFORE UPDATE OR DELETE ON kt_epochs
	FOR EACH ROW EXECUTE FUNCTION kt_immutable();
CREATE TRIGGER kt_values_immutable BEFORE UPDATE OR DELETE ON kt_values
	FOR EACH ROW EXECUTE FUNCTION kt_immutable();
CREATE TRIGGER kt_cosignatures_immutable BEFORE UPDATE ON kt_cosignatures
	FOR EACH ROW EXECUTE FUNCTION kt_immutable();

-- Device lists published before this migration enter the log too, each
-- account's versions in order.
INSERT INTO kt_pending (username, version, value)
	SELECT username, version - 1, signed FROM device_lists ORDER BY username, version;
