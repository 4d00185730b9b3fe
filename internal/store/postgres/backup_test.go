package postgres_test

import (
	"context"
	"testing"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
	"github.com/parleyim/parley/internal/store/storetest"
)

var _ store.Backups = (*postgres.Store)(nil)

func TestBackupConformance(t *testing.T) {
	pgtest.ServerDSN(t)
	storetest.RunBackups(t, func(t *testing.T) func() store.Store {
		dsn := pgtest.NewDatabase(t)
		return func() store.Store {
			s, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}
