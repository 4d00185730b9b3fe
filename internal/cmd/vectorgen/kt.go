package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/kt/verify"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/primitives/vrf"
)

// The key-transparency vectors (testdata/vectors/kt.json) pin the
// commitment, VRF input and log entry encodings, the prefix tree's hashing
// and batched proofs on a small tree, binary ladders and a checkpoint, and
// hold a whole small log (the "fixture": keys, epochs, signed and cosigned
// checkpoint, head, search and monitor proofs) that internal/kt/verify
// replays and its fuzz targets use as their oracle. The layout is mirrored
// by internal/kt/vectors_test.go and internal/kt/verify/vectors_test.go.

type ktCommitmentVector struct {
	Opening    string `json:"opening"`
	Label      string `json:"label"`
	Version    uint32 `json:"version"`
	Value      string `json:"value"`
	Commitment string `json:"commitment"`
}

type ktVRFInputVector struct {
	Label   string `json:"label"`
	Version uint32 `json:"version"`
	Alpha   string `json:"alpha"`
}

type ktLogEntryVector struct {
	Epoch      uint64 `json:"epoch"`
	Timestamp  uint64 `json:"timestamp"`
	PrefixRoot string `json:"prefix_root"`
	Encoding   string `json:"encoding"`
}

type ktLeafVector struct {
	Index      string `json:"index"`
	Commitment string `json:"commitment"`
}

type ktPrefixProofVector struct {
	Indexes []string `json:"indexes"`
	// Results are "inclusion", "non-inclusion-leaf" or
	// "non-inclusion-parent", one per index.
	Results []string `json:"results"`
	Proof   string   `json:"proof"`
}

type ktTreeVector struct {
	EmptyRoot string                `json:"empty_root"`
	Leaves    []ktLeafVector        `json:"leaves"`
	Root      string                `json:"root"`
	Proofs    []ktPrefixProofVector `json:"proofs"`
}

type ktLadderVector struct {
	Greatest uint32   `json:"greatest"`
	Versions []uint32 `json:"versions"`
}

type ktLabelValues struct {
	Label  string   `json:"label"`
	Values []string `json:"values"`
}

type ktSearchVector struct {
	Label string `json:"label"`
	// Version is the version searched for; -1 for a greatest-version
	// search.
	Version int64 `json:"version"`
	// Found is false for a label the log proves absent.
	Found bool   `json:"found"`
	Proof string `json:"proof"`
}

type ktMonitorVector struct {
	Label string `json:"label"`
	From  uint32 `json:"from"`
	Proof string `json:"proof"`
}

type ktFixture struct {
	Origin             string            `json:"origin"`
	Ed25519VKey        string            `json:"ed25519_vkey"`
	HybridVKey         string            `json:"hybrid_vkey"`
	VRFPublicKey       string            `json:"vrf_public_key"`
	WitnessVKeys       []string          `json:"witness_vkeys"`
	WitnessThreshold   int               `json:"witness_threshold"`
	NowMillis          int64             `json:"now_millis"`
	Labels             []ktLabelValues   `json:"labels"`
	Epochs             []string          `json:"epochs"`
	Entries            []string          `json:"entries"`
	Checkpoint         string            `json:"checkpoint"`
	Head               string            `json:"head"`
	ConsistencyFrom    uint64            `json:"consistency_from"`
	HeadFromCheckpoint string            `json:"head_from_checkpoint"`
	Searches           []ktSearchVector  `json:"searches"`
	Monitors           []ktMonitorVector `json:"monitors"`
}

type ktVectors struct {
	Comment     string               `json:"comment"`
	Commitments []ktCommitmentVector `json:"commitments"`
	VRFInputs   []ktVRFInputVector   `json:"vrf_inputs"`
	LogEntries  []ktLogEntryVector   `json:"log_entries"`
	Tree        ktTreeVector         `json:"tree"`
	Ladders     []ktLadderVector     `json:"ladders"`
	Fixture     ktFixture            `json:"fixture"`
}

func init() {
	register("kt", genKT)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic("vectorgen: kt: " + err.Error())
	}
	return v
}

func random(n int) []byte {
	b := make([]byte, n)
	primitives.Random(b)
	return b
}

