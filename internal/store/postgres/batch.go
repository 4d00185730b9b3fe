package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/store"
)

// Group commit of sends, and how Seq stays in order.
//
// Enqueue queues its send on a channel; a few batcher goroutines each take
// the first waiting send and then, without waiting, every other send
// already queued up to maxBatch, and store them in one transaction:
//
//	BEGIN
//	  SET LOCAL enable_seqscan = off           see storeBatch
//	  SELECT ... FROM devices WHERE id = ANY(all devices of the batch)
//	    ORDER BY id FOR NO KEY UPDATE          lock the device rows, in id order
//	  SELECT ... FROM envelopes JOIN unnest(all (device, message id))
//	                                           which envelopes are queued already
//	  SELECT nextval('envelope_seq') ...       one Seq per envelope of the batch
//	  -- in Go, send by send: unknown device? queue full? duplicate?
//	  --   a failing send is dropped from the plan; the rest get their Seqs
//	  --   and Prevs
//	  INSERT INTO envelopes SELECT FROM unnest(every accepted envelope)
//	  UPDATE devices SET queue_len, last_seq FROM unnest(...)
//	COMMIT                                     one WAL flush for the whole batch
//
// and then tell each caller its own result, only after the COMMIT, so
// "Enqueue returned nil" means "durable". The statements run in two round
// trips whatever the batch size, and a failing send costs no savepoint: it
// is judged in Go against the locked rows and never written. (Savepoints
// would be costly here besides: PostgreSQL tracks only 64 subtransactions
// per backend cheaply, and a batch of 256 sends would overflow that and
// slow every reader's snapshots.)
//
// Seq. The suite requires that a device's envelopes become visible in Seq
// order, so that a reader fetching "after its last Seq" never skips one
// that commits late. A plain sequence breaks that: nextval hands out
// numbers outside any lock, and a transaction holding a smaller number may
// commit after one holding a larger. Here the numbers are taken from the
// sequence only while the batch holds every one of its device rows
// locked. A later transaction sending to the same device waits for that
// lock, and PostgreSQL releases a transaction's locks only after its
// commit is visible; so the later one calls nextval after the earlier one
// did, gets larger numbers, and commits later. The row lock costs nothing
// extra: the batch needs it anyway to keep queue_len exact for the
// MaxQueue check.
//
// Why one sequence rather than a counter in each device row (which the
// same lock would keep in order just as well): Seqs then differ across
// devices, as in the SQLite engine, so an Ack naming another device's Seq
// deletes nothing (the suite checks it); and a Seq is never reused, not
// even after a device is removed and added again. Sequence values are
// never rolled back, so a failed send or a duplicate leaves a gap; gaps
// are harmless, Seq only has to increase.
//
// Prev. Each device row keeps last_seq, the Seq of the last envelope
// stored for it (migrations/0005_last_seq.sql). The batch reads it with
// the lock, and walks its accepted envelopes in the order it hands out
// their Seqs (ascending): each envelope's Prev is the device's last Seq so
// far, which it then replaces. The UPDATE writes the result back with
// queue_len. Under the lock no other transaction stores an envelope for
// the device in between, so the Prevs of a device's envelopes, across
// batches, batchers and nodes, chain its Seqs without a gap. (Nodes of a
// release before last_seq, still running during a rolling upgrade, do
// not write it; a trigger of the migration writes it for them.)
//
// The lock also makes the duplicate check exact: every transaction that
// inserts or deletes a device's envelopes holds the device row, so under
// the lock the queued (device, message id) pairs the batch reads cannot
// change before it commits, on this node or any other.
//
// The batcher never waits to fill a batch: while one batch commits the
// next accumulates in the channel, so the batch size adapts to the load —
// one send per transaction when idle, up to maxBatch under load — without
// adding latency at low load. One batcher per node is the default
// (DefaultBatchers). Batches of several nodes, or of several batchers
// (WithBatchers), that send to one device serialize on its row; they
// cannot deadlock, because each locks its rows in one statement in id
// order.

// sendOp is one Enqueue waiting for its batch.
type sendOp struct {
	ctx  context.Context
	send store.Send
	devs []store.DeviceID // the send's devices, in first-seen order
	// out[i] is the Seq and Prev of send.Envelopes[i], zero if not
	// stored. The batcher writes them here, not into the caller's
	// envelopes, which Enqueue copies them into once told the batch
	// committed: a caller whose context ended may have returned (and
	// reused its slice) while the batcher still runs.
	out  []seqPrev
	done chan error // buffered: a batcher never blocks on a caller
}

