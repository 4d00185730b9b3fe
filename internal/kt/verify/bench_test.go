package verify

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/kt"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/primitives/vrf"
)

// BenchmarkSearchVerify measures a client verifying a greatest-version
// search at 100k and 1M accounts (averaged over benchLabels labels), with
// the label's greatest version n = 0 (an account that never changed its
// device list) to n = 7 (seven changes):
//
//	go test -run '^$' -bench SearchVerify -benchtime 1000x -benchmem ./internal/kt/verify
//
// PARLEY_KT_BENCH_N (a comma-separated list, e.g. "0,3") restricts the
// greatest versions measured.
//
// Sub-benchmarks:
//   - search: VerifySearch against an already verified head (a client
//     verifies the head once per response, and may reuse it);
//   - full: VerifyHead (Ed25519 + hybrid + 2-of-2 witness cosignatures,
//     log inclusion) then VerifySearch, as for a first lookup;
//   - floor / floor-full: the primitives the verifier cannot avoid, on the
//     same proof: one VRF verification per ladder step, one SHA-256 per
//     prefix-tree node the proof makes it recompute, the commitment HMAC,
//     and for floor-full the four signatures and the log-path hashes.
//
// Metrics: proof-B is the encoded search proof; head-B the encoded head
// (checkpoint note with its signatures, entry, inclusion proof), which a
// client fetches once per epoch, not per lookup. The other accounts are
// random leaves: VRF outputs are indistinguishable from random, and
// proving a million VRFs would only slow the set-up.
func BenchmarkSearchVerify(b *testing.B) {
	for _, accounts := range []int{100_000, 1_000_000} {
		for _, n := range benchGreatest(b) {
			benchSearchVerify(b, accounts, n)
		}
	}
}

func benchGreatest(b *testing.B) []uint32 {
	env := os.Getenv("PARLEY_KT_BENCH_N")
	if env == "" {
		return []uint32{0, 1, 2, 3, 4, 5, 6, 7}
	}
	var out []uint32
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			b.Fatalf("PARLEY_KT_BENCH_N: %v", err)
		}
		out = append(out, uint32(n))
	}
	return out
}

// benchLabels is how many labels the proofs are averaged over: the
// copath of a lookup depends on where its random index falls, so one
// label's proof size is a sample, not the mean.
const benchLabels = 32

func benchSearchVerify(b *testing.B, accounts int, n uint32) {
	l := newTestLog(b, 2, 2)
	r := rand.New(rand.NewPCG(uint64(accounts), uint64(n)))
	others := make([]kt.Leaf, accounts-benchLabels)
	for i := range others {
		for j := range others[i].Index {
			others[i].Index[j] = byte(r.Uint32())
		}
		others[i].Commitment = others[i].Index
	}
	l.pending = others
	labels := make([]string, benchLabels)
	for i := range labels {
		labels[i] = fmt.Sprintf("user%d", i)
		for v := uint32(0); v <= n; v++ {
			l.update(labels[i], []byte(fmt.Sprintf("%s's device list, version %d, about this long", labels[i], v)))
		}
	}
	l.publish()
	h := l.head(0)
	hb, _ := h.Marshal()
	tr, err := l.cfg.VerifyHead(nil, h, l.now)
	if err != nil {
		b.Fatal(err)
	}
	proofs := make([]*kt.SearchProof, len(labels))
	floors := make([]*floor, len(labels))
	var size, maxSize, copath, zeros, leaves, hashes float64
	for i, label := range labels {
		proofs[i] = l.search(label)
		pb, _ := proofs[i].Marshal()
		size += float64(len(pb))
		maxSize = max(maxSize, float64(len(pb)))
		copath += float64(len(proofs[i].Prefix.Elements))
		for _, e := range proofs[i].Prefix.Elements {
			if e == [kt.HashSize]byte{} {
				zeros++
			}
		}
		for _, r := range proofs[i].Prefix.Results {
			if r.Type == kt.NonInclusionLeaf {
				leaves++
			}
		}
		floors[i] = newFloor(b, l, label, proofs[i], h)
		hashes += float64(floors[i].hashes)
	}
	name := fmt.Sprintf("accounts=%d/greatest=%d", accounts, n)
	report := func(b *testing.B) {
		b.ReportMetric(size/benchLabels, "proof-B")
		b.ReportMetric(maxSize, "max-proof-B")
		b.ReportMetric(zeros/benchLabels, "zero-elements")
		b.ReportMetric(leaves/benchLabels, "other-leaves")
		b.ReportMetric(float64(len(hb)), "head-B")
		b.ReportMetric(float64(len(proofs[0].Ladder)), "lookups")
		b.ReportMetric(copath/benchLabels, "copath")
	}
	b.Run(name+"/impl=search", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := l.cfg.VerifySearch(tr, labels[i%benchLabels], proofs[i%benchLabels]); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run(name+"/impl=full", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			t, err := l.cfg.VerifyHead(nil, h, l.now)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := l.cfg.VerifySearch(t, labels[i%benchLabels], proofs[i%benchLabels]); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run(name+"/impl=floor", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			floors[i%benchLabels].search()
		}
		b.ReportMetric(hashes/benchLabels, "sha256")
	})
	b.Run(name+"/impl=floor-full", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			floors[i%benchLabels].search()
			floors[i%benchLabels].head()
		}
	})
}

