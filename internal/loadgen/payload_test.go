package loadgen

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/vectortest"
	"github.com/parleyim/parley/internal/wire"
)

func TestPayloadVectors(t *testing.T) {
	var vs []loadPayloadVector
	vectortest.Load(t, "loadpayload", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		enc := vectortest.Hex(t, v.Encoding)
		if len(enc) != v.Size {
			t.Errorf("vector of size %d is %d bytes", v.Size, len(enc))
		}
		p, err := ParsePayload(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p.MessageID[:], vectortest.Hex(t, v.MessageID)) || p.Sent.UnixNano() != v.SentUnixNs {
			t.Errorf("vector decodes to %x at %d", p.MessageID, p.Sent.UnixNano())
		}
		// The header re-encodes identically; the filler is random.
		again, err := p.Envelope(v.Size)
		if err != nil {
			t.Fatal(err)
		}
		h := envelopeOverhead + PayloadHeaderSize
		if !bytes.Equal(again[:h], enc[:h]) || len(again) != len(enc) {
			t.Errorf("re-encoding differs:\n%x\n%x", again[:h], enc[:h])
		}
	}
}

// loadPayloadVector mirrors internal/cmd/vectorgen's type.
type loadPayloadVector struct {
	MessageID  string `json:"message_id"`
	SentUnixNs int64  `json:"sent_unix_ns"`
	Size       int    `json:"size"`
	Encoding   string `json:"encoding"`
}

func TestPayloadRoundTrip(t *testing.T) {
	p := Payload{MessageID: [16]byte{9, 8, 7}, Sent: time.Unix(1_800_000_000, 42)}
	for _, size := range []int{MinEnvelopeSize, DefaultEnvelopeSize, 4096, MaxEnvelopeSize} {
		enc, err := p.Envelope(size)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) != size {
			t.Fatalf("size %d: got %d bytes", size, len(enc))
		}
		if _, err := wire.UnmarshalEnvelope(enc); err != nil {
			t.Fatalf("size %d: the server would refuse it: %v", size, err)
		}
		got, err := ParsePayload(enc)
		if err != nil || got.MessageID != p.MessageID || !got.Sent.Equal(p.Sent) {
			t.Fatalf("size %d: round trip gave %+v, %v", size, got, err)
		}
	}
	for _, size := range []int{MinEnvelopeSize - 1, MaxEnvelopeSize + 1, 0, -1} {
		if _, err := p.Envelope(size); err == nil {
			t.Errorf("size %d accepted", size)
		}
	}
}

// TestPayloadFillerIsRandom: two envelopes of one message differ after
// the header, so the envelope is as incompressible as ciphertext.
func TestPayloadFillerIsRandom(t *testing.T) {
	p := Payload{Sent: time.Unix(1, 0)}
	a, _ := p.Envelope(256)
	b, _ := p.Envelope(256)
	h := envelopeOverhead + PayloadHeaderSize
	if bytes.Equal(a[h:], b[h:]) {
		t.Fatal("the filler repeats")
	}
}