// seqPrev is what Enqueue reports for one envelope.
type seqPrev struct{ seq, prev uint64 }

type batcher struct {
	s        *Store
	ops      chan *sendOp
	maxBatch int
	wg       sync.WaitGroup

	// Counters for tests (export_test.go) and, later, metrics.
	commits, committedSends atomic.Int64
}

func newBatcher(s *Store, maxBatch, n int) *batcher {
	b := &batcher{s: s, ops: make(chan *sendOp, maxBatch), maxBatch: maxBatch}
	for range n {
		b.wg.Go(b.run)
	}
	return b
}

// run is one batcher goroutine. It ends when ops is closed and drained.
func (b *batcher) run() {
	batch := make([]*sendOp, 0, b.maxBatch)
	for o := range b.ops {
		batch = append(batch[:0], o)
	fill:
		for len(batch) < b.maxBatch {
			select {
			case o, ok := <-b.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		b.commit(batch)
		clear(batch) // drop references to finished ops
	}
}

// stop closes the op channel and waits for the batchers to drain it. The
// caller (Close) guarantees that no one sends any more.
func (b *batcher) stop() {
	close(b.ops)
	b.wg.Wait()
}

// commit stores one batch and reports to each caller.
func (b *batcher) commit(batch []*sendOp) {
	// A caller that gave up before its batch started is skipped: it was
	// told its context's error, and nothing of its send is stored.
	live := batch[:0:0]
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.done <- err
			continue
		}
		live = append(live, o)
	}
	if len(live) == 0 {
		return
	}
	// The batch runs under its own context: one caller giving up must not
	// interrupt a transaction that holds other callers' sends.
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	var results []error
	err := withRetry(ctx, "enqueue", func() error {
		var err error
		results, err = b.s.storeBatch(ctx, live)
		return err
	})
	if err != nil {
		if !strings.HasPrefix(err.Error(), "postgres: ") {
			err = dbError("enqueue", err) // the batch's own timeout
		}
		for _, o := range live {
			o.done <- err
		}
		return
	}
	b.commits.Add(1)
	b.committedSends.Add(int64(len(live)))
	for i, o := range live {
		o.done <- results[i]
	}
}

// deviceState is a locked device row as the batch sees and changes it.
type deviceState struct {
	queueLen int64
	lastSeq  int64
}

type queuedKey struct {
	dev store.DeviceID
	msg store.MessageID
}

