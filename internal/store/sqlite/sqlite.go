// Package sqlite implements internal/store on an embedded SQLite database
// (modernc.org/sqlite, pure Go), the default engine of parleyd
// (docs/server.md §3).
//
// One connection writes and a pool of connections reads; the database runs
// in WAL mode so readers never block the writer or each other. Every write
// goes through a single writer goroutine that commits whatever is waiting
// in one transaction (group commit, see writer.go): SQLite allows one
// writer at a time anyway, and one fsync for many sends is what makes the
// queue fast.
//
// Lock order: Store.mu (read-locked by every method for its whole duration,
// write-locked only by Close) is taken before anything else; the writer
// goroutine takes no lock.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parleyim/parley/internal/store"
)

// Implementation limits and defaults.
const (
	// DefaultReaders is the default size of the reader pool. Reads in WAL
	// mode run in parallel; more connections than cores buy nothing.
	DefaultReaders = 8
	// DefaultMaxBatch is the default number of writes (an Enqueue is one)
	// the writer commits in one transaction. Large enough that one fsync
	// serves every sender of a busy server, small enough that one batch
	// holds the write lock for milliseconds, not seconds.
	DefaultMaxBatch = 256
	// DefaultLinger is how long the writer waits for more writes to join
	// a batch when the previous batch showed writers in parallel (see
	// writer.go). A commit's fsync costs the same for one write as for
	// two hundred, and on a busy server a batch would otherwise hold what
	// queued during the last fsync: a handful.
	DefaultLinger = 1 * time.Millisecond
	// busyTimeout bounds how long a connection waits for a lock held by
	// another connection (only checkpoints and other processes contend:
	// this process has a single writer).
	busyTimeout = 5 * time.Second
	// expireChunk is how many envelopes one Expire transaction deletes at
	// most, so a large purge does not hold up sends behind it.
	expireChunk = 1000
)

var (
	// ErrSchemaTooNew reports a database written by a newer version of
	// parleyd, which this version must not touch.
	ErrSchemaTooNew = errors.New("sqlite: database schema is newer than this program supports")
	// ErrCorrupt reports a file that is not a SQLite database or a
	// database SQLite found corrupt.
	ErrCorrupt = errors.New("sqlite: file is not a database or is corrupt")
)

// Option configures Open.
type Option func(*config)

type config struct {
	readers  int
	maxBatch int
	linger   time.Duration
}

// WithReaders sets the size of the reader pool (at least 1).
func WithReaders(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.readers = n
		}
	}
}

// WithMaxBatch sets how many writes one transaction commits at most (at
// least 1; 1 disables group commit).
func WithMaxBatch(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.maxBatch = n
		}
	}
}

// WithLinger sets how long the writer waits for more writes to join a
// batch when the previous one held several (0: never; it then commits
// whatever is queued at once).
func WithLinger(d time.Duration) Option {
	return func(c *config) {
		if d >= 0 {
			c.linger = d
		}
	}
}

// Store is a store.Store on a SQLite database file.
type Store struct {
	path string

	// mu guards closed. Every method holds it read-locked while it runs,
	// so Close, which write-locks it, waits for in-flight calls.
	mu     sync.RWMutex
	closed bool

	wdb *sql.DB // one connection, owned by the writer
	rdb *sql.DB // read-only pool
	rst rstmts  // prepared statements on rdb
	w   *writer

	seqHeld atomic.Bool // the key-transparency sequencer role (transparency.go)
}

var _ store.Store = (*Store)(nil)

