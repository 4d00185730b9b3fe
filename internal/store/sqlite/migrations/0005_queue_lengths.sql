-- 0005: queue lengths and last Seqs in a narrow table of their own
-- (docs/server.md §3).
--
-- 0001 kept each device's queue length in its devices row, beside the
-- device's public key of about 2 KB: every enqueue and every ack rewrote
-- that row, so a group commit that reached k devices wrote k pages of
-- device rows to the WAL. A queue_lengths row is about 40 bytes, so the
-- counters of a hundred devices share a page.
--
-- last_seq is the Seq of the last envelope ever stored for the device,
-- which Enqueue reports as the next envelope's Prev (store.Envelope). Only
-- inserts move it: acks and expiry delete envelopes but leave it, since
-- Prev promises that no Seq lies between it and the new one, not that the
-- envelope is still queued. A device's Seqs only grow (seq is
-- AUTOINCREMENT), so the last one stored is also the largest. The upgrade
-- starts it at the largest Seq still queued: envelopes acknowledged before
-- it are not known any more, and none will get a Seq below that.
CREATE TABLE queue_lengths (
	device   BLOB PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
	n        INTEGER NOT NULL DEFAULT 0,
	last_seq INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
INSERT INTO queue_lengths (device, n, last_seq)
	SELECT id, queue_len, coalesce((SELECT max(seq) FROM envelopes WHERE device = devices.id), 0)
	FROM devices;

DROP TRIGGER envelopes_count_insert;
DROP TRIGGER envelopes_count_delete;
ALTER TABLE devices DROP COLUMN queue_len;

-- Every device has its counter from the start, so that reading it is also
-- how the writer tells a known device from an unknown one.
CREATE TRIGGER devices_queue_length AFTER INSERT ON devices BEGIN
	INSERT INTO queue_lengths (device) VALUES (NEW.id);
END;
CREATE TRIGGER envelopes_count_insert AFTER INSERT ON envelopes BEGIN
	UPDATE queue_lengths SET n = n + 1, last_seq = NEW.seq WHERE device = NEW.device;
END;
CREATE TRIGGER envelopes_count_delete AFTER DELETE ON envelopes BEGIN
	UPDATE queue_lengths SET n = n - 1 WHERE device = OLD.device;
END;
