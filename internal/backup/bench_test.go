package backup

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/parleyim/parley/internal/proccpu"
)

// benchHistory is the benchmark history: 100,000 messages with
// text bodies of 20–400 bytes across 36 contacts, each contact with a
// signed-device-list-sized blob (two devices: about 9.5 KB). The bodies
// lie one after another in one buffer, as rows do when the SDK streams
// them out of its store into the Writer; 100,000 separately allocated
// bodies, cold in the cache, would make the benchmark measure memory
// latency instead.
func benchHistory() *fixture {
	const messages, contacts = 100_000, 36
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the a to and of in it you that is for on was with he as I his they be at one have this from " +
		"or had by hot word but what some we can out other were all there when up use your how said an each she which do " +
		"their time if will way about many then them write would like so these her long make thing see him two has look")
	base := time.Unix(1_700_000_000, 0)
	f := &fixture{header: Header{Username: "alice", Server: "https://parley.example", AccountKey: testAccountKey, Created: base}}
	for i := range contacts {
		list := make([]byte, 9500)
		for j := range list {
			list[j] = byte(rng.Uint32())
		}
		f.contacts = append(f.contacts, Contact{Username: "contact" + string(rune('a'+i%26)) + strings.Repeat("x", i/26),
			DeviceList: list, Verified: i%4 == 0, Added: base})
	}
	f.settings = []Setting{{Name: "backup.auto", Value: []byte("daily")}, {Name: "theme", Value: []byte("dark")}}
	t := base
	arena := make([]byte, 0, messages*400)
	for i := range messages {
		c := f.contacts[rng.IntN(contacts)].Username
		n := 20 + rng.IntN(381)
		start := len(arena)
		for len(arena)-start < n {
			arena = append(arena, words[rng.IntN(len(words))]...)
			arena = append(arena, ' ')
		}
		body := arena[start : start+n : start+n]
		arena = arena[:start+n]
		t = t.Add(time.Duration(rng.IntN(600)) * time.Second)
		m := Message{Conversation: c, Sender: c, Outgoing: rng.IntN(2) == 0, Sent: t, Received: t.Add(time.Second),
			Body: body[:n], State: 5}
		if m.Outgoing {
			m.Sender, m.State = "alice", 3
		}
		m.ID[0], m.ID[1], m.ID[2] = byte(i>>16), byte(i>>8), byte(i)
		m.SenderDevice[0] = byte(rng.IntN(3))
		f.messages = append(f.messages, m)
	}
	return f
}

