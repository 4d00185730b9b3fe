package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
	"github.com/parleyim/parley/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() store.Store {
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

// testTime is an invite expiry in the future.
var testTime = time.Now().Add(24 * time.Hour)

func TestTransparencyConformance(t *testing.T) {
	storetest.RunTransparency(t, func(t *testing.T) func() store.Store {
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
