package backup

import (
	"io"
	"sync"
)

const (
	// pieceSize is how much plaintext the read-ahead goroutine reads into
	// one of its buffers before handing it to the parser. Each hand-off
	// costs scheduler work, so pieces are large; measured, 1 MiB did as
	// well as 512 KiB and better than 256 KiB and 2 MiB (whose last piece
	// is parsed with nothing left to overlap it; docs/backup.md §8).
	pieceSize = 1 << 20
	// aheadPieces is how many buffers the read-ahead has: while the parser
	// copies one out, the goroutine reads into the other, so that age
	// does not wait for the parser.
	aheadPieces = 2
)

// readAhead reads the plaintext in a goroutine, ahead of the parser, into
// a few buffers that it reuses: the parser takes a filled buffer (next),
// copies the data out and gives the buffer back (requeue). The goroutine
// runs only while a buffer is queued for it, and ends by itself when none
// is, so a readAhead that is dropped leaks nothing once the read in
// progress has returned.
//
// Why copy: age decrypts into its own buffer and copies the plaintext out
// on every Read, so reading straight into a slab that the parser keeps
// (its bodies alias it) would cost the slab's zeroing on allocation and
// leave the copy into fresh memory to the goroutine running age, the
// slower side. Reading into a reused buffer, then copying it into a slab
// that append allocates without zeroing, costs one copy instead of a
// zeroing and a copy, and the parser makes it.
type readAhead struct {
	src io.Reader
	// out carries the filled buffers, in order. Its capacity is
	// aheadPieces and only aheadPieces buffers exist, so a send never
	// blocks.
	out  chan readResult
	bufs [aheadPieces][]byte // for clearing when done

	mu      sync.Mutex
	queue   [][]byte // empty buffers to read into, in order
	running bool     // a goroutine is reading or about to; it ends when the queue is empty
	stopped bool     // read no more: src ended or failed, or the parser stopped

	pending int // the parser's count of buffers queued or filled, not yet taken
}

// readResult is one buffer filled: n bytes, then err (io.EOF at the end
// of src).
type readResult struct {
	buf []byte
	n   int
	err error
}

// newReadAhead starts reading src.
func newReadAhead(src io.Reader) *readAhead {
	a := &readAhead{src: src, out: make(chan readResult, aheadPieces), queue: make([][]byte, 0, aheadPieces)}
	for i := range a.bufs {
		// (The second buffer is allocated while the first is read.)
		a.bufs[i] = make([]byte, pieceSize)
		a.requeue(a.bufs[i])
	}
	return a
}

// requeue gives buf to the goroutine to read into, starting it if none
// runs.
func (a *readAhead) requeue(buf []byte) {
	a.mu.Lock()
	a.queue = append(a.queue, buf)
	start := !a.running && !a.stopped
	a.running = a.running || start
	a.mu.Unlock()
	a.pending++
	if start {
		go a.run()
	}
}

// next waits for the next buffer filled. The parser calls it only while a
// buffer is pending and no result with an error has been taken.
func (a *readAhead) next() readResult {
	res := <-a.out
	a.pending--
	return res
}

// stop lets the goroutine start no more reads, waits for the read in
// progress and clears the buffers (they held plaintext). After stop, src
// is no longer read. It may be called more than once.
func (a *readAhead) stop() {
	a.mu.Lock()
	a.stopped = true
	a.pending -= len(a.queue) // never read, so never sent
	clear(a.queue)
	a.queue = a.queue[:0]
	a.mu.Unlock()
	for ; a.pending > 0; a.pending-- {
		<-a.out
	}
	for i := range a.bufs {
		clear(a.bufs[i])
		a.bufs[i] = nil
	}
}

func (a *readAhead) run() {
	for {
		a.mu.Lock()
		if a.stopped || len(a.queue) == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		buf := a.queue[0]
		a.queue = a.queue[:copy(a.queue, a.queue[1:])]
		a.mu.Unlock()
		n, err := readFull(a.src, buf)
		if err != nil {
			// Nothing follows an error or the end: a buffer still
			// queued is never read (stop counts it out).
			a.mu.Lock()
			a.stopped = true
			a.mu.Unlock()
		}
		a.out <- readResult{buf: buf, n: n, err: err}
	}
}

// readFull fills p from src, stopping early only at an error or io.EOF.
func readFull(src io.Reader, p []byte) (int, error) {
	n := 0
	var err error
	for n < len(p) && err == nil {
		var m int
		m, err = src.Read(p[n:])
		n += m
	}
	return n, err
}