// floor holds the inputs of the primitive floor of one verification.
type floor struct {
	vrf     *vrf.PublicKey
	label   string
	alphas  [][]byte
	proofs  [][kt.VRFProofSize]byte
	hashes  int // prefix-tree nodes the verifier recomputes
	logPath int
	opening [kt.OpeningSize]byte
	value   []byte
	edPub   []byte
	edMsg   []byte
	edSig   []byte
	hybrid  *primitives.SigningPublicKey
	hybMsg  []byte
	hybSig  []byte
	wMsg    []byte
	wPub    []byte
	wSig    []byte
}

// newFloor counts the prefix-tree nodes the proof makes the verifier
// hash: every parent on the union of the lookup paths plus every distinct
// leaf. A parent's two child slots are each an element, a visited parent
// or a terminal, so parents = elements + distinct terminals − 1.
func newFloor(b *testing.B, l *testLog, label string, p *kt.SearchProof, h *kt.Head) *floor {
	f := &floor{vrf: l.vrf.Public(), label: label, opening: p.Opening, value: p.Value, logPath: len(h.Inclusion) + 1}
	terminals, leaves := map[string]bool{}, map[string]bool{}
	for i, v := range p.Lookups() {
		f.alphas = append(f.alphas, kt.VRFInput(label, v))
		f.proofs = append(f.proofs, p.Ladder[i].Proof)
		idx, _ := kt.Index(l.vrf, label, v)
		res := p.Prefix.Results[i]
		depth := int(res.Depth)
		if res.Type == kt.NonInclusionParent {
			depth++
		}
		key := fmt.Sprint(depth, prefixBits(idx, depth))
		terminals[key] = true
		if res.Type != kt.NonInclusionParent {
			leaves[key] = true
		}
	}
	f.hashes = len(p.Prefix.Elements) + len(terminals) - 1 + len(leaves)
	// Signature inputs as the note carries them: the checkpoint text and
	// the cosigned message, with fresh keys of the same kinds.
	text := []byte(kt.Checkpoint{Origin: origin, Size: 1, Root: [32]byte{}}.Text())
	ed := primitives.GenerateEd25519()
	f.edPub, f.edMsg, f.edSig = ed.Public(), text, ed.Sign(text)
	hk := primitives.GenerateSigningKey()
	f.hybrid, f.hybMsg, f.hybSig = hk.Public(), text, hk.Sign(primitives.LabelSigKTCheckpoint, text)
	f.wMsg = kt.CosignedMessage(uint64(time.Now().Unix()), text)
	f.wPub, f.wSig = ed.Public(), ed.Sign(f.wMsg)
	return f
}

func prefixBits(idx [32]byte, n int) string {
	s := make([]byte, n)
	for i := range s {
		s[i] = '0' + idx[i/8]>>(7-i%8)&1
	}
	return string(s)
}

func (f *floor) search() {
	for i := range f.alphas {
		if _, err := f.vrf.Verify(f.alphas[i], f.proofs[i][:]); err != nil {
			panic(err)
		}
	}
	var buf [65]byte
	for i := 0; i < f.hashes; i++ {
		buf[0] = byte(i)
		primitives.SHA256(buf[:])
	}
	kt.Commit(f.opening, f.label, 0, f.value)
}

func (f *floor) head() {
	if !primitives.VerifyEd25519(f.edPub, f.edMsg, f.edSig) {
		panic("ed25519")
	}
	if err := f.hybrid.Verify(primitives.LabelSigKTCheckpoint, f.hybMsg, f.hybSig); err != nil {
		panic(err)
	}
	for range 2 {
		if !primitives.VerifyEd25519(f.wPub, f.wMsg, f.wSig) {
			panic("witness")
		}
	}
	var buf [65]byte
	for i := 0; i < f.logPath; i++ {
		buf[0] = byte(i)
		primitives.SHA256(buf[:])
	}
}
