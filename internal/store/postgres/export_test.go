package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// CommitStats reports how many group-commit transactions committed and
// how many sends they held, so tests can see group commit at work.
func CommitStats(s *Store) (commits, sends int64) {
	return s.b.commits.Load(), s.b.committedSends.Load()
}

// InTx runs fn in a transaction with the store's retries (tx.go).
func InTx(ctx context.Context, s *Store, fn func(pgx.Tx) error) error {
	return s.inTx(ctx, "test", true, fn)
}
