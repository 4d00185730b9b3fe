-- 0005: each device's last Seq (docs/server.md §3.3), the PostgreSQL twin
-- of last_seq in internal/store/sqlite/migrations/0005_queue_lengths.sql.
--
-- last_seq is the Seq of the last envelope ever stored for the device,
-- which Enqueue reports as the next envelope's Prev (store.Envelope). Like
-- queue_len it changes only under the device row's lock, in the batch that
-- inserts the envelopes (batch.go); acks and expiry leave it, since Prev
-- promises that no Seq lies between it and the new one, not that the
-- envelope is still queued. The upgrade starts it at the largest Seq still
-- queued for the device: envelopes acknowledged before it are not known
-- any more, and the sequence hands out no Seq below that.
ALTER TABLE devices ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0);
UPDATE devices AS d SET last_seq = e.last_seq
	FROM (SELECT device, max(seq) AS last_seq FROM envelopes GROUP BY device) AS e
	WHERE d.id = e.device;

-- Nodes are upgraded one at a time (docs/operations.md §5), so nodes of a
-- release before this migration may still be storing envelopes after it:
-- they raise queue_len but know nothing of last_seq, and a Prev computed
-- from a last_seq they left behind would skip their envelopes. This
-- trigger catches exactly their writes: an update that grows queue_len
-- without moving last_seq, which this release's batch never makes (it
-- grows queue_len only by storing envelopes, and then last_seq grows too).
-- It then sets last_seq to the device's largest queued Seq, the one the
-- old node's batch has just inserted under the row's lock. The WHEN
-- condition is checked without calling the function, so this release's
-- writes pay nothing for it. A later migration drops it, once no release
-- before this one can be running.
CREATE FUNCTION devices_last_seq_of_old_nodes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.last_seq := greatest(NEW.last_seq,
		coalesce((SELECT max(seq) FROM envelopes WHERE device = NEW.id), 0));
	RETURN NEW;
END;
$$;
CREATE TRIGGER devices_last_seq_of_old_nodes BEFORE UPDATE OF queue_len ON devices
	FOR EACH ROW WHEN (NEW.queue_len > OLD.queue_len AND NEW.last_seq = OLD.last_seq)
	EXECUTE FUNCTION devices_last_seq_of_old_nodes();
