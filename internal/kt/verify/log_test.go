package verify

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/primitives/vrf"
)

// testLog is a key-transparency log run the way a server runs one, with
// the real library: kt.State, kt.Prover, kt.CheckpointSigner and witness
// cosigners. Scenario tests make it lie by altering what it returns.
type testLog struct {
	t         testing.TB
	vrf       *vrf.PrivateKey
	signer    *kt.CheckpointSigner
	witnesses []*kt.Cosigner
	state     *kt.State
	values    map[string][]kt.Opened // label → versions
	pending   []kt.Leaf
	epochs    []kt.Epoch
	now       time.Time
	signed    []byte // the newest signed (and cosigned) checkpoint
	cfg       *Config
}

const origin = "parley.example/kt"

func newTestLog(t testing.TB, witnesses, threshold int) *testLog {
	t.Helper()
	signer, err := kt.NewCheckpointSigner(origin, primitives.GenerateEd25519(), primitives.GenerateSigningKey())
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{t: t, vrf: vrf.GenerateKey(), signer: signer, state: kt.NewState(),
		values: map[string][]kt.Opened{}, now: time.UnixMilli(1_800_000_000_000)}
	var w WitnessPolicy
	for i := 0; i < witnesses; i++ {
		c, err := kt.NewCosigner(fmt.Sprintf("witness%d.example", i), primitives.GenerateEd25519(), func() time.Time { return l.now })
		if err != nil {
			t.Fatal(err)
		}
		l.witnesses = append(l.witnesses, c)
		v, err := kt.NewCosignatureVerifier(c.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		w.Witnesses = append(w.Witnesses, v)
	}
	w.Threshold = threshold
	l.cfg, err = NewConfig(signer.Ed25519VerifierKey(), signer.HybridVerifierKey(), l.vrf.Public().Bytes(), w)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// update queues a new version of label with value and returns its number.
func (l *testLog) update(label string, value []byte) uint32 {
	l.t.Helper()
	v := uint32(len(l.values[label]))
	leaf, opening, err := kt.NewUpdate(l.vrf, label, v, value)
	if err != nil {
		l.t.Fatal(err)
	}
	l.values[label] = append(l.values[label], kt.Opened{Opening: opening, Value: value})
	l.pending = append(l.pending, leaf)
	return v
}

// publish sequences the pending updates into an epoch, signs the
// checkpoint and has every witness cosign it.
func (l *testLog) publish() {
	l.t.Helper()
	l.now = l.now.Add(time.Second)
	e := kt.Epoch{Number: l.state.Log().Size(), Timestamp: uint64(l.now.UnixMilli()), Leaves: l.pending}
	if _, err := l.state.Apply(&e); err != nil {
		l.t.Fatal(err)
	}
	l.epochs = append(l.epochs, e)
	l.pending = nil
	size := l.state.Log().Size()
	root, err := l.state.Log().Root(size)
	if err != nil {
		l.t.Fatal(err)
	}
	signed, err := l.signer.Sign(size, root)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, w := range l.witnesses {
		if signed, err = w.Cosign(signed); err != nil {
			l.t.Fatal(err)
		}
	}
	l.signed = signed
}

func (l *testLog) head(from uint64) *kt.Head {
	l.t.Helper()
	_, size := l.state.Snapshot()
	h, err := l.state.Head(size, l.signed, from)
	if err != nil {
		l.t.Fatal(err)
	}
	return h
}

func (l *testLog) prover() kt.Prover {
	tree, _ := l.state.Snapshot()
	return kt.Prover{VRF: l.vrf, Tree: tree}
}

// sequenced is the number of versions of label already in an epoch.
func (l *testLog) sequenced(label string) int {
	n := 0
	for i := range l.values[label] {
		idx, _ := kt.Index(l.vrf, label, uint32(i))
		if _, ok := l.prover().Tree.Lookup(idx); ok {
			n = i + 1
		}
	}
	return n
}

func (l *testLog) search(label string) *kt.SearchProof {
	l.t.Helper()
	n := l.sequenced(label)
	var p *kt.SearchProof
	var err error
	if n == 0 {
		p, err = l.prover().Absent(label)
	} else {
		o := l.values[label][n-1]
		p, err = l.prover().Search(label, uint32(n-1), o.Opening, o.Value)
	}
	if err != nil {
		l.t.Fatal(err)
	}
	return roundTripSearch(l.t, p)
}

func (l *testLog) fixed(label string, v uint32) *kt.SearchProof {
	l.t.Helper()
	o := l.values[label][v]
	p, err := l.prover().Fixed(label, uint32(l.sequenced(label)-1), v, o.Opening, o.Value)
	if err != nil {
		l.t.Fatal(err)
	}
	return roundTripSearch(l.t, p)
}

func (l *testLog) monitor(label string, from uint32) *kt.MonitorProof {
	l.t.Helper()
	n := uint32(l.sequenced(label))
	p, err := l.prover().Monitor(label, n-1, from, l.values[label][from:n])
	if err != nil {
		l.t.Fatal(err)
	}
	b, err := p.Marshal()
	if err != nil {
		l.t.Fatal(err)
	}
	q, err := kt.UnmarshalMonitorProof(b)
	if err != nil {
		l.t.Fatal(err)
	}
	return q
}

func roundTripSearch(t testing.TB, p *kt.SearchProof) *kt.SearchProof {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := kt.UnmarshalSearchProof(b)
	if err != nil {
		t.Fatal(err)
	}
	if b2, _ := q.Marshal(); !bytes.Equal(b, b2) {
		t.Fatal("search proof re-encodes differently")
	}
	return q
}

func roundTripHead(t testing.TB, h *kt.Head) *kt.Head {
	t.Helper()
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := kt.UnmarshalHead(b)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// client is a Parley client's key-transparency state.
type client struct {
	cfg     *Config
	trusted *Trusted
}

func (l *testLog) newClient() *client { return &client{cfg: l.cfg} }

func (c *client) size() uint64 {
	if c.trusted == nil {
		return 0
	}
	return c.trusted.Checkpoint.Size
}

// lookup verifies a search response (head and proof) and, only if all of
// it verifies, keeps the new head.
func (c *client) lookup(h *kt.Head, label string, p *kt.SearchProof, now time.Time) (*Found, error) {
	t, err := c.cfg.VerifyHead(c.trusted, h, now)
	if err != nil {
		return nil, err
	}
	f, err := c.cfg.VerifySearch(t, label, p)
	if err != nil {
		return nil, err
	}
	c.trusted = t
	return f, nil
}

// opener returns the Owner view of label as the log holds it.
func (l *testLog) owner(label string) Owner {
	vs := l.values[label]
	return Owner{Greatest: uint32(l.sequenced(label) - 1), Value: func(v uint32) ([]byte, bool) {
		if int(v) >= len(vs) {
			return nil, false
		}
		return vs[v].Value, true
	}}
}

var _ note.Verifier = (*kt.CosignatureVerifier)(nil)
