package wire

import (
	"bytes"
	"errors"
	"math/bits"
	"testing"
)

// body returns a body of n bytes whose last byte cycles through every
// value as n grows, so bodies ending in 0x00 and 0x80 (the bytes the
// padding scan looks for) are covered.
func body(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

// padmeSpec is Padmé stated the way the spec and the paper state it, as a
// predicate: P is the padded length for L = n+1 iff P ≥ L, the low E-S bits
// of P are zero (E = ⌊log2 L⌋, S = ⌊log2 E⌋+1), and no smaller such value
// is ≥ L.
func padmeSpec(t *testing.T, n, p int) {
	t.Helper()
	l := n + 1
	if l <= MinPaddedSize {
		if p != MinPaddedSize {
			t.Fatalf("PaddedSize(%d) = %d, want MinPaddedSize %d", n, p, MinPaddedSize)
		}
		return
	}
	e := bits.Len(uint(l)) - 1
	s := bits.Len(uint(e))
	step := 1 << (e - s)
	if p < l || p%step != 0 || p-step >= l {
		t.Fatalf("PaddedSize(%d) = %d is not Padmé(%d) (step %d)", n, p, l, step)
	}
}

// TestPaddingEveryLength checks Pad, Unpad and PaddedSize for every body
// length 0..70000 and a sample up to MaxPlaintextSize.
func TestPaddingEveryLength(t *testing.T) {
	lengths := make([]int, 0, 70001+1000)
	for n := 0; n <= 70000; n++ {
		lengths = append(lengths, n)
	}
	for n := 70001; n <= MaxPlaintextSize; n += 193 {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, MaxPlaintextSize-1, MaxPlaintextSize)

	src := body(MaxPlaintextSize)
	zeros := make([]byte, PaddedSize(MaxPlaintextSize))
	var buf []byte
	prev := 0
	for _, n := range lengths {
		b := src[:n]
		p := PaddedSize(n)
		padmeSpec(t, n, p)
		if p < MinPaddedSize {
			t.Fatalf("PaddedSize(%d) = %d < MinPaddedSize", n, p)
		}
		if p <= n {
			t.Fatalf("PaddedSize(%d) = %d leaves no room for the 0x80 marker", n, p)
		}
		if p < prev {
			t.Fatalf("PaddedSize is not monotonic: PaddedSize(%d) = %d < %d", n, p, prev)
		}
		prev = p
		if l := n + 1; l > MinPaddedSize && float64(p) > 1.12*float64(l) {
			t.Fatalf("PaddedSize(%d) = %d: overhead %.1f%% over 12%%", n, p, 100*float64(p-l)/float64(l))
		}

		var err error
		buf, err = Pad(buf[:0], b)
		if err != nil {
			t.Fatalf("Pad(%d bytes): %v", n, err)
		}
		if len(buf) != p {
			t.Fatalf("Pad(%d bytes) gave %d bytes, want PaddedSize %d", n, len(buf), p)
		}
		if !bytes.Equal(buf[:n], b) || buf[n] != 0x80 {
			t.Fatalf("Pad(%d bytes) is not body || 0x80 || zeros", n)
		}
		if !bytes.Equal(buf[n+1:], zeros[:p-n-1]) {
			t.Fatalf("Pad(%d bytes): non-zero byte in the padding", n)
		}
		got, err := Unpad(buf)
		if err != nil {
			t.Fatalf("Unpad(Pad(%d bytes)): %v", n, err)
		}
		// buf[:n] is already known to equal the body; Unpad must return
		// exactly that prefix (it aliases its input).
		if len(got) != n || (n > 0 && &got[0] != &buf[0]) {
			t.Fatalf("Unpad(Pad(%d bytes)) returned %d bytes, not the body", n, len(got))
		}
	}
}

// TestPadSpecTable checks the example rows of docs/protocol.md §7.3.
func TestPadSpecTable(t *testing.T) {
	for _, c := range []struct{ body, padded int }{
		{0, 256}, {255, 256}, {256, 272}, {1023, 1024}, {1024, 1088}, {4096, 4352}, {65536, 67584},
	} {
		if got := PaddedSize(c.body); got != c.padded {
			t.Errorf("PaddedSize(%d) = %d, docs/protocol.md §7.3 says %d", c.body, got, c.padded)
		}
	}
}

// TestPadAppends checks that Pad appends to dst.
func TestPadAppends(t *testing.T) {
	out, err := Pad([]byte("prefix"), []byte("body"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte("prefixbody\x80")) || len(out) != len("prefix")+MinPaddedSize {
		t.Errorf("Pad did not append: %q", out[:16])
	}
}

// TestPadTooLarge: bodies over MaxPlaintextSize are attachments, not
// messages.
func TestPadTooLarge(t *testing.T) {
	for _, n := range []int{MaxPlaintextSize + 1, MaxPlaintextSize + 4096, 2 * MaxPlaintextSize} {
		out, err := Pad(nil, make([]byte, n))
		if !errors.Is(err, ErrPlaintextTooLarge) {
			t.Errorf("Pad(%d bytes) = %v, want ErrPlaintextTooLarge", n, err)
		}
		if out != nil {
			t.Errorf("Pad(%d bytes) returned output with its error", n)
		}
	}
	if _, err := Pad(nil, make([]byte, MaxPlaintextSize)); err != nil {
		t.Errorf("Pad(MaxPlaintextSize bytes) = %v", err)
	}
}

// TestUnpadRejectsNonCanonical: unpadding accepts exactly the outputs of
// Pad. Anything else — a wrong bucket, garbage after the marker, no
// marker — is malformed, so that padding cannot carry a covert channel and
// every accepted plaintext has one encoding.
func TestUnpadRejectsNonCanonical(t *testing.T) {
	good, err := Pad(nil, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tooBig := make([]byte, PaddedSize(MaxPlaintextSize+1))
	for i := range MaxPlaintextSize + 1 {
		tooBig[i] = 'a'
	}
	tooBig[MaxPlaintextSize+1] = 0x80
	cases := map[string][]byte{
		"empty":                           nil,
		"all zeros":                       make([]byte, MinPaddedSize),
		"all zeros, large":                make([]byte, 4096),
		"no 0x80":                         bytes.Repeat([]byte{'a'}, MinPaddedSize),
		"only 0x80 then nothing":          {0x80},
		"short of the bucket by one":      good[:len(good)-1],
		"past the bucket by one zero":     append(bytes.Clone(good), 0),
		"next bucket's length":            append(bytes.Clone(good), make([]byte, 16)...),
		"non-zero last byte":              mod(func(b []byte) []byte { b[len(b)-1] = 1; return b }),
		"non-zero byte after 0x80":        mod(func(b []byte) []byte { b[6] = 0xff; return b }),
		"marker replaced by zero":         mod(func(b []byte) []byte { b[5] = 0; return b }),
		"marker replaced by 0x01":         mod(func(b []byte) []byte { b[5] = 1; return b }),
		"unpadded body with marker":       []byte("hello\x80"),
		"300-byte body in a 512 bucket":   append(append(bytes.Repeat([]byte{'a'}, 300), 0x80), make([]byte, 211)...),
		"body one past MaxPlaintextSize":  tooBig,
		"bucket-sized, marker at the end": append(bytes.Repeat([]byte{'a'}, MinPaddedSize-1), 0x80)[:MinPaddedSize-1],
	}
	for name, p := range cases {
		got, err := Unpad(p)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Unpad = %d bytes, %v; want ErrMalformed", name, len(got), err)
		}
		var de *DecodeError
		if !errors.As(err, &de) || de.Type != "padding" {
			t.Errorf("%s: error %v is not a padding DecodeError", name, err)
		}
		if err != nil && got != nil {
			t.Errorf("%s: Unpad returned a body with its error", name)
		}
	}
	// A 0x80 as the last byte is the marker of a longer body, which is
	// canonical: it is the body "hello" || 0x80 || zeros, padded.
	alt := mod(func(b []byte) []byte { b[len(b)-1] = 0x80; return b })
	if b, err := Unpad(alt); err != nil || !bytes.Equal(b, good[:len(good)-1]) {
		t.Errorf("Unpad with the marker last = %d bytes, %v", len(b), err)
	}
	// The marker as the last byte of a bucket is canonical.
	last := append(bytes.Repeat([]byte{'a'}, MinPaddedSize-1), 0x80)
	if b, err := Unpad(last); err != nil || len(b) != MinPaddedSize-1 {
		t.Errorf("Unpad of a full bucket = %d bytes, %v", len(b), err)
	}
}
