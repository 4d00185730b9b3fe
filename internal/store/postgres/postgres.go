// Package postgres implements internal/store on PostgreSQL (github.com/jackc/pgx/v5
// and its pool), the engine for several parleyd nodes sharing one database
// (docs/server.md §3.3, DESIGN §6).
//
// Every method runs its own short transaction on a pooled connection at
// READ COMMITTED, taking row locks explicitly where two writers could
// meet. Sends are the exception: Enqueue hands its send to a batcher
// goroutine that commits whatever sends are waiting in one transaction
// (group commit, see batch.go), so that one commit, and one WAL flush,
// serves many senders.
//
// Lock order, in the database: an account row before its device rows;
// device rows in ascending id order; a device row before the envelopes
// and prekeys of that device. Every transaction that inserts or deletes
// envelopes holds their device row locked. Deadlocks that the order does
// not rule out (PostgreSQL's cascading deletes choose their own order)
// and serialization failures are retried (tx.go).
//
// Lock order, in the process: Store.mu (read-locked by every method for
// its whole duration, write-locked only by Close) before anything else;
// the batcher goroutines take no lock.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleyim/parley/internal/store"
)

// Implementation limits and defaults.
const (
	// DefaultMaxConns is the pool size when neither WithMaxConns nor the
	// DSN's pool_max_conns sets one. pgxpool's own default (the number of
	// cores, at least 4) is too small for a relay whose calls mostly wait
	// on the network.
	DefaultMaxConns = 16
	// DefaultMaxBatch is the default number of sends one group-commit
	// transaction carries at most. Large enough that one WAL flush serves
	// every sender of a busy node, small enough that one batch holds its
	// device rows locked for milliseconds, not seconds.
	DefaultMaxBatch = 256
	// DefaultBatchers is how many group-commit transactions of one node
	// run at once. One, as in the SQLite engine: a second batcher splits
	// the waiting sends into two smaller transactions, which then mostly
	// wait on each other's device rows (measured with BenchmarkEnqueue:
	// about two thirds of the throughput of one).
	DefaultBatchers = 1
	// batchTimeout bounds one group-commit transaction. It runs under its
	// own context (a caller giving up must not abort the other callers'
	// sends), so without a bound a hung server would hang every sender.
	batchTimeout = 30 * time.Second
	// expireChunk is how many envelopes one Expire transaction deletes at
	// most, so a large purge does not hold device rows locked for long.
	expireChunk = 1000
)

var (
	// ErrSchemaTooNew reports a database written by a newer version of
	// parleyd, which this version must not touch.
	ErrSchemaTooNew = errors.New("postgres: database schema is newer than this program supports")
	// ErrCorrupt reports a database whose contents break the schema's own
	// rules (an id of the wrong length, two schema_version rows).
	ErrCorrupt = errors.New("postgres: database contents are corrupt")
)

// Option configures Open.
type Option func(*config)

type config struct {
	maxConns int32
	maxBatch int
	batchers int
}

// WithMaxConns sets the size of the connection pool (at least 2: a
// batcher and a reader). It overrides the DSN's pool_max_conns.
func WithMaxConns(n int) Option {
	return func(c *config) {
		if n >= 2 && n <= 1<<16 {
			c.maxConns = int32(n)
		}
	}
}

// WithMaxBatch sets how many sends one transaction commits at most (at
// least 1; 1 disables group commit).
func WithMaxBatch(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.maxBatch = n
		}
	}
}

// WithBatchers sets how many group-commit transactions may run at once
// (at least 1).
func WithBatchers(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.batchers = n
		}
	}
}

