package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
	"github.com/parleyim/parley/internal/store/storetest"
)

// TestSurvivesDatabaseRestart: the database server stops under load and
// comes back — cleanly ("fast": open transactions roll back, clients are
// disconnected) or as in a crash ("immediate": recovery from the WAL at
// the next start). Sends that fail meanwhile fail with an error (the
// caller retries them by message id); the same Store serves again once
// the database is back, without being reopened; every failure matches
// store.ErrUnavailable (the server answers Unavailable, not Internal); and
// every send that was
// acknowledged, before, during or after, is in its queue.
func TestSurvivesDatabaseRestart(t *testing.T) {
	for _, mode := range []string{"fast", "immediate"} {
		t.Run(mode, func(t *testing.T) {
			srv := pgtest.StartServer(t)
			s := mustOpen(t, srv.NewDatabase(t))
			defer s.Close()
			ids := registerDevices(t, s, 16)

			var (
				mu       sync.Mutex
				acked    = map[store.DeviceID][]store.MessageID{}
				failed   atomic.Int64
				after    atomic.Int64 // acknowledged after the restart
				restored atomic.Bool
				stop     = make(chan struct{})
				wg       sync.WaitGroup
			)
			var other atomic.Pointer[error] // a failure that is not ErrUnavailable
			body := make([]byte, 256)
			for g := range 8 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						dev := ids[(g*7+i)%len(ids)]
						e := storetest.BenchEnvelope(dev, body, time.Now())
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						err := s.Enqueue(ctx, store.Send{Envelopes: []store.Envelope{e}, MaxQueue: 1 << 30})
						cancel()
						if err != nil {
							if !errors.Is(err, store.ErrUnavailable) {
								other.Store(&err)
							}
							failed.Add(1)
							time.Sleep(20 * time.Millisecond)
							continue
						}
						mu.Lock()
						acked[dev] = append(acked[dev], e.MessageID)
						mu.Unlock()
						if restored.Load() {
							after.Add(1)
						}
					}
				})
			}
			time.Sleep(500 * time.Millisecond)
			if err := srv.Stop(mode); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			restored.Store(true)
			deadline := time.Now().Add(30 * time.Second)
			for after.Load() < 100 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			close(stop)
			wg.Wait()
			if after.Load() < 100 {
				t.Fatalf("only %d sends acknowledged in 30 s after the database came back", after.Load())
			}
			if failed.Load() == 0 {
				t.Error("no send failed while the database was down: the restart did not happen under load")
			}
			if err := other.Load(); err != nil {
				t.Errorf("a send failed with %v, which does not match store.ErrUnavailable", *err)
			}

			// Every acknowledged send is queued, read through the same Store.
			ctx := context.Background()
			total := 0
			for dev, want := range acked {
				got := map[store.MessageID]bool{}
				for after := uint64(0); ; {
					envs, err := s.Fetch(ctx, dev, after, 1000)
					if err != nil {
						t.Fatal(err)
					}
					if len(envs) == 0 {
						break
					}
					for _, e := range envs {
						got[e.MessageID] = true
					}
					after = envs[len(envs)-1].Seq
				}
				for _, id := range want {
					if !got[id] {
						t.Errorf("device %x: acknowledged message %x is not queued", dev[:4], id[:4])
					}
				}
				total += len(want)
			}
			t.Logf("%s restart: %d sends acknowledged (%d after the restart), %d failed while the database was down",
				mode, total, after.Load(), failed.Load())
		})
	}
}

// registerDevices registers n accounts of one device each.
func registerDevices(t *testing.T, s store.Store, n int) []store.DeviceID {
	t.Helper()
	var ids []store.DeviceID
	for i := range n {
		var id store.DeviceID
		primitives.Random(id[:])
		name := fmt.Sprint("user", i)
		if err := s.CreateAccount(context.Background(), store.NewAccount{
			Account: store.Account{Username: name, AccountKey: []byte("k")},
			List:    store.DeviceList{Username: name, Version: 1, Signed: []byte("l")},
			Devices: []store.Device{{ID: id, Username: name, Public: []byte("p")}},
		}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}
