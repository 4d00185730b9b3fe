package postgres_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
)

// TestDeadlockIsRetried makes two transactions lock two rows in opposite
// orders. PostgreSQL aborts one with a deadlock (SQLSTATE 40P01, after
// deadlock_timeout, 1s by default); the store runs it again and both
// succeed, each applied once.
func TestDeadlockIsRetried(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := mustOpen(t, dsn)
	defer s.Close()
	ctx := context.Background()
	c := rawConn(t, dsn)
	if _, err := c.Exec(ctx, "CREATE TABLE contested (id INT PRIMARY KEY, n INT NOT NULL); INSERT INTO contested VALUES (1, 0), (2, 0)"); err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		attempts atomic.Int32
		// Both first attempts hold their first row before either asks
		// for its second.
		holding sync.WaitGroup
		errs    [2]error
	)
	holding.Add(2)
	for i, order := range [][2]int{{1, 2}, {2, 1}} {
		wg.Go(func() {
			first := true
			errs[i] = postgres.InTx(ctx, s, func(tx pgx.Tx) error {
				attempts.Add(1)
				if _, err := tx.Exec(ctx, "UPDATE contested SET n = n + 1 WHERE id = $1", order[0]); err != nil {
					return err
				}
				if first {
					first = false
					holding.Done()
					holding.Wait()
				}
				_, err := tx.Exec(ctx, "UPDATE contested SET n = n + 1 WHERE id = $1", order[1])
				return err
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	if n := attempts.Load(); n < 3 {
		t.Errorf("%d attempts in all, want at least 3 (one deadlock retried)", n)
	}
	var a, b int
	if err := c.QueryRow(ctx, "SELECT (SELECT n FROM contested WHERE id = 1), (SELECT n FROM contested WHERE id = 2)").Scan(&a, &b); err != nil {
		t.Fatal(err)
	}
	if a != 2 || b != 2 {
		t.Errorf("rows = %d, %d; want 2, 2 (each transaction applied once)", a, b)
	}
}