// Store is a store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool

	// mu guards closed. Every method holds it read-locked while it runs,
	// so Close, which write-locks it, waits for in-flight calls.
	mu     sync.RWMutex
	closed bool

	b *batcher
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a keyword/value string such
// as "host=db.internal dbname=parley user=parleyd" or a postgres:// URL;
// pool_max_conns and the other pgxpool settings are honoured), brings its
// schema up to date and starts the group-commit batchers. ctx bounds the
// connecting and migrating, not the Store's life.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	cfg := config{maxBatch: DefaultMaxBatch, batchers: DefaultBatchers}
	for _, o := range opts {
		o(&cfg)
	}
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("postgres: empty DSN")
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's message repeats the DSN with its password masked
		// (best effort, by pgx); ours does not repeat it at all.
		return nil, fmt.Errorf("postgres: cannot parse the DSN (want \"host=... dbname=...\" or a postgres:// URL): %s", parseProblem(err))
	}
	switch {
	case cfg.maxConns != 0:
		pcfg.MaxConns = cfg.maxConns
	case !strings.Contains(dsn, "pool_max_conns"):
		pcfg.MaxConns = DefaultMaxConns
	}
	// The batchers each need a connection, and so does every reader: a
	// pool smaller than that would let the batchers starve the reads.
	pcfg.MaxConns = max(pcfg.MaxConns, int32(cfg.batchers)+1)

	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	// pgxpool connects lazily; ping now so a wrong host or password is
	// Open's error, not the first send's.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", where(pcfg), err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool}
	s.b = newBatcher(s, cfg.maxBatch, cfg.batchers)
	return s, nil
}

// parseProblem is the part of a DSN parse error after pgconn's quote of
// the (masked) DSN: "cannot parse `...`: invalid port (...)" gives
// "invalid port (...)".
func parseProblem(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		return msg[i+len("`: "):]
	}
	return msg
}

// where names the server and database of a configuration for errors,
// without the password.
func where(c *pgxpool.Config) string {
	return fmt.Sprintf("database %q on %s:%d as %q", c.ConnConfig.Database, c.ConnConfig.Host, c.ConnConfig.Port, c.ConnConfig.User)
}

// Close waits for in-flight calls, commits the sends the batchers hold and
// closes the pool. Closing twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.b.stop()
	s.pool.Close()
	return nil
}

// use runs fn while holding the store open, after checking ctx: pgx does
// not always report an already cancelled context as the context's error.
func (s *Store) use(ctx context.Context, fn func() error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("postgres: %w", store.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fn()
}

// Times are stored as Unix microseconds (see migrations/0001_init.sql).
func fromTime(t time.Time) int64 { return t.UnixMicro() }
func toTime(us int64) time.Time  { return time.UnixMicro(us).UTC() }

// blob returns b, or an empty non-nil slice: pgx sends a nil []byte as
// NULL, which the NOT NULL columns refuse.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// dbError wraps a database error with the operation that failed. Context
// errors stay reachable through errors.Is; a failure to reach the database
// also matches store.ErrUnavailable.
func dbError(what string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("postgres: %s: %w: %w", what, store.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// unavailable reports errors that say the database is out of reach rather
// than that the statement failed: no connection could be made, the server
// is starting up or shutting down, or it cut the connection. Measured
// while restarting the server under load (TestSurvivesDatabaseRestart):
// "connection refused" and SQLSTATE 57P03 while connecting, 57P01, an
// unexpected EOF and "conn closed" on connections that were open.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	code, _ := pgCode(err)
	switch {
	case code == codeAdminShutdown, code == codeCrashShutdown, code == codeCannotConnectNow:
		return true
	case strings.HasPrefix(code, codeClassConnection):
		return true
	case code != "":
		return false
	}
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &ne)
}

// SQLSTATE codes this package acts on
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeAdminShutdown        = "57P01" // the server is shutting down; this session ends
	codeCrashShutdown        = "57P02" // another backend crashed; every session ends
	codeCannotConnectNow     = "57P03" // starting up, shutting down, or recovering
	codeClassConnection      = "08"    // connection exceptions
)

// pgCode returns the SQLSTATE and constraint of a server error, or "".
func pgCode(err error) (code, constraint string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.ConstraintName
	}
	return "", ""
}

// deviceID converts a stored id, refusing one of the wrong length rather
// than truncating it (the schema's CHECK makes this a corrupt database).
func deviceID(b []byte) (store.DeviceID, error) {
	var id store.DeviceID
	if len(b) != len(id) {
		return id, fmt.Errorf("postgres: stored device id has %d bytes, want %d: %w", len(b), len(id), ErrCorrupt)
	}
	copy(id[:], b)
	return id, nil
}