func TestPayloadRejectsEveryStrictPrefix(t *testing.T) {
	p := Payload{MessageID: [16]byte{1}, Sent: time.Unix(5, 0)}
	enc, _ := p.Envelope(MinEnvelopeSize)
	for i := range len(enc) {
		if _, err := ParsePayload(enc[:i]); !errors.Is(err, ErrBadPayload) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
}

func TestPayloadRejectsOthers(t *testing.T) {
	p := Payload{Sent: time.Unix(5, 0)}
	enc, _ := p.Envelope(100)
	prekey := slices.Clone(enc)
	prekey[1] = byte(wire.TypePrekey)
	magic := slices.Clone(enc)
	magic[envelopeOverhead] ^= 1
	for name, b := range map[string][]byte{"prekey type": prekey, "magic": magic, "empty": nil} {
		if _, err := ParsePayload(b); !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestFuzzCorpora(t *testing.T) {
	for _, target := range []string{"FuzzParsePayload", "FuzzParseMetrics"} {
		if n := vectortest.Corpus(t, target); n < 5 {
			t.Errorf("%s has only %d seeds", target, n)
		}
	}
}

// FuzzParsePayload: parsing never panics, every failure is ErrBadPayload,
// and an accepted payload's header re-encodes to the identical bytes.
func FuzzParsePayload(f *testing.F) {
	vectortest.Corpus(f, "FuzzParsePayload")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePayload(data)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		enc, err := p.Envelope(len(data))
		if err != nil {
			t.Fatalf("accepted a payload it cannot re-encode: %v", err)
		}
		h := envelopeOverhead + PayloadHeaderSize
		if !bytes.Equal(enc[:h], data[:h]) {
			t.Fatalf("header re-encodes differently:\n in  %x\n out %x", data[:h], enc[:h])
		}
	})
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 || h.mean() != 0 {
		t.Fatal("empty histogram reports a value")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var exact []time.Duration
	for range 100_000 {
		// Log-normal around 5 ms: a latency-like spread.
		d := time.Duration(5e6 * math.Exp(rng.NormFloat64()))
		exact = append(exact, d)
		h.record(d)
	}
	slices.Sort(exact)
	for _, q := range []float64{0.5, 0.95, 0.99, 0.999} {
		want := exact[int(math.Ceil(q*float64(len(exact))))-1]
		got := h.quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > histPrecision {
			t.Errorf("q%.3f: %v, exact %v (%.2f%% off)", q, got, want, 100*rel)
		}
	}
	if got := h.quantile(1); got != exact[len(exact)-1] {
		t.Errorf("q1 = %v, max %v", got, exact[len(exact)-1])
	}
	h.record(-time.Second) // a clock step: counted as 0, not a crash
	h.record(10 * time.Hour)
	if h.quantile(1) != 10*time.Hour {
		t.Errorf("max = %v", h.quantile(1))
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
go_gc_duration_seconds{quantile="0"} 1.5e-05
go_gc_duration_seconds_count 12
process_resident_memory_bytes 2.1479424e+07 1700000000000
parleyd_rpc_total{procedure="/parley.v1.RelayService/Send",code="ok"} 7
`
	m, err := ParseMetrics(strings.NewReader(text), metricGoroutines, metricRSS, metricGCCount, "absent")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{metricGoroutines: 42, metricRSS: 21479424, metricGCCount: 12}
	if len(m) != len(want) {
		t.Fatalf("got %v", m)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	for _, bad := range []string{"go_goroutines\n", "go_goroutines many\n", "go_goroutines 1 2 3\n"} {
		if _, err := ParseMetrics(strings.NewReader(bad), metricGoroutines); !errors.Is(err, ErrBadMetrics) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// A line too long for the scanner is an error, not a hang or a panic.
	if _, err := ParseMetrics(strings.NewReader(strings.Repeat("x", maxMetricsLine+10)+" 1\n"), "x"); !errors.Is(err, ErrBadMetrics) {
		t.Errorf("overlong line: %v", err)
	}
}

// FuzzParseMetrics: never panics; every failure is ErrBadMetrics.
func FuzzParseMetrics(f *testing.F) {
	vectortest.Corpus(f, "FuzzParseMetrics")
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetrics(bytes.NewReader(data), scraped...)
		if err != nil {
			if !errors.Is(err, ErrBadMetrics) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		for k := range m {
			if !slices.Contains(scraped, k) {
				t.Fatalf("returned unasked-for %q", k)
			}
		}
	})
}

func TestSourceAddrsAndURLs(t *testing.T) {
	got := SourceAddrs(300)
	if got[0].String() != "127.0.0.2" || got[253].String() != "127.0.0.255" || got[254].String() != "127.0.1.0" {
		t.Errorf("addresses: %v %v %v", got[0], got[253], got[254])
	}
	if _, err := checkURLs([]string{"http://example.org:80"}, SourceAddrs(2)); err == nil {
		t.Error("loopback sources accepted for a server off loopback")
	}
	if _, err := checkURLs([]string{"ftp://127.0.0.1"}, nil); err == nil {
		t.Error("ftp URL accepted")
	}
	if _, err := checkURLs(nil, nil); err == nil {
		t.Error("no URL accepted")
	}
	u, err := checkURLs([]string{"http://127.0.0.1:8080/"}, SourceAddrs(2))
	if err != nil || u[0] != "http://127.0.0.1:8080" {
		t.Errorf("%v %v", u, err)
	}
}

func TestConfigRefusesNonsense(t *testing.T) {
	ok := Config{URLs: []string{"http://127.0.0.1:1"}}
	for name, mod := range map[string]func(*Config){
		"one user":        func(c *Config) { c.Users = 1 },
		"negative rate":   func(c *Config) { c.Rate = -1 },
		"tiny envelope":   func(c *Config) { c.EnvelopeSize = MinEnvelopeSize - 1 },
		"huge envelope":   func(c *Config) { c.EnvelopeSize = MaxEnvelopeSize + 1 },
		"too many devs":   func(c *Config) { c.DevicesPerUser = 9 },
		"huge ack batch":  func(c *Config) { c.AckBatch = maxAckBatch + 1 },
		"no URL":          func(c *Config) { c.URLs = nil },
		"negative length": func(c *Config) { c.Duration = -time.Second },
	} {
		c := ok
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}

// TestServerCPUPerEnvelope: the nodes' CPU between the samples, summed, per
// delivered envelope; unknown (0) when a node restarted or lacks samples.
func TestServerCPUPerEnvelope(t *testing.T) {
	at := func(cpu float64) *ServerSample { return &ServerSample{CPUSeconds: cpu} }
	two := []ServerMemory{{Start: at(1), End: at(1.5)}, {Start: at(10), End: at(10.25)}}
	if got := serverCPUPerEnvelope(two, 5000); got != 150 {
		t.Errorf("two nodes, 0.75 s for 5,000 envelopes: %v µs, want 150", got)
	}
	for name, servers := range map[string][]ServerMemory{
		"restarted":  {{Start: at(10), End: at(0.2)}},
		"no samples": {{Start: at(1)}},
	} {
		if got := serverCPUPerEnvelope(servers, 100); got != 0 {
			t.Errorf("%s: %v, want 0", name, got)
		}
	}
	if got := serverCPUPerEnvelope(two, 0); got != 0 {
		t.Errorf("nothing delivered: %v, want 0", got)
	}
}
