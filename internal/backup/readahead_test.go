package backup

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// settleGoroutines waits until the number of goroutines is at most want:
// a goroutine that has sent its last value may still be finishing.
func settleGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// countingReader counts the Read calls that reach the archive.
type countingReader struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p)
}

// bigArchive is an archive of several read-ahead slabs (about 3.5 MiB of
// plaintext).
func bigArchive(t *testing.T, k RecoveryKey) (*fixture, []byte) {
	f := newFixture(9000, 400)
	return f, f.write(t, k)
}

// TestReaderDroppedMidStreamLeaksNothing: a caller that stops reading and
// forgets the Reader (no Close) leaves no goroutine behind.
func TestReaderDroppedMidStreamLeaksNothing(t *testing.T) {
	k := NewRecoveryKey()
	_, archive := bigArchive(t, k)
	before := runtime.NumGoroutine()
	for range 20 {
		r, err := NewReader(bytes.NewReader(archive), k)
		if err != nil {
			t.Fatal(err)
		}
		for range 3000 { // into the second slab
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}
	}
	settleGoroutines(t, before)
}

// TestReaderCloseStopsReading: after Close returns, the source is no
// longer read and no goroutine is left; Next then fails, Close again is a
// no-op, and records returned before Close stay intact.
func TestReaderCloseStopsReading(t *testing.T) {
	k := NewRecoveryKey()
	f, archive := bigArchive(t, k)
	before := runtime.NumGoroutine()
	src := &countingReader{r: bytes.NewReader(archive)}
	r, err := NewReader(src, k)
	if err != nil {
		t.Fatal(err)
	}
	var kept []Message
	for len(kept) < 2500 {
		rec, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == KindMessage {
			kept = append(kept, rec.Message)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	reads := src.reads.Load()
	settleGoroutines(t, before)
	time.Sleep(20 * time.Millisecond)
	if n := src.reads.Load(); n != reads {
		t.Fatalf("%d reads of the source after Close returned", n-reads)
	}
	if _, err := r.Next(); err == nil || err == io.EOF {
		t.Fatalf("Next after Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for i, m := range kept {
		if !bytes.Equal(m.Body, f.messages[i].Body) || m.ID != f.messages[i].ID {
			t.Fatalf("message %d changed after Close", i)
		}
	}
}

// TestReaderCloseAfterEOF: Close after the whole archive was read keeps
// Next's answer io.EOF.
func TestReaderCloseAfterEOF(t *testing.T) {
	k := NewRecoveryKey()
	f, archive := bigArchive(t, k)
	before := runtime.NumGoroutine()
	r, err := NewReader(bytes.NewReader(archive), k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := drain(r)
	if err != nil {
		t.Fatal(err)
	}
	if d := f.diff(got); d != "" {
		t.Fatal(d)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next after the end and Close: %v", err)
	}
	settleGoroutines(t, before)
}

// TestReaderErrorsLeakNothing: a truncated, a tampered and a failing
// archive each fail as before (ErrTruncated, ErrTampered, the read error)
// and leave no goroutine, with or without Close.
func TestReaderErrorsLeakNothing(t *testing.T) {
	k := NewRecoveryKey()
	_, archive := bigArchive(t, k)
	before := runtime.NumGoroutine()
	tampered := bytes.Clone(archive)
	tampered[len(tampered)/2] ^= 1
	cases := []struct {
		name string
		src  func() io.Reader
		want error
	}{
		{"truncated", func() io.Reader { return bytes.NewReader(archive[:len(archive)*2/3]) }, ErrTruncated},
		{"tampered", func() io.Reader { return bytes.NewReader(tampered) }, ErrTampered},
		{"failing", func() io.Reader { return &failingReader{r: bytes.NewReader(archive), n: len(archive) / 2} }, errNetwork},
	}
	for _, c := range cases {
		for _, close := range []bool{false, true} {
			r, err := NewReader(c.src(), k)
			if err != nil {
				t.Fatal(err)
			}
			_, err = drain(r)
			if !errors.Is(err, c.want) {
				t.Fatalf("%s: %v, want %v", c.name, err, c.want)
			}
			if close {
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if _, again := r.Next(); again != err {
				t.Fatalf("%s: the error is not sticky: %v, then %v", c.name, err, again)
			}
		}
	}
	settleGoroutines(t, before)
}

// TestRecordsAcrossSlabs: records cross the pieces the read-ahead reads
// at every offset that bodies of 200 KB, of the largest size, and of a few
// KB produce, and every body read is intact after the whole archive was
// read.
func TestRecordsAcrossSlabs(t *testing.T) {
	k := NewRecoveryKey()
	for _, size := range []int{200_000, MaxBodySize - 6, 4093} {
		f := newFixture(max(40, 3*pieceSize/size), size)
		got, err := readAll(bytes.NewReader(f.write(t, k)), k)
		if err != nil {
			t.Fatalf("bodies of %d bytes: %v", size, err)
		}
		if d := f.diff(got); d != "" {
			t.Fatalf("bodies of %d bytes: %s", size, d)
		}
	}
}

// TestLargestRecordAcrossPieces: a record of MaxRecordSize, longer than a
// piece of the read-ahead, is joined from the pieces it spans and parsed
// (here refused as a message whose fields do not fill it), at several
// offsets from the start of a piece.
func TestLargestRecordAcrossPieces(t *testing.T) {
	k := NewRecoveryKey()
	pt := decrypt(t, newFixture(0, 0).write(t, k), k)
	trailerAt := len(pt) - recordHeaderSize - trailerSize
	n := MaxRecordSize
	for _, pad := range []int{0, 1, 40_000} {
		mod := bytes.Clone(pt[:trailerAt])
		if pad > 0 {
			// A setting record first, to move the big record's start.
			mod = appendSetting(mod, &Setting{Name: "pad", Value: make([]byte, pad)})
		}
		mod = append(mod, byte(KindMessage), byte(n>>16), byte(n>>8), byte(n))
		mod = append(mod, make([]byte, n)...)
		_, err := readAll(bytes.NewReader(encrypt(t, mod, k)), k)
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "message record") {
			t.Fatalf("pad %d: %v", pad, err)
		}
	}
}
