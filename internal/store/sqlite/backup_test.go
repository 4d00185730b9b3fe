package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
	"github.com/parleyim/parley/internal/store/storetest"
)

var _ store.Backups = (*sqlite.Store)(nil)

func TestBackupConformance(t *testing.T) {
	storetest.RunBackups(t, func(t *testing.T) func() store.Store {
		path := filepath.Join(t.TempDir(), "parley.db")
		return func() store.Store {
			s, err := sqlite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}
