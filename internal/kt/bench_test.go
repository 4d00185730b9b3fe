package kt

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/primitives/vrf"
)

// Benchmarks of the server side, each beside its primitive floor measured
// in the same run (docs/performance.md, docs/transparency.md):
//
//	go test -run '^$' -bench . -benchtime 5x ./internal/kt

// parallel runs fn(i) for i in [0, n) on GOMAXPROCS goroutines, as a
// sequencer spreads an epoch's VRF work over the machine's cores.
func parallel(n int, fn func(i int)) {
	w := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += w {
				fn(i)
			}
		}(g)
	}
	wg.Wait()
}

// BenchmarkUpdates measures sustained key-transparency updates: one op is
// one epoch of batch updates into a tree that already holds accounts
// leaves — for each update a VRF proof and a commitment (NewUpdate), then
// the batch inserted into the prefix tree, the epoch appended to the log
// and the checkpoint signed (Ed25519 + hybrid). impl=floor does only the
// batch's VRF proofs, spread over the cores the same way: the work no
// implementation can skip. The pre-existing accounts are random leaves
// (VRF outputs are indistinguishable from random; proving a million VRFs
// would only slow the set-up).
func BenchmarkUpdates(b *testing.B) {
	const batch = 3000
	for _, accounts := range []int{100_000, 1_000_000} {
		r := rand.New(rand.NewPCG(1, uint64(accounts)))
		base, err := BuildTree(randLeaves(r, accounts))
		if err != nil {
			b.Fatal(err)
		}
		vk := vrf.GenerateKey()
		signer, err := NewCheckpointSigner("parley.example/kt", primitives.GenerateEd25519(), primitives.GenerateSigningKey())
		if err != nil {
			b.Fatal(err)
		}
		value := make([]byte, 4000) // a signed device list of two devices is about 8 KB; the commitment hashes it once
		b.Run(fmt.Sprintf("accounts=%d/impl=kt", accounts), func(b *testing.B) {
			st := &State{tree: base, log: NewLog()}
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				leaves := make([]Leaf, batch)
				parallel(batch, func(i int) {
					l, _, err := NewUpdate(vk, fmt.Sprintf("user-%d-%d", n, i), 0, value)
					if err != nil {
						panic(err)
					}
					leaves[i] = l
				})
				e := Epoch{Number: uint64(n), Timestamp: uint64(time.Now().UnixMilli()), Leaves: leaves}
				if _, err := st.Apply(&e); err != nil {
					b.Fatal(err)
				}
				size := st.log.Size()
				root, _ := st.log.Root(size)
				if _, err := signer.Sign(size, root); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "updates/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(batch*b.N), "ns/update")
		})
		b.Run(fmt.Sprintf("accounts=%d/impl=floor", accounts), func(b *testing.B) {
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				parallel(batch, func(i int) { vk.Prove(VRFInput(fmt.Sprintf("user-%d-%d", n, i), 0)) })
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "updates/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(batch*b.N), "ns/update")
		})
	}
}

// BenchmarkRebuild measures rebuilding a server's prefix tree at start-up
// from its stored insertion lists (BuildTree over every leaf). The floor
// is hashing one leaf and one parent per leaf, the least any tree over
// them must hash (a compressed trie has n−1 parents).
func BenchmarkRebuild(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		leaves := randLeaves(rand.New(rand.NewPCG(2, uint64(n))), n)
		b.Run(fmt.Sprintf("leaves=%d/impl=kt", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := BuildTree(leaves); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("leaves=%d/impl=floor", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				parallel(2, func(g int) {
					var buf [65]byte
					for j := g; j < 2*n; j += 2 {
						buf[1] = byte(j)
						primitives.SHA256(buf[:])
					}
				})
			}
		})
	}
}