func genKT() any {
	v := &ktVectors{Comment: "Known-answer vectors for internal/kt (docs/transparency.md). Byte strings are hex. " +
		"Regenerate with: go run ./internal/cmd/vectorgen"}

	// Commitments and VRF inputs.
	for i, c := range []struct {
		label   string
		version uint32
		value   []byte
	}{
		{"alice", 0, []byte("device list v1")},
		{"alice", 1, []byte("device list v2")},
		{"bob", 0, nil},
		{"élodie", 4294967295, random(300)},
		{string(slices.Repeat([]byte{'x'}, kt.MaxLabelSize)), 7, []byte{0}},
	} {
		var opening [kt.OpeningSize]byte
		if i > 0 {
			opening = kt.NewOpening()
		}
		cm := kt.Commit(opening, c.label, c.version, c.value)
		v.Commitments = append(v.Commitments, ktCommitmentVector{hex.EncodeToString(opening[:]), c.label, c.version,
			hex.EncodeToString(c.value), hex.EncodeToString(cm[:])})
		v.VRFInputs = append(v.VRFInputs, ktVRFInputVector{c.label, c.version, hex.EncodeToString(kt.VRFInput(c.label, c.version))})
	}

	// A small tree with the draft's Figure 5 shape in its first bits, and
	// three random leaves.
	var leaves []kt.Leaf
	for _, prefix := range []byte{0b00010 << 3, 0b00101 << 3, 0b10001 << 3, 0b10111 << 3, 0b11011 << 3} {
		var l kt.Leaf
		copy(l.Index[:], random(32))
		l.Index[0] = prefix | l.Index[0]&0x07
		copy(l.Commitment[:], random(32))
		leaves = append(leaves, l)
	}
	for range 3 {
		var l kt.Leaf
		copy(l.Index[:], random(32))
		copy(l.Commitment[:], random(32))
		leaves = append(leaves, l)
	}
	tree := must(kt.BuildTree(leaves))
	empty := kt.NewTree().Root()
	root := tree.Root()
	v.Tree = ktTreeVector{EmptyRoot: hex.EncodeToString(empty[:]), Root: hex.EncodeToString(root[:])}
	for _, l := range leaves {
		v.Tree.Leaves = append(v.Tree.Leaves, ktLeafVector{hex.EncodeToString(l.Index[:]), hex.EncodeToString(l.Commitment[:])})
	}
	near := leaves[4].Index
	near[31] ^= 1
	var absent [32]byte
	absent[0] = 0b01101 << 3 // Figure 6's key: ends at a parent
	var prefixSeeds [][]byte
	for _, idx := range [][][32]byte{
		{leaves[0].Index},
		{absent},
		{near},
		{leaves[1].Index, absent, leaves[6].Index, near},
		{leaves[0].Index, leaves[1].Index, leaves[2].Index, leaves[3].Index, leaves[4].Index, leaves[5].Index, leaves[6].Index, leaves[7].Index},
	} {
		p := must(tree.Prove(idx))
		pv := ktPrefixProofVector{Proof: hex.EncodeToString(p.Marshal())}
		for i, x := range idx {
			pv.Indexes = append(pv.Indexes, hex.EncodeToString(x[:]))
			pv.Results = append(pv.Results, map[kt.ResultType]string{kt.Inclusion: "inclusion",
				kt.NonInclusionLeaf: "non-inclusion-leaf", kt.NonInclusionParent: "non-inclusion-parent"}[p.Results[i].Type])
		}
		v.Tree.Proofs = append(v.Tree.Proofs, pv)
		prefixSeeds = append(prefixSeeds, p.Marshal())
	}

	for _, n := range []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 100, kt.MaxVersion} {
		v.Ladders = append(v.Ladders, ktLadderVector{n, kt.BinaryLadder(n)})
	}

	f, seeds := genKTFixture()
	v.Fixture = f
	for i := range f.Entries {
		e := must(kt.UnmarshalLogEntry(must(hex.DecodeString(f.Entries[i]))))
		v.LogEntries = append(v.LogEntries, ktLogEntryVector{e.Epoch, e.Timestamp, hex.EncodeToString(e.PrefixRoot[:]), f.Entries[i]})
	}

	addKTCorpora(prefixSeeds, seeds)
	return v
}

// ktSeeds are encodings from the fixture, for the fuzz corpora.
type ktSeeds struct {
	searches, monitors, heads, epochs, entries [][]byte
	checkpoint                                 []byte
	searchLabels, monitorLabels                []byte
}

