package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/internal/proccpu"
)

// Group commit.
//
// Every write of the store is an op: a function that runs SQL on the one
// writer connection. Callers queue ops on a channel; a single goroutine
// (writer.run) takes the first op and then, without waiting, everything
// else already queued up to the batch limit, and commits them in one
// transaction:
//
//	BEGIN IMMEDIATE
//	  SAVEPOINT op; <op 1>; RELEASE op      (or ROLLBACK TO op on error)
//	  SAVEPOINT op; <op 2>; RELEASE op
//	  ...
//	COMMIT                                   one fsync for the whole batch
//
// then tells each caller its own result. The savepoints make each op
// all-or-nothing on its own: a send to an unknown device or a full queue
// rolls back only that send. A caller hears back only after the COMMIT that
// contains its op, so "Enqueue returned nil" means "on disk".
//
// While one batch commits (the fsync is the slow part) the next one
// accumulates in the channel, so the batch size adapts to the load — one
// op per transaction when idle, more under load. On its own that settles
// at what queues during one commit, a handful of sends on a busy server,
// and the fsync, whose cost does not depend on the batch, dominates the
// writer's work. So when the process is using nearly all its CPU
// (proccpu.Busy) and the previous batch held more than one op (writers run
// in parallel), the writer waits for more before it commits: as long as
// ops keep arriving less than linger/lingerGaps apart, up to linger in
// all, and only while other goroutines are ready to run (proccpu.RunQueue),
// yielding its core to them. Then waiting costs no one CPU, and every fsync
// saved is CPU for the senders: BenchmarkRelay e2e/pairs=64 delivers
// 12-40% more. Once nothing else is runnable, waiting would leave the core
// idle — a sleeping writer woke up to a millisecond late, since an idle Go
// process polls for timers at millisecond resolution —, so it commits
// (+10% e2e/pairs=64 against waiting on a timer). With CPU to spare waiting
// would only add latency (e2e/pairs=8, latency-bound, delivers half as
// much when the writer always waits), so the writer commits at once; a
// server with one writer at a time never waits either.
//
// Writes that need not be durable (acks, last-seen times, expiry) are
// queued the same way; a batch made only of them is committed with
// synchronous=NORMAL, which in WAL mode skips the fsync: it is visible to
// readers at once and survives a crash of the process, but a power loss
// may undo it (a lost ack only causes a redelivery, which clients
// de-duplicate). A batch with any durable op is committed with FULL.

// op is one write.
type op struct {
	ctx     context.Context
	durable bool
	run     func(*wtx) error
	done    chan error // buffered: the writer never blocks on a caller
}

// writer owns the writer connection.
type writer struct {
	conn      *sql.Conn
	ops       chan *op
	finished  chan struct{}
	maxBatch  int
	linger    time.Duration
	busy      proccpu.Busy         // whether the process is using all its CPU
	saturated func(time.Time) bool // busy.Now, unless a test says otherwise
	runq      proccpu.RunQueue     // whether other goroutines wait for a core
	full      bool                 // the connection's current synchronous setting is FULL
	st        wstmts
	errs      []error

	// Counters for tests (export_test.go) and, later, metrics.
	commits, committedOps atomic.Int64
}

// wstmts are the writer's prepared statements for the hot paths.
type wstmts struct {
	begin, commit, rollback        *sql.Stmt
	savepoint, release, rollbackTo *sql.Stmt
	syncFull, syncNormal           *sql.Stmt

	queueLen       *sql.Stmt
	insertEnvelope *sql.Stmt
	ack            *sql.Stmt

	// A device-list update (accounts.go, transparency.go).
	listVersion, deviceIDs, insertList, setListVersion, queueKT *sql.Stmt
}

// wtx is what an op sees: the writer connection inside the batch's
// transaction.
type wtx struct {
	ctx  context.Context // the writer's, not the caller's: see run
	conn *sql.Conn
	st   *wstmts
}

