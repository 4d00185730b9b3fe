package ratchet

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/primitives"
)

var interactionSeed = flag.Uint64("ratchet.seed", 0, "seed for TestRandomizedInteraction (0: random)")

// TestRandomizedInteraction runs many two-party sessions through an
// adversarial network that reorders, drops and duplicates messages, while
// the parties restart from their encodings and, in half of the sessions,
// are rolled back to older snapshots. It checks:
//
//   - every successful decryption yields the plaintext that was sent, and
//     no message decrypts twice in one line of a party's history;
//   - without rollback, every delivered message decrypts, duplicates give
//     ErrDuplicate, and at the end Missing() lists exactly the dropped
//     messages;
//   - with rollback, every failure is one of the package's typed errors;
//   - across the whole run no AEAD key seals twice (observed through the
//     aeadKey hook), which is the per-message salt's job.
func TestRandomizedInteraction(t *testing.T) {
	seed := *interactionSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -ratchet.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x7061726c6579))

	sealed := make(map[[primitives.AEADKeySize]byte]struct{})
	hooks := &testHooks{aeadKey: func(k [primitives.AEADKeySize]byte, seal bool) {
		if !seal {
			return
		}
		if _, dup := sealed[k]; dup {
			t.Fatalf("AEAD key used to seal twice")
		}
		sealed[k] = struct{}{}
	}}
	sessions, steps := 40, 1000
	if testing.Short() {
		sessions = 6
	}
	var st stats
	for i := 0; i < sessions; i++ {
		w := &world{t: t, rng: rng, hooks: hooks, rollback: i%2 == 1, now: t0, stats: &st}
		w.run(steps)
	}
	t.Logf("%d sessions × %d steps: %+v; %d sealed keys, all distinct", sessions, steps, st, len(sealed))
	if st.PQAnswers == 0 || st.Rollbacks == 0 || st.Duplicates == 0 || st.Dropped == 0 {
		t.Fatal("the run did not exercise every behaviour")
	}
}

type stats struct {
	Delivered, Dropped, Duplicates, Restarts, Rollbacks, PQAnswers int
	ErrorsAfterRollback                                            map[string]int
}

type party struct {
	s         *State
	recvd     map[int]bool // messages decrypted in this line of history
	snapshots []snapshot
}

type snapshot struct {
	state []byte
	recvd map[int]bool
}

type sentMessage struct {
	to   int
	pt   []byte
	data []byte
	gap  Gap
	step int
}

type world struct {
	t        *testing.T
	rng      *rand.Rand
	hooks    *testHooks
	rollback bool
	now      time.Time

	p       [2]*party
	msgs    []sentMessage
	pool    []int // in flight, oldest first
	history []int // delivered, for duplicates
	dropped map[int]bool
	step    int
	stats   *stats
}

func (w *world) run(steps int) {
	a, b := newPair(w.t, w.hooks, w.hooks)
	w.p = [2]*party{{s: a, recvd: map[int]bool{}}, {s: b, recvd: map[int]bool{}}}
	w.dropped = map[int]bool{}
	for w.step = 0; w.step < steps; w.step++ {
		if len(w.pool) > 0 && w.step-w.msgs[w.pool[0]].step > 30 {
			w.deliver(0) // bound reordering (see MaxPreviousChains)
			continue
		}
		switch r := w.rng.IntN(100); {
		case r < 32:
			w.send(w.rng.IntN(2))
		case r < 67:
			if len(w.pool) > 0 {
				w.deliver(w.rng.IntN(min(len(w.pool), 8)))
			}
		case r < 71:
			if len(w.pool) > 0 {
				i := w.rng.IntN(len(w.pool))
				w.dropped[w.pool[i]] = true
				w.stats.Dropped++
				w.pool = append(w.pool[:i], w.pool[i+1:]...)
			}
		case r < 79:
			if n := len(w.history); n > 0 {
				w.redeliver(w.history[n-1-w.rng.IntN(min(n, 16))])
				w.stats.Duplicates++
			}
		case r < 84:
			p := w.p[w.rng.IntN(2)]
			p.s = clone(w.t, p.s, w.hooks)
			w.stats.Restarts++
		case r < 89:
			p := w.p[w.rng.IntN(2)]
			p.snapshots = append(p.snapshots, snapshot{p.s.Marshal(), maps.Clone(p.recvd)})
		case r < 92:
			if w.rollback {
				p := w.p[w.rng.IntN(2)]
				if len(p.snapshots) > 0 {
					sn := p.snapshots[w.rng.IntN(len(p.snapshots))]
					s, err := Unmarshal(sn.state)
					if err != nil {
						w.t.Fatal(err)
					}
					s.hooks = w.hooks
					p.s, p.recvd = s, maps.Clone(sn.recvd)
					w.stats.Rollbacks++
				}
			}
		case r < 99:
			w.now = w.now.Add(time.Duration(w.rng.IntN(3600)) * time.Second)
		default:
			w.now = w.now.Add(PQRekeyInterval + time.Hour) // the time-based PQ policy
		}
	}
	if !w.rollback {
		w.finish()
	}
}

