package verify

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/vectortest"
)

// The fixture log of testdata/vectors/kt.json (internal/cmd/vectorgen/kt.go):
// its keys, epochs, checkpoint, head and proofs. The tests replay it; the
// fuzz targets use it as their oracle.

type fixture struct {
	Origin           string   `json:"origin"`
	Ed25519VKey      string   `json:"ed25519_vkey"`
	HybridVKey       string   `json:"hybrid_vkey"`
	VRFPublicKey     string   `json:"vrf_public_key"`
	WitnessVKeys     []string `json:"witness_vkeys"`
	WitnessThreshold int      `json:"witness_threshold"`
	NowMillis        int64    `json:"now_millis"`
	Labels           []struct {
		Label  string   `json:"label"`
		Values []string `json:"values"`
	} `json:"labels"`
	Epochs             []string `json:"epochs"`
	Entries            []string `json:"entries"`
	Checkpoint         string   `json:"checkpoint"`
	Head               string   `json:"head"`
	ConsistencyFrom    uint64   `json:"consistency_from"`
	HeadFromCheckpoint string   `json:"head_from_checkpoint"`
	Searches           []struct {
		Label   string `json:"label"`
		Version int64  `json:"version"`
		Found   bool   `json:"found"`
		Proof   string `json:"proof"`
	} `json:"searches"`
	Monitors []struct {
		Label string `json:"label"`
		From  uint32 `json:"from"`
		Proof string `json:"proof"`
	} `json:"monitors"`
}

type loaded struct {
	f       fixture
	cfg     *Config
	now     time.Time
	trusted *Trusted
	values  map[string][][]byte
}

func loadFixture(t testing.TB) *loaded {
	t.Helper()
	var v struct {
		Fixture fixture `json:"fixture"`
	}
	vectortest.Load(t, "kt", &v)
	f := v.Fixture
	if len(f.Searches) == 0 || len(f.Monitors) == 0 || len(f.Epochs) == 0 {
		t.Fatal("kt.json has no fixture; regenerate with go run ./internal/cmd/vectorgen")
	}
	var w WitnessPolicy
	for _, k := range f.WitnessVKeys {
		cv, err := kt.NewCosignatureVerifier(k)
		if err != nil {
			t.Fatal(err)
		}
		w.Witnesses = append(w.Witnesses, cv)
	}
	w.Threshold = f.WitnessThreshold
	cfg, err := NewConfig(f.Ed25519VKey, f.HybridVKey, vectortest.Hex(t, f.VRFPublicKey), w)
	if err != nil {
		t.Fatal(err)
	}
	l := &loaded{f: f, cfg: cfg, now: time.UnixMilli(f.NowMillis), values: map[string][][]byte{}}
	for _, lv := range f.Labels {
		for _, x := range lv.Values {
			l.values[lv.Label] = append(l.values[lv.Label], vectortest.Hex(t, x))
		}
	}
	h, err := kt.UnmarshalHead(vectortest.Hex(t, f.Head))
	if err != nil {
		t.Fatal(err)
	}
	l.trusted, err = cfg.VerifyHead(nil, h, l.now)
	if err != nil {
		t.Fatalf("fixture head: %v", err)
	}
	return l
}

func TestVectorsFixture(t *testing.T) {
	l := loadFixture(t)
	f := l.f
	// The checkpoint opens with x/mod's note and the standard vkey alone.
	ev, _ := note.NewVerifier(f.Ed25519VKey)
	if _, err := note.Open([]byte(f.Checkpoint), note.VerifierList(ev)); err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	if !bytes.Equal(l.trusted.Note, []byte(f.Checkpoint)) {
		t.Fatal("head carries another checkpoint")
	}
	// The head with a consistency proof from an older size verifies from
	// that checkpoint.
	var epochs []kt.Epoch
	var entries []kt.LogEntry
	for i := range f.Epochs {
		e, err := kt.UnmarshalEpoch(vectortest.Hex(t, f.Epochs[i]))
		if err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, *e)
		en, _ := kt.UnmarshalLogEntry(vectortest.Hex(t, f.Entries[i]))
		entries = append(entries, *en)
	}
	st, err := kt.RebuildState(epochs, entries)
	if err != nil {
		t.Fatal(err)
	}
	oldRoot, _ := st.Log().Root(f.ConsistencyFrom)
	old := &Trusted{Checkpoint: kt.Checkpoint{Origin: f.Origin, Size: f.ConsistencyFrom, Root: oldRoot}, Entry: entries[f.ConsistencyFrom-1]}
	h3, err := kt.UnmarshalHead(vectortest.Hex(t, f.HeadFromCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.cfg.VerifyHead(old, h3, l.now); err != nil {
		t.Fatalf("head from checkpoint %d: %v", f.ConsistencyFrom, err)
	}
	// Every search verifies to the fixture's values.
	for _, s := range f.Searches {
		b := vectortest.Hex(t, s.Proof)
		p, err := kt.UnmarshalSearchProof(b)
		if err != nil {
			t.Fatal(err)
		}
		if re, _ := p.Marshal(); !bytes.Equal(re, b) {
			t.Fatal("search proof re-encodes differently")
		}
		var found *Found
		if s.Version < 0 {
			found, err = l.cfg.VerifySearch(l.trusted, s.Label, p)
		} else {
			found, err = l.cfg.VerifyFixed(l.trusted, s.Label, uint32(s.Version), p)
		}
		if !s.Found {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s: %v, want ErrNotFound", s.Label, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.Label, err)
		}
		vs := l.values[s.Label]
		want := uint32(len(vs) - 1)
		if s.Version >= 0 {
			want = uint32(s.Version)
		}
		if found.Version != want || !bytes.Equal(found.Value, vs[want]) {
			t.Fatalf("%s: version %d %q", s.Label, found.Version, found.Value)
		}
	}
	for _, m := range f.Monitors {
		p, err := kt.UnmarshalMonitorProof(vectortest.Hex(t, m.Proof))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.cfg.VerifyMonitor(l.trusted, m.Label, m.From, l.owner(m.Label), p); err != nil {
			t.Fatalf("monitor %s: %v", m.Label, err)
		}
	}
	// The whole log audits.
	if _, err := l.cfg.Audit(epochs, entries, []byte(f.Checkpoint)); err != nil {
		t.Fatalf("audit: %v", err)
	}
}

func (l *loaded) owner(label string) Owner {
	vs := l.values[label]
	return Owner{Greatest: uint32(len(vs) - 1), Value: func(v uint32) ([]byte, bool) {
		if int(v) >= len(vs) {
			return nil, false
		}
		return vs[v], true
	}}
}