func newWriter(conn *sql.Conn, maxBatch int, linger time.Duration) (*writer, error) {
	w := &writer{
		conn:     conn,
		ops:      make(chan *op, maxBatch),
		finished: make(chan struct{}),
		maxBatch: maxBatch,
		linger:   linger,
		full:     true, // configureWriter set FULL
		errs:     make([]error, maxBatch),
	}
	w.saturated = w.busy.Now
	ctx := context.Background()
	for _, p := range []struct {
		s **sql.Stmt
		q string
	}{
		{&w.st.begin, "BEGIN IMMEDIATE"},
		{&w.st.commit, "COMMIT"},
		{&w.st.rollback, "ROLLBACK"},
		{&w.st.savepoint, "SAVEPOINT op"},
		{&w.st.release, "RELEASE op"},
		{&w.st.rollbackTo, "ROLLBACK TO op"},
		{&w.st.syncFull, "PRAGMA synchronous = FULL"},
		{&w.st.syncNormal, "PRAGMA synchronous = NORMAL"},
		{&w.st.queueLen, "SELECT n, last_seq FROM queue_lengths WHERE device = ?"},
		{&w.st.insertEnvelope, `INSERT INTO envelopes
			(device, message_id, sender_username, sender_device, body, created, expires)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (device, message_id) DO NOTHING`},
		{&w.st.ack, "DELETE FROM envelopes WHERE device = ? AND seq = ?"},
		{&w.st.listVersion, "SELECT list_version FROM accounts WHERE username = ?"},
		{&w.st.deviceIDs, "SELECT id FROM devices WHERE username = ? ORDER BY id"},
		{&w.st.insertList, "INSERT INTO device_lists (username, version, signed) VALUES (?, ?, ?)"},
		{&w.st.setListVersion, "UPDATE accounts SET list_version = ? WHERE username = ?"},
		{&w.st.queueKT, "INSERT INTO kt_pending (username, version, value) VALUES (?, ?, ?)"},
	} {
		s, err := conn.PrepareContext(ctx, p.q)
		if err != nil {
			w.closeStmts()
			return nil, fmt.Errorf("sqlite: prepare %q: %w", p.q, err)
		}
		*p.s = s
	}
	return w, nil
}

// lingerGaps divides linger into the gap after which a waiting batch is
// taken as complete.
const lingerGaps = 5

// run is the writer goroutine. It ends when ops is closed and drained.
func (w *writer) run() {
	defer close(w.finished)
	batch := make([]*op, 0, w.maxBatch)
	last := 0 // ops in the previous batch
	for o := range w.ops {
		batch = w.fill(append(batch[:0], o))
		if w.linger > 0 && last > 1 && w.saturated(time.Now()) {
			batch = w.wait(batch)
		}
		last = len(batch)
		w.commit(batch)
		clear(batch) // drop references to finished ops
	}
}

