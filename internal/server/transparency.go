package server

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/primitives/vrf"
	"github.com/parleyim/parley/internal/store"
)

// Key transparency (docs/transparency.md, "Server"): the sequencer that
// turns the store's pending updates into epochs, the in-memory state the
// proofs are built from, and the view that is served.
//
// Every node keeps a kt.State rebuilt from the store at start and extended
// with every epoch the store holds. One node at a time is the sequencer
// (store.Transparency.AcquireKTSequencer); it builds, signs and commits
// epochs, then submits each checkpoint to the witnesses and stores their
// cosignatures. The others follow: they apply the epochs the sequencer
// committed. Every node serves the newest epoch whose checkpoint carries
// the witness cosignatures the policy asks for (so it never hands out a
// head its clients would refuse), keeping the tree of each newer epoch
// until its cosignatures arrive.
//
// Lock order: ktLog.mu, then kt.State's own locks. Readers (the RPCs) take
// no lock: they load the published view atomically.

// Secret names of the log's keys in the store: created once, shared by
// every node.
const (
	secretKTVRF     = "kt-vrf-seed-v1"
	secretKTEd25519 = "kt-checkpoint-ed25519-seed-v1"
	secretKTHybrid  = "kt-checkpoint-hybrid-seed-v1"
)

// Limits of the sequencer and of the transparency RPCs.
const (
	// MaxEpochUpdates is how many pending updates one epoch sequences at
	// most; more wait for the next epoch.
	MaxEpochUpdates = 16384
	// MaxEpochsPerCall caps the epochs one GetEpochs answer carries.
	MaxEpochsPerCall = 1000
	// maxUnpublished bounds the epochs kept waiting for cosignatures;
	// older ones are dropped (a newer cosigned epoch supersedes them).
	maxUnpublished = 64
	// maxCosignatureLookups is how many of the newest waiting epochs one
	// publishing round looks up cosignatures for.
	maxCosignatureLookups = 8
	// ktReadBatch is how many epochs a follower reads per store call.
	ktReadBatch = 1000
	// ktPrefetchInterval is how often the sequencer looks for updates
	// queued since it last looked, to compute their leaves before the
	// epoch that sequences them (ktLog.prefetch).
	ktPrefetchInterval = 10 * time.Millisecond
	// ktPrefetchChunk is how many queued updates one prefetch round
	// reads and computes; a step waits for at most one round.
	ktPrefetchChunk = 256
	// maxPrefetched bounds the leaves computed ahead of their epoch.
	maxPrefetched = MaxEpochUpdates
)

// Witness is a witness the sequencer submits checkpoints to: its note
// verifier key (cosignature/v1) and the URL prefix of its tlog-witness
// API (the server POSTs to URL + "/add-checkpoint").
type Witness struct {
	VKey string
	URL  string
}

// prover returns the prover of a view's tree, with the VRF proof cache.
func (l *ktLog) prover(v *ktView) kt.Prover {
	return kt.Prover{VRF: l.vrf, Tree: v.tree, Cache: l.vrfCache}
}

// ktView is one servable epoch: the tree after it, the log size it ends
// and the signed checkpoint with its cosignatures.
type ktView struct {
	state *kt.State // for log proofs; its log may be longer than size
	tree  *kt.Tree
	size  uint64
	note  []byte
	time  time.Time // when the epoch was made (its timestamp)
}

// unpublished is a committed epoch waiting for its cosignatures.
type unpublished struct {
	state *kt.State
	tree  *kt.Tree
	size  uint64
	note  []byte // the log's signatures only
	time  time.Time
}

// ktLog is the server's key-transparency log.
type ktLog struct {
	s      *Server
	st     store.Transparency
	vrf    *vrf.PrivateKey
	signer *kt.CheckpointSigner
	// self verifies the server's own heads with the witness policy
	// clients are told about (GetConfig), before they are served.
	self      *verify.Config
	witnesses []*witnessClient

	// vrfCache holds the VRF proofs searches computed (nil: off).
	vrfCache *kt.VRFCache

	view atomic.Pointer[ktView]

	mu      sync.Mutex // guards the fields below; held by each sequencer step
	state   *kt.State
	waiting []unpublished // ascending size
	lease   store.KTSequencer

	// sequencing is whether this node holds the lease: only then does
	// prefetch compute leaves.
	sequencing atomic.Bool
	// prep holds leaves computed ahead of their epoch (prefetch). Lock
	// order: mu, then prep.mu.
	prep struct {
		sync.Mutex
		ready map[uint64]prepared // by Seq
		after uint64              // the greatest Seq read so far
	}
}