func genKTFixture() (ktFixture, ktSeeds) {
	const origin = "parley.example/kt"
	now := time.UnixMilli(1_800_000_000_000)
	vk := vrf.GenerateKey()
	signer := must(kt.NewCheckpointSigner(origin, primitives.GenerateEd25519(), primitives.GenerateSigningKey()))
	var witnesses []*kt.Cosigner
	f := ktFixture{Origin: origin, Ed25519VKey: signer.Ed25519VerifierKey(), HybridVKey: signer.HybridVerifierKey(),
		VRFPublicKey: hex.EncodeToString(vk.Public().Bytes()), WitnessThreshold: 2}
	for i := range 3 {
		w := must(kt.NewCosigner(fmt.Sprintf("witness%d.example", i), primitives.GenerateEd25519(), func() time.Time { return now }))
		witnesses = append(witnesses, w)
		f.WitnessVKeys = append(f.WitnessVKeys, w.VerifierKey())
	}

	state := kt.NewState()
	values := map[string][]kt.Opened{}
	var labels []string
	var pending []kt.Leaf
	update := func(label string, value []byte) {
		if _, ok := values[label]; !ok {
			labels = append(labels, label)
		}
		leaf, opening := must2(kt.NewUpdate(vk, label, uint32(len(values[label])), value))
		values[label] = append(values[label], kt.Opened{Opening: opening, Value: value})
		pending = append(pending, leaf)
	}
	var signed []byte
	var seeds ktSeeds
	publish := func() {
		now = now.Add(time.Second)
		e := kt.Epoch{Number: state.Log().Size(), Timestamp: uint64(now.UnixMilli()), Leaves: pending}
		entry := must(state.Apply(&e))
		pending = nil
		f.Epochs = append(f.Epochs, hex.EncodeToString(must(e.Marshal())))
		f.Entries = append(f.Entries, hex.EncodeToString(entry.Marshal()))
		seeds.epochs = append(seeds.epochs, must(e.Marshal()))
		seeds.entries = append(seeds.entries, entry.Marshal())
		size := state.Log().Size()
		signed = must(signer.Sign(size, must(state.Log().Root(size))))
		for _, w := range witnesses[:2] {
			signed = must(w.Cosign(signed))
		}
	}
	update("alice", []byte("alice list 1"))
	update("bob", []byte("bob list 1"))
	publish()
	for i := 2; i <= 6; i++ {
		update("alice", []byte(fmt.Sprintf("alice list %d", i)))
		update(fmt.Sprintf("user%d", i), []byte("list 1"))
		publish()
	}
	update("bob", []byte("bob list 2"))
	publish()
	f.NowMillis = now.UnixMilli()
	f.Checkpoint = string(signed)
	seeds.checkpoint = signed
	for _, l := range labels {
		lv := ktLabelValues{Label: l}
		for _, o := range values[l] {
			lv.Values = append(lv.Values, hex.EncodeToString(o.Value))
		}
		f.Labels = append(f.Labels, lv)
	}
	tree, size := state.Snapshot()
	h := must(state.Head(size, signed, 0))
	f.Head = hex.EncodeToString(must(h.Marshal()))
	f.ConsistencyFrom = 3
	h3 := must(state.Head(size, signed, 3))
	f.HeadFromCheckpoint = hex.EncodeToString(must(h3.Marshal()))
	seeds.heads = [][]byte{must(h.Marshal()), must(h3.Marshal())}

	pr := kt.Prover{VRF: vk, Tree: tree}
	for li, l := range labels {
		vs := values[l]
		n := uint32(len(vs) - 1)
		p := must(pr.Search(l, n, vs[n].Opening, vs[n].Value))
		b := must(p.Marshal())
		f.Searches = append(f.Searches, ktSearchVector{Label: l, Version: -1, Found: true, Proof: hex.EncodeToString(b)})
		seeds.searches = append(seeds.searches, b)
		seeds.searchLabels = append(seeds.searchLabels, byte(li))
		if n > 0 {
			p := must(pr.Fixed(l, n, 0, vs[0].Opening, vs[0].Value))
			b := must(p.Marshal())
			f.Searches = append(f.Searches, ktSearchVector{Label: l, Version: 0, Found: true, Proof: hex.EncodeToString(b)})
			seeds.searches = append(seeds.searches, b)
			seeds.searchLabels = append(seeds.searchLabels, byte(li))
		}
		m := must(pr.Monitor(l, n, 0, vs))
		mb := must(m.Marshal())
		f.Monitors = append(f.Monitors, ktMonitorVector{Label: l, From: 0, Proof: hex.EncodeToString(mb)})
		seeds.monitors = append(seeds.monitors, mb)
		seeds.monitorLabels = append(seeds.monitorLabels, byte(li))
	}
	p := must(pr.Absent("carol"))
	b := must(p.Marshal())
	f.Searches = append(f.Searches, ktSearchVector{Label: "carol", Version: -1, Found: false, Proof: hex.EncodeToString(b)})
	// Every fixture label exists: the fuzzer must never accept an absence.
	seeds.searches = append(seeds.searches, b)
	seeds.searchLabels = append(seeds.searchLabels, 0)
	return f, seeds
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic("vectorgen: kt: " + err.Error())
	}
	return a, b
}

