package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
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
