package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Retries.
//
// PostgreSQL aborts a transaction it cannot order with the others: with a
// serialization failure (SQLSTATE 40001) at REPEATABLE READ and above, or
// with a deadlock (40P01) when two transactions wait on each other's
// locks. Both guarantee that the transaction changed nothing, so running
// it again is safe. This package runs at READ COMMITTED and takes its
// locks in one order (postgres.go), so both are rare — a cascading delete
// of several devices picks its own order — but not impossible, and the
// caller should not see them.
//
// So is a failure that happened before anything reached the server
// (pgconn.SafeToRetry). Nothing else is retried: after any other failure,
// and above all after a failed COMMIT, whether the transaction took effect
// is unknown, and only the caller (whose sends are idempotent) can decide
// to try again.
const (
	// maxAttempts bounds the tries of one transaction.
	maxAttempts = 5
	// retryBase is the first backoff; each further one doubles, up to
	// retryMax. The sleep is drawn uniformly from [0, backoff) ("full
	// jitter"), so transactions that collided once do not collide again
	// in lock step.
	retryBase = 2 * time.Millisecond
	retryMax  = 200 * time.Millisecond
	// rollbackTimeout bounds a rollback run after the caller's context
	// ended: it must still run, or the connection returns to the pool
	// inside a transaction.
	rollbackTimeout = 5 * time.Second
)

// retryable reports whether err is a failure after which the whole
// transaction can run again: the server aborted it, or it failed before
// anything was sent (pgconn.SafeToRetry) — typically on a pooled
// connection that the database closed while it sat idle, during a
// restart; the next attempt gets a fresh one from the pool.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	code, _ := pgCode(err)
	return code == codeSerializationFailure || code == codeDeadlockDetected || pgconn.SafeToRetry(err)
}

// backoff returns how long to wait before attempt (2, 3, ...).
func backoff(attempt int) time.Duration {
	d := retryBase << min(attempt-2, 16)
	d = min(d, retryMax)
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// inTx runs fn in a transaction on a pooled connection and commits it,
// running it again after a serialization failure or a deadlock. fn must
// be safe to run more than once: it must reset whatever it accumulates.
//
// durable false commits with synchronous_commit off: the commit is
// visible to every reader at once and survives a crash of parleyd, but
// PostgreSQL answers before its WAL record reaches the disk, so a crash of
// the database server within a fraction of a second (up to three times
// wal_writer_delay) may undo it. Only writes whose loss costs nothing use
// it: acks (a lost ack causes a redelivery, which clients de-duplicate),
// last-seen times and expiry. Anything committed durably afterwards
// flushes the WAL up to its own record, and so these with it: the WAL is
// one sequence.
func (s *Store) inTx(ctx context.Context, what string, durable bool, fn func(pgx.Tx) error) error {
	return withRetry(ctx, what, func() error { return s.tryTx(ctx, durable, fn) })
}

// withRetry runs attempt, which runs one whole transaction, until it
// succeeds, fails in a way that is not retryable, or has run maxAttempts
// times, sleeping a jittered backoff between attempts.
func withRetry(ctx context.Context, what string, attempt func() error) error {
	for n := 1; ; n++ {
		if n > 1 {
			t := time.NewTimer(backoff(n))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		err := attempt()
		if err == nil || !retryable(err) {
			return err
		}
		if n == maxAttempts {
			return fmt.Errorf("postgres: %s: gave up after %d attempts: %w", what, n, err)
		}
	}
}

func (s *Store) tryTx(ctx context.Context, durable bool, fn func(pgx.Tx) error) (err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbError("begin", err)
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			// An error here means the connection is broken; pgx then
			// closes it rather than return it to the pool.
			_ = tx.Rollback(rctx)
		}
	}()
	if !durable {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return dbError("set synchronous_commit", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError("commit", err)
	}
	return nil
}

// wrapStore prefixes an error that fn returned bare (a store sentinel or
// typed error) with the package and operation, keeping it reachable
// through errors.Is and errors.As; errors that already say "postgres: "
// and context errors pass unchanged.
func wrapStore(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case strings.HasPrefix(err.Error(), "postgres: "):
		return err
	default:
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
}

// closeBatch closes a batch's results after reading them and returns
// readErr, or else the error of a statement that was not read.
func closeBatch(br pgx.BatchResults, readErr error) error {
	if err := br.Close(); readErr == nil && err != nil {
		return dbError("batch", err)
	}
	return readErr
}