// newKTLog loads (or creates) the log's keys and rebuilds the state from
// the store.
func newKTLog(ctx context.Context, s *Server, st store.Transparency) (*ktLog, error) {
	seed := func(name string, n int) ([]byte, error) {
		return s.store.Secret(ctx, name, func() []byte {
			b := make([]byte, n)
			primitives.Random(b)
			return b
		})
	}
	vs, err := seed(secretKTVRF, vrf.SeedSize)
	if err != nil {
		return nil, err
	}
	es, err := seed(secretKTEd25519, 32)
	if err != nil {
		return nil, err
	}
	hs, err := seed(secretKTHybrid, primitives.SigningSeedSize)
	if err != nil {
		return nil, err
	}
	vk, err := vrf.NewPrivateKey(vs)
	if err != nil {
		return nil, fmt.Errorf("the stored VRF key: %w", err)
	}
	ek, err := primitives.NewEd25519Key(es)
	if err != nil {
		return nil, fmt.Errorf("the stored checkpoint key: %w", err)
	}
	hk, err := primitives.NewSigningKey(hs)
	if err != nil {
		return nil, fmt.Errorf("the stored hybrid checkpoint key: %w", err)
	}
	signer, err := kt.NewCheckpointSigner(s.cfg.KTOrigin, ek, hk)
	if err != nil {
		return nil, fmt.Errorf("KTOrigin: %w", err)
	}
	l := &ktLog{s: s, st: st, vrf: vk, signer: signer}
	if n := s.cfg.KTVRFCacheEntries; n > 0 {
		l.vrfCache = kt.NewVRFCache(vk, n)
		s.metrics.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parleyd_kt_vrf_cache_hits_total", Help: "VRF proofs of searches answered from the cache."},
				func() float64 { h, _ := l.vrfCache.Stats(); return float64(h) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "parleyd_kt_vrf_cache_misses_total", Help: "VRF proofs of searches computed (not in the cache)."},
				func() float64 { _, c := l.vrfCache.Stats(); return float64(c) }))
	}
	var policy verify.WitnessPolicy
	for _, w := range s.cfg.KTWitnesses {
		wc, err := newWitnessClient(w, signer.Origin(), s.cfg.KTWitnessTimeout)
		if err != nil {
			return nil, err
		}
		l.witnesses = append(l.witnesses, wc)
		policy.Witnesses = append(policy.Witnesses, wc.verifier)
	}
	policy.Threshold = s.ktThreshold()
	if l.self, err = verify.NewConfig(signer.Ed25519VerifierKey(), signer.HybridVerifierKey(), vk.Public().Bytes(), policy); err != nil {
		return nil, fmt.Errorf("KTWitnessThreshold: %w", err)
	}
	if err := l.rebuild(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// ktThreshold is the number of witness cosignatures a head needs.
func (s *Server) ktThreshold() int {
	if s.cfg.KTWitnessThreshold < 0 {
		return len(s.cfg.KTWitnesses)
	}
	return s.cfg.KTWitnessThreshold
}

// rebuild replaces the state with one rebuilt from the store and
// publishes the newest epoch if its cosignatures suffice. Caller holds
// l.mu or has not shared l yet.
func (l *ktLog) rebuild(ctx context.Context) error {
	var (
		epochs  []kt.Epoch
		entries []kt.LogEntry
		last    store.KTEpoch
	)
	for {
		es, err := l.st.KTEpochs(ctx, uint64(len(epochs)), ktReadBatch)
		if err != nil {
			return err
		}
		for _, se := range es {
			e, entry, err := decodeEpoch(se, uint64(len(epochs)))
			if err != nil {
				return err
			}
			epochs = append(epochs, *e)
			entries = append(entries, *entry)
			last = se
		}
		if len(es) < ktReadBatch {
			break
		}
	}
	state, err := kt.RebuildState(epochs, entries)
	if err != nil {
		return err
	}
	l.state = state
	l.waiting = nil
	if n := uint64(len(epochs)); n > 0 {
		tree, _ := state.Snapshot()
		l.waiting = []unpublished{{state: state, tree: tree, size: n, note: last.Checkpoint, time: time.UnixMilli(int64(entries[n-1].Timestamp))}}
		l.publishCosigned(ctx)
	}
	l.s.metrics.ktEpochs.Set(float64(len(epochs)))
	return nil
}

// decodeEpoch decodes a stored epoch and checks its number.
func decodeEpoch(se store.KTEpoch, want uint64) (*kt.Epoch, *kt.LogEntry, error) {
	e, err := kt.UnmarshalEpoch(se.Epoch)
	if err != nil {
		return nil, nil, fmt.Errorf("server: stored epoch %d: %w", se.Number, err)
	}
	entry, err := kt.UnmarshalLogEntry(se.Entry)
	if err != nil {
		return nil, nil, fmt.Errorf("server: stored log entry %d: %w", se.Number, err)
	}
	if se.Number != want || e.Number != want || entry.Epoch != want {
		return nil, nil, fmt.Errorf("server: stored epoch %d where %d belongs: %w", se.Number, want, kt.ErrRebuild)
	}
	return e, entry, nil
}

// RunTransparency runs this node's part of the key-transparency log until
// ctx ends: every KTEpochInterval it either sequences an epoch (when it
// holds, or can take, the sequencer role) or applies the epochs another
// node sequenced, and publishes the newest cosigned epoch. cmd/parleyd
// runs it on every node.
func (s *Server) RunTransparency(ctx context.Context) {
	l := s.kt
	defer l.release()
	s.log.Info("key transparency", "origin", l.signer.Origin(), "ed25519_vkey", l.signer.Ed25519VerifierKey(),
		"witnesses", len(l.witnesses), "threshold", l.self.Witnesses.Threshold)
	go l.prefetchLoop(ctx)
	t := time.NewTicker(s.cfg.KTEpochInterval)
	defer t.Stop()
	for {
		if err := l.step(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("key transparency", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// release gives up the sequencer role.
func (l *ktLog) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lease != nil {
		l.dropLease()
	}
}

// dropLease releases the sequencer role and forgets the leaves computed
// ahead. Caller holds l.mu and the lease.
func (l *ktLog) dropLease() {
	l.lease.Release()
	l.lease = nil
	l.sequencing.Store(false)
	l.s.metrics.ktSequencer.Set(0)
	l.prep.Lock()
	l.prep.ready, l.prep.after = nil, 0
	l.prep.Unlock()
}

// step is one round of RunTransparency.
func (l *ktLog) step(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lease == nil {
		q, err := l.st.AcquireKTSequencer(ctx)
		switch {
		case err == nil:
			l.lease = q
			l.sequencing.Store(true)
			l.s.metrics.ktSequencer.Set(1)
			l.s.log.Info("this node is the key-transparency sequencer")
		case !errors.Is(err, store.ErrKTSequencerHeld):
			return err
		}
	}
	if err := l.follow(ctx); err != nil {
		return err
	}
	if n, err := l.st.PendingKTCount(ctx); err == nil {
		l.s.metrics.ktPending.Set(float64(n))
	}
	if l.lease == nil {
		l.publishCosigned(ctx)
		return nil
	}
	// Checkpoints still waiting for cosignatures (a witness was down, or
	// the previous sequencer stopped before it asked) are asked again.
	if len(l.waiting) > 0 {
		l.cosign(ctx, l.waiting[len(l.waiting)-1])
	}
	err := l.sequence(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		// The stored log may have moved on without us (another
		// sequencer), or our state may be ahead of it (a failed commit):
		// either way, start again from the store.
		l.dropLease()
		if rerr := l.rebuild(ctx); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// follow applies the epochs the store holds beyond the state. Caller
// holds l.mu.
func (l *ktLog) follow(ctx context.Context) error {
	for {
		size := l.state.Log().Size()
		es, err := l.st.KTEpochs(ctx, size, ktReadBatch)
		if err != nil {
			return err
		}
		for _, se := range es {
			e, entry, err := decodeEpoch(se, l.state.Log().Size())
			if err != nil {
				return err
			}
			got, err := l.state.Apply(e)
			if err != nil {
				return fmt.Errorf("server: applying stored epoch %d: %w", e.Number, err)
			}
			if got != *entry {
				return fmt.Errorf("server: stored epoch %d does not give its stored log entry: %w", e.Number, kt.ErrRebuild)
			}
			tree, n := l.state.Snapshot()
			l.wait(unpublished{state: l.state, tree: tree, size: n, note: se.Checkpoint, time: time.UnixMilli(int64(entry.Timestamp))})
		}
		l.s.metrics.ktEpochs.Set(float64(l.state.Log().Size()))
		if len(es) < ktReadBatch {
			return nil
		}
	}
}

// wait records a committed epoch as waiting for its cosignatures.
func (l *ktLog) wait(u unpublished) {
	l.waiting = append(l.waiting, u)
	if len(l.waiting) > maxUnpublished {
		l.waiting = slices.Delete(l.waiting, 0, len(l.waiting)-maxUnpublished)
	}
}

// publishCosigned publishes the newest waiting epoch whose stored
// cosignatures meet the witness policy, and drops the older ones. Caller
// holds l.mu.
func (l *ktLog) publishCosigned(ctx context.Context) {
	for i := len(l.waiting) - 1; i >= max(len(l.waiting)-maxCosignatureLookups, 0); i-- {
		u := l.waiting[i]
		note := u.note
		if len(l.witnesses) > 0 {
			cs, err := l.st.KTCosignatures(ctx, u.size)
			if err != nil {
				l.s.log.Warn("reading cosignatures", "size", u.size, "err", err)
				return
			}
			if len(cs) < l.self.Witnesses.Threshold {
				continue
			}
			lines := make([][]byte, len(cs))
			for j := range cs {
				lines[j] = cs[j].Line
			}
			if note, err = kt.AddSignatures(u.note, lines...); err != nil {
				l.s.log.Warn("stored cosignatures do not fit the checkpoint", "size", u.size, "err", err)
				continue
			}
		}
		if _, _, err := l.self.VerifyCheckpoint(note); err != nil {
			continue
		}
		l.publish(&ktView{state: u.state, tree: u.tree, size: u.size, note: note, time: u.time})
		l.waiting = slices.Delete(l.waiting, 0, i+1)
		return
	}
}

func (l *ktLog) publish(v *ktView) {
	if old := l.view.Load(); old != nil && old.size >= v.size {
		return
	}
	l.view.Store(v)
	l.s.metrics.ktPublished.Set(float64(v.size))
}

// sequence makes the next epoch if there are pending updates, if the log
// is empty, or if the newest epoch is KTMaxEpochAge old. Caller holds l.mu
// and the lease.
func (l *ktLog) sequence(ctx context.Context) error {
	start := time.Now()
	size := l.state.Log().Size()
	var lastTS uint64
	if last, err := l.state.Log().Last(); err == nil {
		lastTS = last.Timestamp
	}
	now := l.s.now()
	pending, updates, err := l.pending(ctx)
	if err != nil {
		return err
	}
	if len(pending) == 0 && size > 0 && now.Sub(time.UnixMilli(int64(lastTS))) < l.s.cfg.KTMaxEpochAge {
		return nil
	}
	epoch := kt.Epoch{Number: size, Timestamp: max(uint64(now.UnixMilli()), lastTS)}
	c := store.KTCommit{}
	for _, u := range updates {
		epoch.Leaves = append(epoch.Leaves, u.leaf)
		c.Values = append(c.Values, store.KTValue{Username: u.Username, Version: u.Version, Epoch: size, Opening: u.opening, Value: u.Value})
		c.Consumed = append(c.Consumed, u.Seq)
	}
	encoded, err := epoch.Marshal()
	if err != nil {
		return err
	}
	entry, err := l.state.Apply(&epoch)
	if err != nil {
		return fmt.Errorf("server: sequencing epoch %d: %w", size, err)
	}
	// From here on the state is ahead of the store until the commit
	// succeeds; any failure makes step rebuild it.
	root, err := l.state.Log().Root(size + 1)
	if err != nil {
		return err
	}
	note, err := l.signer.Sign(size+1, root)
	if err != nil {
		return err
	}
	c.Epoch = store.KTEpoch{Number: size, Epoch: encoded, Entry: entry.Marshal(), Checkpoint: note}
	if err := l.lease.CommitKTEpoch(ctx, c); err != nil {
		return fmt.Errorf("server: committing epoch %d: %w", size, err)
	}
	newTree, _ := l.state.Snapshot()
	u := unpublished{state: l.state, tree: newTree, size: size + 1, note: note, time: time.UnixMilli(int64(epoch.Timestamp))}
	l.wait(u)
	l.forgetPrepared(pending)
	l.s.metrics.ktEpochs.Set(float64(size + 1))
	l.s.metrics.ktEpochsMade.Inc()
	l.s.metrics.ktSequenced.Add(float64(len(updates)))
	l.cosign(ctx, u)
	l.s.metrics.ktSequencing.Observe(time.Since(start).Seconds())
	return nil
}

// update is a pending update with its leaf.
type update struct {
	store.KTUpdate
	leaf    kt.Leaf
	opening [kt.OpeningSize]byte
}

// prepared is a leaf computed ahead for a queued update (prefetch),
// without the value: an epoch checks that the leaf commits to the value
// it sequences.
type prepared struct {
	username string
	version  uint32
	leaf     kt.Leaf
	opening  [kt.OpeningSize]byte
}

// fits reports whether r is the leaf of the pending update p: the same
// username and version (so the same index), and a commitment that its
// opening opens to p's value.
func (r *prepared) fits(p *store.KTUpdate) bool {
	return r.username == p.Username && r.version == p.Version &&
		kt.Commit(r.opening, p.Username, p.Version, p.Value) == r.leaf.Commitment
}

// pending reads the pending updates of the next epoch and their leaves.
// Caller holds l.mu.
func (l *ktLog) pending(ctx context.Context) ([]store.KTUpdate, []update, error) {
	// A prefetch round in progress finishes first, so that its leaves
	// are used rather than computed twice.
	l.prep.Lock()
	defer l.prep.Unlock()
	pending, err := l.st.PendingKT(ctx, 0, MaxEpochUpdates)
	if err != nil || len(pending) == 0 {
		return nil, nil, err
	}
	tree, _ := l.state.Snapshot()
	updates, err := l.prepare(tree, pending)
	return pending, updates, err
}

// prepare computes the leaves of pending updates (a VRF proof each,
// spread over the cores), or takes those prefetch computed for the same
// update. An update whose index is already in the tree is left pending
// and reported: the store's invariants rule it out (see
// store.Transparency), so it means a corrupt store, and one bad row must
// not stop the log. Caller holds l.mu and l.prep.
func (l *ktLog) prepare(tree *kt.Tree, pending []store.KTUpdate) ([]update, error) {
	us := make([]update, len(pending))
	errs := make([]error, len(pending))
	var uncomputed []int // indexes of pending whose leaves prefetch did not compute
	for i := range pending {
		us[i].KTUpdate = pending[i]
		if r, ok := l.prep.ready[pending[i].Seq]; ok && r.fits(&pending[i]) {
			us[i].leaf, us[i].opening = r.leaf, r.opening
			continue
		}
		uncomputed = append(uncomputed, i)
	}
	computeLeaves(len(uncomputed), func(j int) {
		i := uncomputed[j]
		us[i].leaf, us[i].opening, errs[i] = kt.NewUpdate(l.vrf, pending[i].Username, pending[i].Version, pending[i].Value)
	})
	out := us[:0]
	seen := make(map[[kt.IndexSize]byte]bool, len(us))
	for i, u := range us {
		if errs[i] == nil {
			if _, dup := tree.Lookup(u.leaf.Index); dup || seen[u.leaf.Index] {
				errs[i] = kt.ErrDuplicateIndex
			}
		}
		if errs[i] != nil {
			l.s.log.Error("a pending transparency update cannot be sequenced; it stays pending",
				"username", u.Username, "version", u.Version, "seq", u.Seq, "err", errs[i])
			l.s.metrics.ktRefused.Inc()
			continue
		}
		seen[u.leaf.Index] = true
		out = append(out, u)
	}
	return out, nil
}

// computeLeaves runs fn(0..n-1) spread over the cores.
func computeLeaves(n int, fn func(i int)) {
	spread(n, min(runtime.GOMAXPROCS(0), max(n/64, 1)), fn)
}

// spread runs fn(0..n-1) on workers goroutines, each taking every
// workers-th index.
func spread(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// forgetPrepared drops the leaves computed ahead up to the greatest Seq
// an epoch read: those it sequenced are in the log, and any other one
// was sequenced already or not yet visible, and is computed again if it
// is ever pending.
func (l *ktLog) forgetPrepared(pending []store.KTUpdate) {
	if len(pending) == 0 {
		return
	}
	l.prep.Lock()
	defer l.prep.Unlock()
	last := pending[len(pending)-1].Seq
	for seq := range l.prep.ready {
		if seq <= last {
			delete(l.prep.ready, seq)
		}
	}
}

// prefetchLoop runs prefetch every ktPrefetchInterval until ctx ends.
func (l *ktLog) prefetchLoop(ctx context.Context) {
	t := time.NewTicker(ktPrefetchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for l.sequencing.Load() {
			n, err := l.prefetch(ctx)
			if err != nil {
				if ctx.Err() == nil {
					l.s.log.Warn("key transparency: reading queued updates ahead", "err", err)
				}
				break
			}
			if n < ktPrefetchChunk {
				break
			}
		}
	}
}

// prefetch computes the leaves of up to ktPrefetchChunk updates queued
// since it last looked, so that the epoch sequencing them only commits
// them: the VRF work runs while the directory writes that queue the
// updates do, instead of after them. Only the sequencer does it. An
// epoch uses a computed leaf only for the update it was computed for (the
// same Seq, username and version, and a commitment that opens to the
// value the epoch stores: prepared.fits), so prefetch never changes what
// is sequenced; it only saves time. It holds no
// values: at most maxPrefetched small entries. It returns how many
// updates it read.
func (l *ktLog) prefetch(ctx context.Context) (int, error) {
	l.prep.Lock()
	defer l.prep.Unlock()
	room := maxPrefetched - len(l.prep.ready)
	if room <= 0 || !l.sequencing.Load() {
		return 0, nil
	}
	pending, err := l.st.PendingKT(ctx, l.prep.after, min(room, ktPrefetchChunk))
	if err != nil || len(pending) == 0 {
		return 0, err
	}
	ps := make([]prepared, len(pending))
	ok := make([]bool, len(pending))
	computeLeaves(len(pending), func(i int) {
		var err error
		ps[i].username, ps[i].version = pending[i].Username, pending[i].Version
		ps[i].leaf, ps[i].opening, err = kt.NewUpdate(l.vrf, pending[i].Username, pending[i].Version, pending[i].Value)
		ok[i] = err == nil // the epoch reports a bad update itself
	})
	if l.prep.ready == nil {
		l.prep.ready = make(map[uint64]prepared, maxPrefetched)
	}
	for i := range ps {
		if ok[i] {
			l.prep.ready[pending[i].Seq] = ps[i]
		}
	}
	l.prep.after = pending[len(pending)-1].Seq
	return len(pending), nil
}

// cosign submits a committed checkpoint to every witness, stores the
// cosignatures that verify, and publishes the epoch if they meet the
// policy. Caller holds l.mu.
func (l *ktLog) cosign(ctx context.Context, u unpublished) {
	if len(l.witnesses) > 0 {
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			got []store.Cosignature
		)
		for _, w := range l.witnesses {
			wg.Go(func() {
				line, err := w.submit(ctx, l.state.Log(), u.size, u.note)
				if err != nil {
					l.s.log.Warn("witness did not cosign", "witness", w.name, "size", u.size, "err", err)
					l.s.metrics.ktWitnessFailures.WithLabelValues(w.name).Inc()
					return
				}
				mu.Lock()
				got = append(got, store.Cosignature{Witness: w.name, Line: line})
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(got) > 0 {
			if err := l.st.AddKTCosignatures(ctx, u.size, got); err != nil {
				l.s.log.Warn("storing cosignatures", "size", u.size, "err", err)
				return
			}
		}
	}
	l.publishCosigned(ctx)
}