func (w *world) send(from int) {
	id := len(w.msgs)
	pt := []byte(fmt.Sprintf("message %d", id))
	pt = append(pt, make([]byte, w.rng.IntN(64))...)
	data, err := w.p[from].s.Encrypt(pt, w.now)
	if errors.Is(err, ErrNoSendingChain) {
		return
	}
	if err != nil {
		w.t.Fatalf("step %d: Encrypt: %v", w.step, err)
	}
	m, err := ParseMessage(data)
	if err != nil {
		w.t.Fatalf("step %d: own message does not parse: %v", w.step, err)
	}
	if m.PQCiphertext != nil && m.N == 0 {
		w.stats.PQAnswers++
	}
	var g Gap
	copy(g.Chain[:], m.RatchetKey[:ChainIDSize])
	g.N = m.N
	w.msgs = append(w.msgs, sentMessage{to: 1 - from, pt: pt, data: data, gap: g, step: w.step})
	w.pool = append(w.pool, id)
}

func (w *world) deliver(i int) {
	id := w.pool[i]
	w.pool = append(w.pool[:i], w.pool[i+1:]...)
	w.history = append(w.history, id)
	w.stats.Delivered++
	w.receive(id, false)
}

func (w *world) redeliver(id int) { w.receive(id, true) }

func (w *world) receive(id int, duplicate bool) {
	m := w.msgs[id]
	p := w.p[m.to]
	pt, err := p.s.Decrypt(m.data, w.now)
	if err == nil {
		if !bytes.Equal(pt, m.pt) {
			w.t.Fatalf("step %d: message %d decrypted to the wrong plaintext", w.step, id)
		}
		if p.recvd[id] {
			w.t.Fatalf("step %d: message %d decrypted twice", w.step, id)
		}
		p.recvd[id] = true
		return
	}
	typed := errors.Is(err, ErrDuplicate) || errors.Is(err, ErrDecrypt) ||
		errors.Is(err, ErrTooFarAhead) || errors.Is(err, ErrPQUnknownKey)
	switch {
	case !typed:
		w.t.Fatalf("step %d: message %d: untyped error %v", w.step, id, err)
	case w.rollback:
		// After a rollback the two parties may no longer agree; typed
		// errors are all that can be asked.
		if w.stats.ErrorsAfterRollback == nil {
			w.stats.ErrorsAfterRollback = map[string]int{}
		}
		w.stats.ErrorsAfterRollback[err.Error()]++
	case duplicate && errors.Is(err, ErrDuplicate) && p.recvd[id]:
	default:
		w.t.Fatalf("step %d: message %d (duplicate=%v, received before=%v): %v", w.step, id, duplicate, p.recvd[id], err)
	}
}

// finish drops what is still in flight, sends one message each way, and
// checks that every dropped message is reported missing.
func (w *world) finish() {
	for _, id := range w.pool {
		w.dropped[id] = true
	}
	w.pool = nil
	for from := 0; from < 2; from++ {
		w.send(from)
		if len(w.pool) > 0 {
			w.deliver(0)
		}
	}
	for to := 0; to < 2; to++ {
		want := map[Gap]bool{}
		for id := range w.dropped {
			if w.msgs[id].to == to {
				want[w.msgs[id].gap] = true
			}
		}
		got := map[Gap]bool{}
		for _, g := range w.p[to].s.Missing() {
			got[g] = true
		}
		if !maps.Equal(want, got) {
			w.t.Fatalf("party %d: Missing() has %d gaps, want the %d dropped messages", to, len(got), len(want))
		}
	}
}