// mutations returns s, its truncations at a few points, and copies with
// one byte changed, for seed corpora.
func mutations(s []byte) [][]byte {
	out := [][]byte{s}
	for _, n := range []int{0, 1, len(s) / 2, len(s) - 1} {
		if n >= 0 && n < len(s) {
			out = append(out, slices.Clone(s[:n]))
		}
	}
	for _, i := range []int{0, 1, len(s) / 3, len(s) - 1} {
		if i >= 0 && i < len(s) {
			c := slices.Clone(s)
			c[i] ^= 0x01
			out = append(out, c)
		}
	}
	return out
}

func addKTCorpora(prefix [][]byte, s ktSeeds) {
	const ktDir, verifyDir = "internal/kt", "internal/kt/verify"
	var pp [][]byte
	for _, p := range prefix {
		pp = append(pp, mutations(p)...)
	}
	addCorpus(ktDir, "FuzzUnmarshalPrefixProof", pp...)
	addCorpus(ktDir, "FuzzPrefixProofEvaluate", pp...)
	var sp, mp, hp, ep, lp [][]byte
	for _, x := range s.searches {
		sp = append(sp, mutations(x)...)
	}
	for _, x := range s.monitors {
		mp = append(mp, mutations(x)...)
	}
	for _, x := range s.heads {
		hp = append(hp, mutations(x)...)
	}
	for _, x := range s.epochs[:3] {
		ep = append(ep, mutations(x)...)
	}
	for _, x := range s.entries[:2] {
		lp = append(lp, mutations(x)...)
	}
	addCorpus(ktDir, "FuzzUnmarshalSearchProof", sp...)
	addCorpus(ktDir, "FuzzUnmarshalMonitorProof", mp...)
	addCorpus(ktDir, "FuzzUnmarshalHead", hp...)
	addCorpus(ktDir, "FuzzUnmarshalEpoch", ep...)
	addCorpus(ktDir, "FuzzUnmarshalLogEntry", lp...)
	cps := mutations(s.checkpoint)
	body := s.checkpoint[:bytes.Index(s.checkpoint, []byte("\n\n"))+1]
	addCorpus(ktDir, "FuzzParseCheckpoint", append(mutations(body), []byte("a\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"))...)
	tr := mutations((&verify.Trusted{Note: s.checkpoint, Entry: *must(kt.UnmarshalLogEntry(s.entries[len(s.entries)-1]))}).Marshal())
	addCorpus(verifyDir, "FuzzUnmarshalTrusted", tr...)
	addCorpus(verifyDir, "FuzzVerifyCheckpoint", cps...)
	addCorpus(verifyDir, "FuzzVerifyHead", hp...)
	// The verify fuzzers read a label selector byte, then the proof.
	var vs, vm [][]byte
	for i, x := range s.searches {
		for _, m := range mutations(x) {
			vs = append(vs, append([]byte{s.searchLabels[i]}, m...))
		}
	}
	for i, x := range s.monitors {
		for _, m := range mutations(x) {
			vm = append(vm, append([]byte{s.monitorLabels[i]}, m...))
		}
	}
	addCorpus(verifyDir, "FuzzVerifySearch", vs...)
	// FuzzAuditorApply audits one more epoch after the fixture's: a valid
	// next epoch, one re-inserting an existing index, and mutations.
	next := kt.Epoch{Number: uint64(len(s.epochs)), Timestamp: 1_900_000_000_000}
	for range 3 {
		var l kt.Leaf
		copy(l.Index[:], random(32))
		copy(l.Commitment[:], random(32))
		next.Leaves = append(next.Leaves, l)
	}
	old := must(kt.UnmarshalEpoch(s.epochs[0]))
	again := next
	again.Leaves = append(slices.Clone(next.Leaves), old.Leaves[0])
	var ap [][]byte
	for _, e := range []kt.Epoch{next, again, {Number: next.Number, Timestamp: next.Timestamp}} {
		ap = append(ap, mutations(must(e.Marshal()))...)
	}
	addCorpus(verifyDir, "FuzzAuditorApply", ap...)
	addCorpus(verifyDir, "FuzzVerifyMonitor", vm...)
}
