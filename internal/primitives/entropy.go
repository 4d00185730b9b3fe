package primitives

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// det, when set, replaces crypto/rand. Only the known-answer vector generator
// and tests install it (see UnsafeDeterministicEntropy); TestOnlyVectorGeneratorUsesDeterministicEntropy
// checks that no other production code calls it.
var det atomic.Pointer[drbg]

// drbg is a counter-mode SHA-256 stream: enough to make vectors
// reproducible, never used for real keys.
type drbg struct {
	mu      sync.Mutex
	seed    [32]byte
	counter uint64
	buf     []byte
}

func (d *drbg) read(p []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(p) > 0 {
		if len(d.buf) == 0 {
			var in [40]byte
			copy(in[:], d.seed[:])
			binary.BigEndian.PutUint64(in[32:], d.counter)
			d.counter++
			sum := sha256.Sum256(in[:])
			d.buf = sum[:]
		}
		n := copy(p, d.buf)
		d.buf = d.buf[n:]
		p = p[n:]
	}
}

// UnsafeDeterministicEntropy makes every later call to Random (and so every
// key generation, encapsulation and signature in this package) return bytes
// derived from seed, and returns a function that restores crypto/rand.
//
// It exists only for the known-answer vector generator
// (internal/cmd/vectorgen) and tests; calling it anywhere else destroys every
// security property Parley has.
func UnsafeDeterministicEntropy(seed string) (restore func()) {
	det.Store(&drbg{seed: sha256.Sum256([]byte(seed))})
	return func() { det.Store(nil) }
}

func deterministicMode() bool { return det.Load() != nil }

// Random fills b with random bytes from crypto/rand.
func Random(b []byte) {
	if d := det.Load(); d != nil {
		d.read(b)
		return
	}
	// crypto/rand.Read never returns an error; if the OS cannot supply
	// entropy it crashes the program irrecoverably, which is what we want.
	_, _ = rand.Read(b)
}