// storeBatch runs one batch in one transaction and returns each send's
// result. Its error is the transaction's: then nothing of the batch is
// stored.
//
// The transaction is written out by hand rather than with pgx.Tx, so that
// BEGIN travels with the first statements and COMMIT with the last: two
// round trips in all instead of four, and the device rows stay locked for
// two fewer.
func (s *Store) storeBatch(ctx context.Context, ops []*sendOp) (results []error, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, dbError("acquire connection", err)
	}
	defer conn.Release()
	defer func() {
		if err != nil {
			// Whatever state the failure left the connection in (inside a
			// failed transaction, or in none), this leaves it in none; if
			// even that fails, the pool discards the connection.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			_, _ = conn.Exec(rctx, "ROLLBACK")
		}
	}()

	// Every device and (device, message id) of the batch.
	var (
		devs       [][]byte
		seen       = map[store.DeviceID]bool{}
		keyDevs    [][]byte
		keyMsgs    [][]byte
		keysListed = map[queuedKey]bool{}
	)
	for _, o := range ops {
		for _, e := range o.send.Envelopes {
			if !seen[e.Device] {
				seen[e.Device] = true
				devs = append(devs, e.Device[:])
			}
			k := queuedKey{e.Device, e.MessageID}
			if !keysListed[k] {
				keysListed[k] = true
				keyDevs = append(keyDevs, k.dev[:])
				keyMsgs = append(keyMsgs, k.msg[:])
			}
		}
	}
	// Sorting is not needed for the lock order (ORDER BY takes care of
	// it) but keeps the statement's parameter stable for the planner.
	slices.SortFunc(devs, bytes.Compare)

	total := 0
	for _, o := range ops {
		total += len(o.send.Envelopes)
	}

	// An earlier attempt of this batch (withRetry) may have planned sends
	// that this one judges otherwise: report only what this one stores.
	for _, o := range ops {
		clear(o.out)
	}

	var q pgx.Batch
	q.Queue("BEGIN")
	// Every statement of the batch is a lookup by key, for which an index
	// is always right. Without this, a plan made while the tables were
	// small (a sequential scan, cheapest then) stays in the connection's
	// plan cache while the queue grows, until autovacuum's next ANALYZE:
	// on a fresh database that made the duplicate check scan the whole
	// queue in one batch of two.
	q.Queue("SET LOCAL enable_seqscan = off")
	q.Queue(`SELECT id, queue_len, last_seq FROM devices WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, devs)
	// This statement runs after the first has taken the locks, with a
	// snapshot of its own (READ COMMITTED), so it sees every envelope
	// committed by whoever held the rows before.
	q.Queue(`SELECT e.device, e.message_id FROM envelopes e
		JOIN unnest($1::bytea[], $2::bytea[]) AS k (device, message_id)
		ON e.device = k.device AND e.message_id = k.message_id`, keyDevs, keyMsgs)
	// Enough Seqs for every envelope, taken under the locks (see the top
	// of this file); duplicates and failed sends leave theirs unused.
	q.Queue(`SELECT array_agg(s ORDER BY s) FROM (SELECT nextval('envelope_seq') AS s FROM generate_series(1, $1)) n`, total)
	br := conn.SendBatch(ctx, &q)
	var seqs []int64
	state := make(map[store.DeviceID]*deviceState, len(devs))
	queued := map[queuedKey]bool{}
	err = func() error {
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return dbError("begin", err)
			}
		}
		rows, err := br.Query()
		if err != nil {
			return dbError("lock devices", err)
		}
		for rows.Next() {
			var (
				id []byte
				st deviceState
			)
			if err := rows.Scan(&id, &st.queueLen, &st.lastSeq); err != nil {
				rows.Close()
				return dbError("lock devices", err)
			}
			d, err := deviceID(id)
			if err != nil {
				rows.Close()
				return err
			}
			state[d] = &st
		}
		if err := rows.Err(); err != nil {
			return dbError("lock devices", err)
		}
		rows, err = br.Query()
		if err != nil {
			return dbError("find queued envelopes", err)
		}
		for rows.Next() {
			var dev, msg []byte
			if err := rows.Scan(&dev, &msg); err != nil {
				rows.Close()
				return dbError("find queued envelopes", err)
			}
			var k queuedKey
			if len(dev) != len(k.dev) || len(msg) != len(k.msg) {
				rows.Close()
				return fmt.Errorf("postgres: stored envelope has malformed ids: %w", ErrCorrupt)
			}
			copy(k.dev[:], dev)
			copy(k.msg[:], msg)
			queued[k] = true
		}
		if err := rows.Err(); err != nil {
			return dbError("find queued envelopes", err)
		}
		if err := br.QueryRow().Scan(&seqs); err != nil {
			return dbError("take seqs", err)
		}
		if len(seqs) != total {
			return fmt.Errorf("postgres: internal error: asked for %d seqs, got %d", total, len(seqs))
		}
		return nil
	}()
	if err := closeBatch(br, err); err != nil {
		return nil, err
	}

	// Judge the sends in order, as if each were its own transaction.
	results = make([]error, len(ops))
	rows := envelopeRows{seqs: seqs}
	for i, o := range ops {
		results[i] = planSend(o, state, queued, &rows)
	}
	q = pgx.Batch{}
	if rows.n == 0 {
		// Nothing new to store (duplicates and failures only): what the
		// batch read is its answer.
		q.Queue("COMMIT")
		return results, dbError("commit", conn.SendBatch(ctx, &q).Close())
	}
	q.Queue(`INSERT INTO envelopes
		(device, seq, message_id, sender_username, sender_device, body, created, expires)
		SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::text[], $5::bytea[], $6::bytea[], $7::bigint[], $8::bigint[])`,
		rows.device, rows.seq, rows.messageID, rows.senderUsername, rows.senderDevice, rows.body, rows.created, rows.expires)
	var (
		ids               [][]byte
		queueLen, lastSeq []int64
	)
	for _, d := range devs {
		st := state[store.DeviceID(d)]
		if st == nil {
			continue // unknown: its sends failed
		}
		ids = append(ids, d)
		queueLen = append(queueLen, st.queueLen)
		lastSeq = append(lastSeq, st.lastSeq)
	}
	// Absolute values: the rows are locked, so the batch's view of them
	// is the truth.
	q.Queue(`UPDATE devices AS d SET queue_len = u.queue_len, last_seq = u.last_seq
		FROM unnest($1::bytea[], $2::bigint[], $3::bigint[]) AS u (id, queue_len, last_seq)
		WHERE d.id = u.id`, ids, queueLen, lastSeq)
	q.Queue("COMMIT")
	if err := conn.SendBatch(ctx, &q).Close(); err != nil {
		return nil, dbError("insert envelopes", err)
	}
	return results, nil
}

// envelopeRows are the columns of the batch's INSERT, and the Seqs it
// takes them from in order.
type envelopeRows struct {
	seqs                                  []int64
	n                                     int
	device, messageID, senderDevice, body [][]byte
	seq, created, expires                 []int64
	senderUsername                        []string
}

// add appends e and returns the Seq it takes.
func (r *envelopeRows) add(e *store.Envelope) int64 {
	seq := r.seqs[r.n]
	r.n++
	r.device = append(r.device, e.Device[:])
	r.seq = append(r.seq, seq)
	r.messageID = append(r.messageID, e.MessageID[:])
	r.senderUsername = append(r.senderUsername, e.SenderUsername)
	r.senderDevice = append(r.senderDevice, e.SenderDevice[:])
	r.body = append(r.body, blob(e.Body))
	r.created = append(r.created, fromTime(e.Created))
	r.expires = append(r.expires, fromTime(e.Expires))
	return seq
}

// planSend judges one send against the locked device rows and what the
// batch has accepted so far. On success it adds the send's new envelopes
// to rows, advances state and queued, and records each new envelope's Seq
// and Prev in o.out; on failure it changes nothing and returns the send's
// error. The checks and their order are the SQLite engine's, so both
// report the same error for the same send.
func planSend(o *sendOp, state map[store.DeviceID]*deviceState, queued map[queuedKey]bool, rows *envelopeRows) error {
	var unknown []store.DeviceID
	for _, d := range o.devs {
		if state[d] == nil {
			unknown = append(unknown, d)
		}
	}
	if unknown != nil {
		return &store.UnknownDeviceError{Devices: unknown}
	}
	// Tentative changes, applied only if the whole send fits.
	type accepted struct {
		i   int // in o.send.Envelopes
		key queuedKey
	}
	var (
		take  []accepted
		added = map[store.DeviceID]int64{}
		mine  = map[queuedKey]bool{}
	)
	for i := range o.send.Envelopes {
		e := &o.send.Envelopes[i]
		k := queuedKey{e.Device, e.MessageID}
		// A duplicate (device, message id), queued already or earlier in
		// this send, stores nothing and does not count against the queue.
		if queued[k] || mine[k] {
			continue
		}
		mine[k] = true
		added[e.Device]++
		if o.send.MaxQueue > 0 && state[e.Device].queueLen+added[e.Device] > int64(o.send.MaxQueue) {
			return &store.QueueFullError{Device: e.Device, Limit: o.send.MaxQueue}
		}
		take = append(take, accepted{i, k})
	}
	// rows hands out the batch's Seqs in ascending order, so walking the
	// accepted envelopes here, send after send, walks each device's new
	// envelopes in Seq order: each one's Prev is the Seq before it.
	for _, a := range take {
		st := state[a.key.dev]
		seq := rows.add(&o.send.Envelopes[a.i])
		o.out[a.i] = seqPrev{seq: uint64(seq), prev: uint64(st.lastSeq)}
		st.lastSeq = seq
		st.queueLen++
		queued[a.key] = true
	}
	return nil
}

// Enqueue implements store.Store: the send is judged and stored as part
// of a group commit (see the top of this file), all or nothing on its own.
// MaxQueue <= 0 means no limit.
//
// If ctx ends while the send waits, Enqueue returns ctx's error and the
// send may or may not be stored, like any call whose answer is lost.
func (s *Store) Enqueue(ctx context.Context, send store.Send) error {
	return s.use(ctx, func() error {
		if len(send.Envelopes) == 0 {
			return nil
		}
		o := &sendOp{ctx: ctx, send: send, out: make([]seqPrev, len(send.Envelopes)), done: make(chan error, 1)}
		for _, e := range send.Envelopes {
			if !slices.Contains(o.devs, e.Device) {
				o.devs = append(o.devs, e.Device)
			}
		}
		select {
		case s.b.ops <- o:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case err := <-o.done:
			if err != nil {
				return wrapStore("enqueue", err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		// The batcher is done with o: the receive above orders its writes
		// to o.out before these reads.
		for i := range send.Envelopes {
			send.Envelopes[i].Seq, send.Envelopes[i].Prev = o.out[i].seq, o.out[i].prev
		}
		return nil
	})
}
