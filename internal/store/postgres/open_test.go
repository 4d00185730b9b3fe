package postgres_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
)

// These tests need no server.

// TestOpenBadDSN: a DSN that does not parse, or names a server nobody
// listens on, gives a clear error from Open — no panic, no hang, and no
// password in the message.
func TestOpenBadDSN(t *testing.T) {
	// A port nothing listens on: listen, note it, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	const secret = "s3cret-pw"
	for _, tc := range []struct {
		name, dsn string
		want      string // in the error
	}{
		{"empty", "", "postgres: empty DSN"},
		{"blank", "   ", "postgres: empty DSN"},
		{"garbage", "this is not a dsn", "postgres: cannot parse the DSN"},
		{"bad port", "host=127.0.0.1 port=notaport password=" + secret, "postgres: cannot parse the DSN"},
		{"bad url", "postgres://parley:" + secret + "@127.0.0.1:99999999/x", "postgres: cannot parse the DSN"},
		{"bad pool setting", "host=127.0.0.1 pool_max_conns=lots password=" + secret, "postgres: cannot parse the DSN"},
		{"nobody listening", "host=127.0.0.1 port=" + itoa(closedPort) + " user=parley password=" + secret + " dbname=parley connect_timeout=5",
			"postgres: connect to database \"parley\" on 127.0.0.1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := postgres.Open(ctx, tc.dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Open's error shows the password: %v", err)
			}
			if ctx.Err() != nil {
				t.Errorf("Open took until the deadline")
			}
		})
	}
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// TestOpenWrongPassword: the server answers but refuses us.
func TestOpenWrongPassword(t *testing.T) {
	dsn := pgtest.ServerDSN(t)
	if strings.HasPrefix(dsn, "postgres") {
		t.Skip("the DSN is a URL; this test appends keyword/value pairs")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn+" password=certainly-wrong")
	if err == nil {
		s.Close()
		t.Skip("the test server accepts any password (trust authentication)")
	}
	if !strings.HasPrefix(err.Error(), "postgres: connect to ") {
		t.Errorf("Open: %v, want a connect error", err)
	}
}

// TestClosedContextOpen: Open with an ended context fails at once.
func TestClosedContextOpen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := postgres.Open(ctx, "host=127.0.0.1 port=1 dbname=x")
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Open: %v, want context.Canceled", err)
	}
}

// TestStoreErrorsWrapSentinels: errors say "postgres: " and still match
// the store's sentinels.
func TestStoreErrorsWrapSentinels(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := mustOpen(t, dsn)
	ctx := context.Background()
	_, err := s.Account(ctx, "nobody")
	if !errors.Is(err, store.ErrNotFound) || !strings.HasPrefix(err.Error(), "postgres: ") {
		t.Errorf("Account(unknown) = %v, want a postgres: error wrapping ErrNotFound", err)
	}
	s.Close()
	_, err = s.Device(ctx, store.DeviceID{1})
	if !errors.Is(err, store.ErrClosed) || !strings.HasPrefix(err.Error(), "postgres: ") {
		t.Errorf("Device after Close = %v, want a postgres: error wrapping ErrClosed", err)
	}
}