// Open opens the database at path, creating it if needed, and brings its
// schema up to date.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{readers: DefaultReaders, maxBatch: DefaultMaxBatch, linger: DefaultLinger}
	for _, o := range opts {
		o(&cfg)
	}
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	// A directory or an unreadable path gives SQLite's generic "unable to
	// open" otherwise; say what is wrong.
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("sqlite: %s is a directory", path)
	}

	s := &Store{path: path}
	wdb, err := sql.Open("sqlite", dsn(path, "mode=rwc"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s.wdb = wdb

	ctx := context.Background()
	conn, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		return nil, openError(path, err)
	}
	if err := configureWriter(ctx, conn); err != nil {
		conn.Close()
		wdb.Close()
		return nil, openError(path, err)
	}
	if err := migrate(ctx, conn); err != nil {
		conn.Close()
		wdb.Close()
		return nil, openError(path, err)
	}

	// query_only makes a reader refuse writes: every write must go through
	// the writer goroutine, or group commit and the single-writer
	// reasoning of this package would not hold.
	rdb, err := sql.Open("sqlite", dsn(path, "mode=rw", "_pragma=query_only(1)"))
	if err != nil {
		conn.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(cfg.readers)
	rdb.SetMaxIdleConns(cfg.readers)
	rdb.SetConnMaxLifetime(0)
	rdb.SetConnMaxIdleTime(0)
	s.rdb = rdb
	if err := s.rst.prepare(rdb); err != nil {
		conn.Close()
		wdb.Close()
		rdb.Close()
		return nil, openError(path, err)
	}

	w, err := newWriter(conn, cfg.maxBatch, cfg.linger)
	if err != nil {
		s.rst.close()
		conn.Close()
		wdb.Close()
		rdb.Close()
		return nil, openError(path, err)
	}
	s.w = w
	go w.run()
	return s, nil
}

// dsn builds a URI filename for modernc.org/sqlite. The path is escaped so
// that a '?' or '#' in it cannot be read as the start of the parameters.
func dsn(path string, params ...string) string {
	u := url.URL{Path: path}
	q := fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeout.Milliseconds())
	for _, p := range params {
		q += "&" + p
	}
	return "file:" + u.EscapedPath() + "?" + q
}

// configureWriter sets the writer connection's pragmas.
func configureWriter(ctx context.Context, conn *sql.Conn) error {
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("sqlite: cannot enable WAL mode (journal mode is %q)", mode)
	}
	for _, p := range []string{
		// FULL, not NORMAL: in WAL mode NORMAL skips the fsync of the WAL
		// at commit, so a power loss can undo commits that Enqueue already
		// reported durable — exactly the "nothing acknowledged is lost"
		// promise (DESIGN §2). Group commit pays for one fsync per batch,
		// not per send. Acks and other non-durable writes switch to NORMAL
		// for their own transactions (writer.setSync).
		"PRAGMA synchronous = FULL",
		"PRAGMA foreign_keys = ON",
		// The writer's cache holds the hot index pages of the queue.
		"PRAGMA cache_size = -16384",
		// Each write of a group commit runs under a savepoint (writer.go),
		// whose statement journal SQLite would otherwise keep in a
		// temporary file: a write system call per page changed.
		"PRAGMA temp_store = MEMORY",
	} {
		if _, err := conn.ExecContext(ctx, p); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	var fk int
	if err := conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return err
	}
	if fk != 1 {
		return errors.New("sqlite: foreign keys cannot be enabled")
	}
	return nil
}

// openError names the file in an error from opening or migrating the
// database, and turns SQLite's "not a database" and "corrupt" into
// ErrCorrupt.
func openError(path string, err error) error {
	switch {
	case isCorrupt(err):
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	case strings.HasPrefix(err.Error(), "sqlite: "):
		// Already ours (ErrSchemaTooNew and the like): do not stutter.
		return fmt.Errorf("%w (opening %s)", err, path)
	default:
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
}

func isCorrupt(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // primary code of an extended result code
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return true
	}
	return false
}

// isConstraint reports a primary-key violation.
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// Close waits for in-flight calls, commits what the writer holds and
// closes the database. Closing twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.w.stop()
	s.rst.close()
	return errors.Join(s.w.close(), s.rdb.Close(), s.wdb.Close())
}

// read runs fn while holding the store open.
func (s *Store) read(fn func() error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return fn()
}

// write hands fn to the writer goroutine and waits until the transaction
// containing it has committed (or fn failed). durable says whether that
// commit must reach the disk before the caller is told (synchronous=FULL).
//
// If ctx ends while the write waits, write returns ctx's error and the
// write may or may not be committed later, like any call whose answer is
// lost; the writer skips writes whose context has ended before it starts
// them.
func (s *Store) write(ctx context.Context, durable bool, fn func(*wtx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	o := &op{ctx: ctx, durable: durable, run: fn, done: make(chan error, 1)}
	select {
	case s.w.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Times are stored as Unix microseconds (see migrations/0001_init.sql).
func fromTime(t time.Time) int64 { return t.UnixMicro() }
func toTime(us int64) time.Time  { return time.UnixMicro(us).UTC() }

// blob returns b, or an empty non-nil slice: a nil []byte binds as NULL,
// which the NOT NULL columns refuse.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// dbError wraps a database error with the operation that failed; a
// corrupt database is also ErrCorrupt.
func dbError(what string, err error) error {
	if err == nil {
		return nil
	}
	if isCorrupt(err) {
		return fmt.Errorf("sqlite: %s: %w: %w", what, ErrCorrupt, err)
	}
	return fmt.Errorf("sqlite: %s: %w", what, err)
}
