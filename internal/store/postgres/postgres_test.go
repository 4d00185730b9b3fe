package postgres_test

import (
	"context"
	"testing"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
	"github.com/parleyim/parley/internal/store/storetest"
)

func mustOpen(t testing.TB, dsn string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	pgtest.ServerDSN(t)
	storetest.Run(t, func(t *testing.T) func() store.Store {
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

func TestTransparencyConformance(t *testing.T) {
	pgtest.ServerDSN(t)
	storetest.RunTransparency(t, func(t *testing.T) func() store.Store {
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
