// Package ackbatch acknowledges delivered envelopes in batches.
//
// A device stores what it received first, then hands the envelope's
// sequence number to a Batcher. The Batcher sends one Ack call for up to
// Max numbers, at most Delay after the oldest of them arrived, from a
// goroutine of its own, so that receiving never waits for an ack. A lost
// or late ack costs only a redelivery, which the device recognises by
// message id (docs/server.md §5.3); one ack call per message would cost
// the relay a request per envelope instead (docs/performance.md "Relay").
package ackbatch

import (
	"sync"
	"time"
)

// Defaults for devices that do not choose otherwise.
const (
	// DefaultMax is how many sequence numbers one Ack carries at most.
	// The server accepts up to 1,000 per call.
	DefaultMax = 64
	// DefaultDelay is the longest an envelope waits for its ack once it
	// is stored.
	DefaultDelay = 100 * time.Millisecond
)

// Batcher collects sequence numbers and hands them to send in batches.
// Its methods are safe for concurrent use.
type Batcher struct {
	max   int
	delay time.Duration
	send  func([]uint64)

	mu      sync.Mutex
	pending []uint64
	timer   *time.Timer
	closed  bool

	out     chan batch // FIFO to the sending goroutine
	stopped chan struct{}
}

type batch struct {
	seqs []uint64
	done chan struct{} // closed once this and every earlier batch is sent
}

// New starts a Batcher that calls send with at most max sequence numbers
// at a time, at most delay after the first of them was added. send runs
// on one goroutine, one batch at a time, in the order the batches formed;
// it reports its own errors (a failed ack is not retried: the envelopes
// come again). Close stops the Batcher.
func New(max int, delay time.Duration, send func(seqs []uint64)) *Batcher {
	if max < 1 {
		max = 1
	}
	b := &Batcher{
		max:     max,
		delay:   delay,
		send:    send,
		out:     make(chan batch, 16),
		stopped: make(chan struct{}),
	}
	b.timer = time.AfterFunc(time.Hour, b.expire)
	b.timer.Stop()
	go b.loop()
	return b
}

func (b *Batcher) loop() {
	defer close(b.stopped)
	for it := range b.out {
		if len(it.seqs) > 0 {
			b.send(it.seqs)
		}
		if it.done != nil {
			close(it.done)
		}
	}
}

// Add queues seq for acknowledgement. After Close it does nothing.
func (b *Batcher) Add(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.pending = append(b.pending, seq)
	switch {
	case len(b.pending) >= b.max:
		b.handOff(nil)
	case len(b.pending) == 1:
		b.timer.Reset(b.delay)
	}
}

// Flush sends what is pending and waits until it, and every batch
// before it, has been through send.
func (b *Batcher) Flush() {
	done := make(chan struct{})
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.handOff(done)
	b.mu.Unlock()
	<-done
}

// Close sends what is pending, waits for every batch to go through send,
// and stops the Batcher.
func (b *Batcher) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.stopped
		return
	}
	b.handOff(nil)
	b.closed = true
	close(b.out)
	b.mu.Unlock()
	<-b.stopped
}

// expire runs when the oldest pending number has waited delay. A stale
// run (the batch it was set for already went out) only sends the next
// batch a little early.
func (b *Batcher) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed && len(b.pending) > 0 {
		b.handOff(nil)
	}
}

// handOff moves the pending numbers to the sending goroutine. b.mu must
// be held; the sending goroutine never takes it, so waiting here for room
// in out cannot deadlock.
func (b *Batcher) handOff(done chan struct{}) {
	b.timer.Stop()
	if len(b.pending) == 0 && done == nil {
		return
	}
	b.out <- batch{seqs: b.pending, done: done}
	b.pending = nil
}
