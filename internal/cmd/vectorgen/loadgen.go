package main

import (
	"encoding/hex"
	"time"

	"github.com/parleyim/parley/internal/loadgen"
)

// loadPayloadVector is one load-tool envelope (internal/loadgen,
// payload.go): not part of the protocol, but the load tool and the chaos
// tests judge loss by it, so its layout is pinned like a wire format.
type loadPayloadVector struct {
	MessageID  string `json:"message_id"`
	SentUnixNs int64  `json:"sent_unix_ns"`
	Size       int    `json:"size"`
	Encoding   string `json:"encoding"`
}

func init() {
	register("loadpayload", func() any {
		cases := []struct {
			id   [16]byte
			sent time.Time
			size int
		}{
			{[16]byte{0x01, 0x02, 0x03}, time.Unix(1_795_000_000, 123_456_789), loadgen.MinEnvelopeSize},
			{[16]byte{0xff, 0xee}, time.Unix(1_795_000_001, 0), 64},
			{[16]byte{0x42}, time.Unix(0, 1), loadgen.DefaultEnvelopeSize},
		}
		var out []loadPayloadVector
		var seeds [][]byte
		for _, c := range cases {
			p := loadgen.Payload{MessageID: c.id, Sent: c.sent}
			enc, err := p.Envelope(c.size)
			if err != nil {
				panic("vectorgen: loadpayload: " + err.Error())
			}
			seeds = append(seeds, enc)
			out = append(out, loadPayloadVector{
				MessageID: hex.EncodeToString(c.id[:]), SentUnixNs: c.sent.UnixNano(), Size: c.size, Encoding: hex.EncodeToString(enc),
			})
		}
		// Near misses: a prekey envelope, a short body, a wrong magic.
		seeds = append(seeds,
			[]byte("\x01\x01\x00\x00\x1cplg1\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"),
			[]byte("\x01\x02\x00\x00\x04plg1"),
			[]byte("\x01\x02\x00\x00\x1cplg2\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"),
		)
		addCorpus("internal/loadgen", "FuzzParsePayload", seeds...)
		addCorpus("internal/loadgen", "FuzzParseMetrics",
			[]byte("# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 2.1479424e+07\n"),
			[]byte("go_memstats_heap_inuse_bytes 4.243456e+06\ngo_goroutines 12\nparleyd_streams 0\n"),
			[]byte("go_gc_duration_seconds{quantile=\"0.5\"} 4.1e-05\ngo_gc_duration_seconds_count 7\n"),
			[]byte("parleyd_streams 3 1700000000000\n"),
			[]byte("go_goroutines NaN\nprocess_resident_memory_bytes +Inf\n"),
			[]byte("go_goroutines\n"),
			[]byte("go_goroutines 1 2 3\n"),
		)
		return out
	})
}
