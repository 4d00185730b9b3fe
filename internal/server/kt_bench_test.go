package server

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/bus/mem"
	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/primitives/vrf"
	"github.com/parleyim/parley/internal/proccpu"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/sqlite"
)

// BenchmarkKTUpdates measures sustained key-transparency updates through
// the server (docs/performance.md, "Key transparency through the server"):
//
//	go test -run '^$' -bench BenchmarkKTUpdates -benchmem -benchtime 5x -count 5 ./internal/server
//
// One op is one epoch of ktBenchBatch updates, each a 4,000-byte value.
//
// impl=library: the library's in-memory path, as internal/kt's
// BenchmarkUpdates runs it — a VRF proof and commitment per update spread
// over the cores, the epoch applied to a kt.State, the checkpoint signed.
//
// impl=server: the same number of device lists published through the
// store (UpdateDeviceList, concurrently, each queuing its KT update in its
// own transaction) and then sequenced by the server's sequencer step on a
// real SQLite file: reading the queue, the same VRF work, the epoch
// committed atomically with its openings and the queue rows deleted,
// the head published. As in RunTransparency, the sequencer's prefetch
// runs meanwhile and computes the leaves of updates as they are queued,
// so most of the VRF work overlaps the directory writes. server/library
// is the ratio of the two rates in the same run; sequencer-updates/s
// counts the sequencer step alone; cpu-µs/update is the process's CPU
// time (user + system) per update, and cpu-server/library its ratio.
func BenchmarkKTUpdates(b *testing.B) {
	var libraryRate, libraryCPU float64
	value := make([]byte, 4000)
	b.Run("impl=library", func(b *testing.B) {
		vk := vrf.GenerateKey()
		signer, err := kt.NewCheckpointSigner("parley.example/kt", primitives.GenerateEd25519(), primitives.GenerateSigningKey())
		if err != nil {
			b.Fatal(err)
		}
		st := kt.NewState()
		b.ReportAllocs()
		b.ResetTimer()
		cpu := proccpu.Used()
		for n := 0; n < b.N; n++ {
			leaves := make([]kt.Leaf, ktBenchBatch)
			parallelFor(ktBenchBatch, func(i int) {
				l, _, err := kt.NewUpdate(vk, fmt.Sprintf("user-%d", i), uint32(n), value)
				if err != nil {
					panic(err)
				}
				leaves[i] = l
			})
			e := kt.Epoch{Number: uint64(n), Timestamp: uint64(time.Now().UnixMilli()), Leaves: leaves}
			if _, err := st.Apply(&e); err != nil {
				b.Fatal(err)
			}
			size := st.Log().Size()
			root, _ := st.Log().Root(size)
			if _, err := signer.Sign(size, root); err != nil {
				b.Fatal(err)
			}
		}
		libraryCPU = float64((proccpu.Used() - cpu).Microseconds()) / float64(ktBenchBatch*b.N)
		libraryRate = float64(ktBenchBatch*b.N) / b.Elapsed().Seconds()
		b.ReportMetric(libraryRate, "updates/s")
		b.ReportMetric(libraryCPU, "cpu-µs/update")
	})
	b.Run("impl=server", func(b *testing.B) {
		ctx := context.Background()
		st, err := sqlite.Open(filepath.Join(b.TempDir(), "parleyd.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		cfg := testConfig()
		srv, err := New(cfg, st, mem.New())
		if err != nil {
			b.Fatal(err)
		}
		defer srv.kt.release()
		devs := make([][]store.Device, ktBenchBatch)
		parallelFor(ktBenchBatch, func(i int) {
			name := fmt.Sprintf("user-%d", i)
			var id store.DeviceID
			primitives.Random(id[:])
			devs[i] = []store.Device{{ID: id, Username: name, Public: []byte("public"), Added: time.Now(), LastSeen: time.Now()}}
			if err := st.CreateAccount(ctx, store.NewAccount{
				Account: store.Account{Username: name, AccountKey: []byte("key"), Created: time.Now(), ListVersion: 1},
				List:    store.DeviceList{Username: name, Version: 1, Signed: value},
				Devices: devs[i],
			}); err != nil {
				panic(err)
			}
		})
		if err := srv.kt.step(ctx); err != nil { // sequences the registrations
			b.Fatal(err)
		}
		// The sequencer computes leaves ahead while updates are queued,
		// as RunTransparency runs it.
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		go srv.kt.prefetchLoop(pctx)
		var stepTime time.Duration
		b.ReportAllocs()
		b.ResetTimer()
		cpu := proccpu.Used()
		for n := 0; n < b.N; n++ {
			spread(ktBenchBatch, 64, func(i int) {
				if _, err := st.UpdateDeviceList(ctx, store.DeviceListUpdate{
					List:    store.DeviceList{Username: fmt.Sprintf("user-%d", i), Version: uint64(n + 2), Signed: value},
					Devices: devs[i],
				}); err != nil {
					panic(err)
				}
			})
			before := srv.kt.state.Log().Size()
			start := time.Now()
			if err := srv.kt.step(ctx); err != nil {
				b.Fatal(err)
			}
			stepTime += time.Since(start)
			if srv.kt.state.Log().Size() != before+1 || srv.kt.view.Load().size != before+1 {
				b.Fatal("the step did not publish one epoch")
			}
		}
		b.StopTimer()
		cpuPer := float64((proccpu.Used() - cpu).Microseconds()) / float64(ktBenchBatch*b.N)
		if n, _ := st.PendingKTCount(ctx); n != 0 {
			b.Fatalf("%d updates left pending", n)
		}
		rate := float64(ktBenchBatch*b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "updates/s")
		b.ReportMetric(float64(ktBenchBatch*b.N)/stepTime.Seconds(), "sequencer-updates/s")
		b.ReportMetric(cpuPer, "cpu-µs/update")
		if libraryRate > 0 {
			b.ReportMetric(rate/libraryRate, "server/library")
			b.ReportMetric(cpuPer/libraryCPU, "cpu-server/library")
		}
	})
}

const ktBenchBatch = 3000

// parallelFor runs fn(0..n-1) spread over the cores.
func parallelFor(n int, fn func(i int)) {
	spread(n, runtime.GOMAXPROCS(0), fn)
}

// BenchmarkKTLookup measures the key-transparency part of GetDeviceList
// with and without the VRF proof cache (docs/performance.md, "Key
// transparency through the server"):
//
//	go test -run '^$' -bench BenchmarkKTLookup -benchmem -count 5 ./internal/server
//
// One op is one GetDeviceList call (handler called directly, no HTTP) on
// a server with ktLookupAccounts accounts in a real SQLite file, for an
// account whose greatest KT version is n: 0 (a list never changed; 2
// lookups, so 2 VRF proofs) or 3 (6 lookups). Calls cycle over the
// accounts. cache=off computes every proof (KTVRFCacheEntries 0);
// cache=on runs with the default cache, warm (every account was looked up
// once before the timer starts): what a server answering repeated
// lookups of the same accounts does. floor=vrf is the n VRF proofs alone,
// measured in the same run; cache-on/off is the ratio of the two
// lookups' times.
func BenchmarkKTLookup(b *testing.B) {
	for _, n := range []int{0, 3} {
		var offTime float64
		for _, impl := range []string{"floor=vrf", "cache=off", "cache=on"} {
			b.Run(fmt.Sprintf("n=%d/%s", n, impl), func(b *testing.B) {
				cfg := testConfig()
				if impl == "cache=off" {
					cfg.KTVRFCacheEntries = 0
				}
				srv, names := ktLookupServer(b, cfg, n)
				if impl == "floor=vrf" {
					lookups := len(kt.BinaryLadder(uint32(n)))
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						for v := range lookups {
							srv.kt.vrf.Prove(kt.VRFInput(names[i%len(names)], uint32(v)))
						}
					}
					return
				}
				d := &directoryService{s: srv}
				call := func(i int) {
					resp, err := d.GetDeviceList(context.Background(), connect.NewRequest(&parleyv1.GetDeviceListRequest{Username: names[i%len(names)]}))
					if err != nil || len(resp.Msg.KtSearch) == 0 {
						b.Fatalf("GetDeviceList: %v", err)
					}
				}
				for i := range names { // warm the cache, if any
					call(i)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					call(i)
				}
				perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				switch impl {
				case "cache=off":
					offTime = perOp
				case "cache=on":
					if offTime > 0 {
						b.ReportMetric(perOp/offTime, "cache-on/off")
					}
				}
			})
		}
	}
}

const ktLookupAccounts = 500

// ktLookupServer returns a server whose log holds ktLookupAccounts
// accounts at KT version n, published, and their usernames.
func ktLookupServer(b *testing.B, cfg Config, n int) (*Server, []string) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "parleyd.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	srv, err := New(cfg, st, mem.New())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.kt.release)
	names := make([]string, ktLookupAccounts)
	value := make([]byte, 1000)
	spread(len(names), 16, func(i int) {
		names[i] = fmt.Sprintf("user-%d", i)
		var id store.DeviceID
		primitives.Random(id[:])
		devs := []store.Device{{ID: id, Username: names[i], Public: []byte("public"), Added: time.Now(), LastSeen: time.Now()}}
		if err := st.CreateAccount(ctx, store.NewAccount{
			Account: store.Account{Username: names[i], AccountKey: []byte("key"), Created: time.Now(), ListVersion: 1},
			List:    store.DeviceList{Username: names[i], Version: 1, Signed: value},
			Devices: devs,
		}); err != nil {
			panic(err)
		}
		for v := 2; v <= n+1; v++ {
			if _, err := st.UpdateDeviceList(ctx, store.DeviceListUpdate{
				List: store.DeviceList{Username: names[i], Version: uint64(v), Signed: value}, Devices: devs,
			}); err != nil {
				panic(err)
			}
		}
	})
	if err := srv.kt.step(ctx); err != nil {
		b.Fatal(err)
	}
	if srv.kt.view.Load() == nil {
		b.Fatal("no published epoch")
	}
	return srv, names
}