// fill adds the ops already queued to batch, up to maxBatch.
func (w *writer) fill(batch []*op) []*op {
	for len(batch) < w.maxBatch {
		select {
		case o, ok := <-w.ops:
			if !ok {
				return batch
			}
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// wait adds ops to batch as they arrive, up to maxBatch, while the
// writer's core has other work: it yields the core to runnable goroutines
// (some of them are writers on their way) and commits as soon as none is
// left for it, when no op has arrived for linger/lingerGaps, or when
// linger has passed. A commit that would otherwise leave a core idle goes
// at once: the wait saves fsyncs only because their CPU is needed
// elsewhere.
//
// "None left" is either no runnable goroutine in the process, or yields
// that come straight back, idleYields in a row: the runnable ones are
// queued on another core, which this one would not take from while the
// writer keeps yielding, so it would only spin.
func (w *writer) wait(batch []*op) []*op {
	now := time.Now()
	deadline := now.Add(w.linger)
	gap := w.linger / lingerGaps
	last := now // of the latest arrival
	quick := 0  // yields in a row that nothing else used
	for len(batch) < w.maxBatch {
		select {
		case o, ok := <-w.ops:
			if !ok {
				return batch
			}
			batch = w.fill(append(batch, o))
			last, quick = time.Now(), 0
			continue
		default:
		}
		if now = time.Now(); !now.Before(deadline) || now.Sub(last) >= gap || w.runq.Runnable() == 0 {
			return batch
		}
		runtime.Gosched()
		if time.Since(now) >= idleYield {
			quick = 0
		} else if quick++; quick == idleYields {
			return batch
		}
	}
	return batch
}

// A yield shorter than idleYield ran nothing else on the writer's core;
// idleYields of them in a row end a wait.
const (
	idleYield  = 3 * time.Microsecond
	idleYields = 2
)

// commit runs one batch in one transaction and reports to each caller.
func (w *writer) commit(batch []*op) {
	// The ops run under the writer's own context: a caller giving up must
	// not interrupt a statement of a transaction that holds other callers'
	// writes. A caller that gave up before its op started is skipped.
	ctx := context.Background()
	t := &wtx{ctx: ctx, conn: w.conn, st: &w.st}
	errs := w.errs[:len(batch)]
	clear(errs)

	durable := false
	for _, o := range batch {
		durable = durable || o.durable
	}
	if err := w.setSync(ctx, durable); err != nil {
		w.finish(batch, errs, dbError("set synchronous", err))
		return
	}
	if _, err := w.st.begin.ExecContext(ctx); err != nil {
		w.finish(batch, errs, dbError("begin", err))
		return
	}
	// A batch of one needs no savepoint: the transaction is its savepoint.
	single := len(batch) == 1
	for i, o := range batch {
		if err := o.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if single {
			errs[i] = o.run(t)
			continue
		}
		if _, err := w.st.savepoint.ExecContext(ctx); err != nil {
			w.abort(ctx, batch, errs, dbError("savepoint", err))
			return
		}
		errs[i] = o.run(t)
		if errs[i] != nil {
			if _, err := w.st.rollbackTo.ExecContext(ctx); err != nil {
				// SQLite rolls back the whole transaction on some errors
				// (a full disk, an I/O error); nothing of the batch stands.
				w.abort(ctx, batch, errs, dbError("roll back a failed write", errors.Join(errs[i], err)))
				return
			}
		}
		if _, err := w.st.release.ExecContext(ctx); err != nil {
			w.abort(ctx, batch, errs, dbError("release savepoint", err))
			return
		}
	}
	if single && errs[0] != nil {
		w.abort(ctx, batch, errs, nil)
		return
	}
	if _, err := w.st.commit.ExecContext(ctx); err != nil {
		w.abort(ctx, batch, errs, dbError("commit", err))
		return
	}
	w.commits.Add(1)
	w.committedOps.Add(int64(len(batch)))
	w.finish(batch, errs, nil)
}

// abort rolls the transaction back and reports err to every op that had
// succeeded; an op that failed keeps its own error, which stays true (it
// stored nothing either way).
func (w *writer) abort(ctx context.Context, batch []*op, errs []error, err error) {
	// The rollback fails harmlessly if SQLite already rolled back.
	w.st.rollback.ExecContext(ctx)
	for i := range errs {
		if errs[i] == nil {
			errs[i] = err
		}
	}
	w.finish(batch, errs, nil)
}

// finish reports results: errs[i] to op i, or err to all if err is set.
func (w *writer) finish(batch []*op, errs []error, err error) {
	for i, o := range batch {
		if err != nil {
			o.done <- err
		} else {
			o.done <- errs[i]
		}
	}
}

// setSync switches the connection between synchronous FULL and NORMAL;
// see the comment at the top of this file.
func (w *writer) setSync(ctx context.Context, full bool) error {
	if w.full == full {
		return nil
	}
	s := w.st.syncNormal
	if full {
		s = w.st.syncFull
	}
	if _, err := s.ExecContext(ctx); err != nil {
		return err
	}
	w.full = full
	return nil
}

// stop closes the op channel; the writer drains it and ends. The caller
// (Close) guarantees that no one sends any more.
func (w *writer) stop() {
	close(w.ops)
	<-w.finished
}

// close releases the connection after stop.
func (w *writer) close() error {
	// Leave the file durable: a last NORMAL batch may not be synced yet.
	// A checkpoint writes the WAL into the database and syncs it.
	ctx := context.Background()
	var errs []error
	if _, err := w.st.syncFull.ExecContext(ctx); err != nil {
		errs = append(errs, dbError("set synchronous", err))
	}
	if _, err := w.conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		errs = append(errs, dbError("checkpoint", err))
	}
	w.closeStmts()
	if err := w.conn.Close(); err != nil {
		errs = append(errs, dbError("close writer", err))
	}
	return errors.Join(errs...)
}

func (w *writer) closeStmts() {
	for _, s := range []*sql.Stmt{
		w.st.begin, w.st.commit, w.st.rollback,
		w.st.savepoint, w.st.release, w.st.rollbackTo,
		w.st.syncFull, w.st.syncNormal,
		w.st.queueLen, w.st.insertEnvelope, w.st.ack,
		w.st.listVersion, w.st.deviceIDs, w.st.insertList, w.st.setListVersion, w.st.queueKT,
	} {
		if s != nil {
			s.Close()
		}
	}
}
