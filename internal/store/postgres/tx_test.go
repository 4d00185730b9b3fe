package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/parleyim/parley/internal/store"
)

func TestWithRetryStopsAtMaxAttempts(t *testing.T) {
	for _, code := range []string{codeSerializationFailure, codeDeadlockDetected} {
		calls := 0
		err := withRetry(context.Background(), "test", func() error {
			calls++
			return fmt.Errorf("postgres: x: %w", &pgconn.PgError{Code: code})
		})
		if calls != maxAttempts {
			t.Errorf("SQLSTATE %s: %d attempts, want %d", code, calls, maxAttempts)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != code {
			t.Errorf("SQLSTATE %s: error %v does not keep the server's error", code, err)
		}
	}
}

func TestWithRetryOnlyRetriesWhatIsSafe(t *testing.T) {
	for _, err := range []error{
		&pgconn.PgError{Code: codeUniqueViolation},
		errors.New("postgres: commit: connection reset"), // outcome unknown
		context.Canceled,
	} {
		calls := 0
		got := withRetry(context.Background(), "test", func() error { calls++; return err })
		if calls != 1 || !errors.Is(got, err) {
			t.Errorf("%v: %d attempts, error %v; want 1 attempt and the error", err, calls, got)
		}
	}
	calls := 0
	err := withRetry(context.Background(), "test", func() error {
		calls++
		if calls < 3 {
			return &pgconn.PgError{Code: codeDeadlockDetected}
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("succeeding third attempt: %d attempts, %v", calls, err)
	}
}

// safeToRetry is an error pgconn says happened before anything was sent
// (as its "conn closed" on a connection the database dropped).
type safeToRetry struct{}

func (safeToRetry) Error() string     { return "conn closed" }
func (safeToRetry) SafeToRetry() bool { return true }

// TestWithRetryRetriesWhatNeverReachedTheServer: a transaction that
// failed before sending anything (a pooled connection the database closed
// during a restart) runs again, on the next connection.
func TestWithRetryRetriesWhatNeverReachedTheServer(t *testing.T) {
	calls := 0
	err := withRetry(context.Background(), "test", func() error {
		calls++
		if calls == 1 {
			return dbError("begin", safeToRetry{})
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Errorf("%d attempts, %v; want 2 and success", calls, err)
	}
}

// TestUnavailableErrors: what the database says while it restarts is
// store.ErrUnavailable; what a statement did wrong is not.
func TestUnavailableErrors(t *testing.T) {
	for _, err := range []error{
		&pgconn.PgError{Code: codeAdminShutdown},
		&pgconn.PgError{Code: codeCannotConnectNow},
		&pgconn.PgError{Code: "08006"},
		fmt.Errorf("x: %w", pgconn.ErrConnClosed),
		io.ErrUnexpectedEOF,
		&net.OpError{Op: "read", Err: errors.New("connection reset by peer")},
	} {
		if got := dbError("op", err); !errors.Is(got, store.ErrUnavailable) || !errors.Is(got, err) {
			t.Errorf("%v: %v does not match store.ErrUnavailable and the cause", err, got)
		}
	}
	for _, err := range []error{
		&pgconn.PgError{Code: codeUniqueViolation},
		&pgconn.PgError{Code: codeSerializationFailure},
		context.Canceled,
		context.DeadlineExceeded,
		errors.New("something else"),
	} {
		if got := dbError("op", err); errors.Is(got, store.ErrUnavailable) {
			t.Errorf("%v: classified unavailable", err)
		}
	}
}

func TestWithRetryHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := withRetry(ctx, "test", func() error {
		calls++
		cancel()
		return &pgconn.PgError{Code: codeSerializationFailure}
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("cancelled during backoff: %d attempts, %v; want 1, context.Canceled", calls, err)
	}
}

func TestBackoffIsBoundedAndJittered(t *testing.T) {
	seen := map[time.Duration]bool{}
	for attempt := 2; attempt <= 40; attempt++ {
		for range 20 {
			d := backoff(attempt)
			if d <= 0 || d > retryMax {
				t.Fatalf("backoff(%d) = %v, want in (0, %v]", attempt, d, retryMax)
			}
			seen[d] = true
		}
	}
	if len(seen) < 100 {
		t.Errorf("backoff drew only %d distinct waits: no jitter", len(seen))
	}
}