// BenchmarkBackup measures creating (Writer) and restoring (Reader, every
// record read) a backup of benchHistory, each against its floor in the
// same iteration: age alone encrypting, or decrypting and discarding, the
// same plaintext bytes to the same kind of recipient. The reported ratio
// is floor time / backup time — backup throughput as a fraction of age's
// (goal ≥ 0.8). Each iteration runs the backup and its floor back to back,
// so load from other jobs on the shared machine hits both alike.
func BenchmarkBackup(b *testing.B) {
	f := benchHistory()
	k := NewRecoveryKey()
	id := k.AgeIdentity()
	archive := f.write(b, k)
	plain := decrypt(b, archive, k)
	out := bytes.NewBuffer(make([]byte, 0, len(archive)+1<<20))

	b.Run("create", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		b.ReportAllocs()
		var own, floor, ownCPU, floorCPU time.Duration
		for b.Loop() {
			out.Reset()
			start, startCPU := time.Now(), proccpu.Used()
			w, err := NewWriter(out, k, f.header)
			if err != nil {
				b.Fatal(err)
			}
			for _, c := range f.contacts {
				if err := w.AddContact(c); err != nil {
					b.Fatal(err)
				}
			}
			for _, s := range f.settings {
				if err := w.AddSetting(s); err != nil {
					b.Fatal(err)
				}
			}
			for i := range f.messages {
				if err := w.AddMessage(&f.messages[i]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			mid, midCPU := time.Now(), proccpu.Used()
			out.Reset()
			aw, err := age.Encrypt(out, k.Recipient())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := aw.Write(plain); err != nil {
				b.Fatal(err)
			}
			if err := aw.Close(); err != nil {
				b.Fatal(err)
			}
			own += mid.Sub(start)
			floor += time.Since(mid)
			ownCPU += midCPU - startCPU
			floorCPU += proccpu.Used() - midCPU
		}
		b.ReportMetric(floorCPU.Seconds()/ownCPU.Seconds(), "x-age-encrypt-cpu")
		b.ReportMetric(float64(ownCPU.Nanoseconds())/float64(b.N)/1e6, "own-cpu-ms")
		b.ReportMetric(float64(floorCPU.Nanoseconds())/float64(b.N)/1e6, "age-cpu-ms")
		b.ReportMetric(floor.Seconds()/own.Seconds(), "x-age-encrypt-wall")
		b.ReportMetric(float64(len(f.messages))*float64(b.N)/own.Seconds(), "msgs/s")
	})

	// A restoring device holds no history yet: let the collector have the
	// fixture, so that it does not scan 100,000 messages in every cycle.
	messages := len(f.messages)
	f = nil

	b.Run("restore", func(b *testing.B) {
		b.SetBytes(int64(len(plain)))
		b.ReportAllocs()
		var own, floor, ownCPU, floorCPU time.Duration
		for b.Loop() {
			start, startCPU := time.Now(), proccpu.Used()
			r, err := NewReader(bytes.NewReader(archive), k)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				rec, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				if rec.Kind == KindMessage {
					n++
				}
			}
			if n != messages {
				b.Fatal(n)
			}
			mid, midCPU := time.Now(), proccpu.Used()
			ar, err := age.Decrypt(bytes.NewReader(archive), id)
			if err != nil {
				b.Fatal(err)
			}
			if m, err := io.Copy(io.Discard, ar); err != nil || m != int64(len(plain)) {
				b.Fatal(m, err)
			}
			own += mid.Sub(start)
			floor += time.Since(mid)
			ownCPU += midCPU - startCPU
			floorCPU += proccpu.Used() - midCPU
		}
		b.ReportMetric(floorCPU.Seconds()/ownCPU.Seconds(), "x-age-decrypt-cpu")
		b.ReportMetric(float64(ownCPU.Nanoseconds())/float64(b.N)/1e6, "own-cpu-ms")
		b.ReportMetric(float64(floorCPU.Nanoseconds())/float64(b.N)/1e6, "age-cpu-ms")
		b.ReportMetric(floor.Seconds()/own.Seconds(), "x-age-decrypt-wall")
		b.ReportMetric(float64(messages)*float64(b.N)/own.Seconds(), "msgs/s")
	})
}

// BenchmarkParse reads the plaintext of benchHistory without age: the
// Reader's own cost per record, for profiling.
func BenchmarkParse(b *testing.B) {
	f := benchHistory()
	k := NewRecoveryKey()
	plain := decrypt(b, f.write(b, k), k)
	messages := len(f.messages)
	f = nil // as in BenchmarkBackup/restore
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	startCPU := proccpu.Used()
	for b.Loop() {
		r, err := newPlainReader(bytes.NewReader(plain), nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(messages), "ns/msg")
	b.ReportMetric(float64((proccpu.Used()-startCPU).Nanoseconds())/float64(b.N)/float64(messages), "cpu-ns/msg")
}

type discardCloser struct{}

func (discardCloser) Write(p []byte) (int, error) { return len(p), nil }
func (discardCloser) Close() error                { return nil }

// BenchmarkEncode writes the records of benchHistory without age: the
// Writer's own cost per record, for profiling.
func BenchmarkEncode(b *testing.B) {
	f := benchHistory()
	b.ReportAllocs()
	startCPU := proccpu.Used()
	for b.Loop() {
		w := &Writer{enc: discardCloser{}, buf: make([]byte, 0, 2*flushSize)}
		for i := range f.messages {
			if err := w.AddMessage(&f.messages[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((proccpu.Used()-startCPU).Nanoseconds())/float64(b.N)/float64(len(f.messages)), "cpu-ns/msg")
}
