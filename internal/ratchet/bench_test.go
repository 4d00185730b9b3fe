package ratchet

import (
	"testing"

	"github.com/parleyim/parley/internal/primitives"
)

// The benchmarks put the ratchet beside a floor measured in the same run:
// the primitive operations the protocol cannot avoid, with no state, no
// encoding and no checks. Compare with
//
//	go test -run x -bench . -benchmem -count 6 ./internal/ratchet > b.txt
//	benchstat -col /impl b.txt

const benchSize = 1024

// BenchmarkPingPong: the direction flips every message, so every message is
// a DH ratchet step; the default PQ policy runs (a re-key every ~50
// messages). One op is one Encrypt plus one Decrypt.
func BenchmarkPingPong(b *testing.B) {
	pt := make([]byte, benchSize)
	b.Run("impl=ratchet", func(b *testing.B) {
		x, y := newPair(b, nil, nil)
		m, _ := x.Encrypt(pt, t0)
		if _, err := y.Decrypt(m, t0); err != nil {
			b.Fatal(err)
		}
		from, to := y, x
		b.SetBytes(benchSize)
		b.ReportAllocs()
		for b.Loop() {
			m, err := from.Encrypt(pt, t0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := to.Decrypt(m, t0); err != nil {
				b.Fatal(err)
			}
			from, to = to, from
		}
	})
	// floor: 2 X25519 key generations + 2 DH + 2 RootKDF + ChainKDF and
	// MessageKey on each side + seal and open, as set as the goal.
	b.Run("impl=floor", func(b *testing.B) { pingPongFloor(b, pt, 2) })
	// floor-tight: what the Double Ratchet needs per message, 1 key
	// generation + 2 DH, with the same KDF and AEAD work.
	b.Run("impl=floor-tight", func(b *testing.B) { pingPongFloor(b, pt, 1) })
}

func pingPongFloor(b *testing.B, pt []byte, keygens int) {
	peer := primitives.GenerateX25519().Public()
	ad := make([]byte, 64+headerBaseSize)
	salt := make([]byte, SaltSize)
	var rk, ck [32]byte
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		var k *primitives.X25519PrivateKey
		for range keygens {
			k = primitives.GenerateX25519()
			_ = k.Public().Bytes()
		}
		dh1, _ := k.ECDH(peer)
		dh2, _ := k.ECDH(peer)
		rk, ck = primitives.RootKDF(&rk, dh1, nil)
		rk, _ = primitives.RootKDF(&rk, dh2, nil)
		_, s1 := primitives.ChainKDF(&ck)
		k1 := primitives.MessageKey(&s1, salt)
		_, s2 := primitives.ChainKDF(&ck)
		k2 := primitives.MessageKey(&s2, salt)
		ct := primitives.SealSingleUse(&k1, nil, pt, ad)
		if _, err := primitives.OpenSingleUse(&k2, nil, ct, ad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOneWay: one party sends, the other receives, in order; only the
// symmetric chains turn.
func BenchmarkOneWay(b *testing.B) {
	pt := make([]byte, benchSize)
	b.Run("impl=ratchet", func(b *testing.B) {
		x, y := newPair(b, nil, nil)
		b.SetBytes(benchSize)
		b.ReportAllocs()
		for b.Loop() {
			m, err := x.Encrypt(pt, t0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := y.Decrypt(m, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
	// floor: ChainKDF + MessageKey on each side + seal and open.
	b.Run("impl=floor", func(b *testing.B) {
		ad := make([]byte, 64+headerBaseSize)
		salt := make([]byte, SaltSize)
		var cks, ckr [32]byte
		b.SetBytes(benchSize)
		b.ReportAllocs()
		for b.Loop() {
			var s1, s2 [32]byte
			cks, s1 = primitives.ChainKDF(&cks)
			k1 := primitives.MessageKey(&s1, salt)
			ckr, s2 = primitives.ChainKDF(&ckr)
			k2 := primitives.MessageKey(&s2, salt)
			ct := primitives.SealSingleUse(&k1, nil, pt, ad)
			if _, err := primitives.OpenSingleUse(&k2, nil, ct, ad); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPQBandwidth measures what the ratchet adds to each message (header,
// length prefix and AEAD tag: encoded length minus plaintext length) at the
// default PQ policy, for a strict ping-pong and for one-way bursts. The
// figures go into docs/protocol.md §5.4.
func TestPQBandwidth(t *testing.T) {
	messages := 3000
	if testing.Short() {
		messages = 600
	}
	for _, burst := range []int{1, 5, 10, 25, 50, 100} {
		a, b := newPair(t, nil, nil)
		from, to := a, b
		var overhead, pqMsgs int
		for i := 0; i < messages; i++ {
			if i > 0 && i%burst == 0 {
				from, to = to, from
			}
			m, err := from.Encrypt(nil, t0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := to.Decrypt(m, t0); err != nil {
				t.Fatal(err)
			}
			overhead += len(m)
			if m[1] != 0 {
				pqMsgs++
			}
		}
		base := headerBaseSize + 3 + primitives.AEADOverhead
		avg := float64(overhead) / float64(messages)
		t.Logf("bursts of %3d: %7.1f bytes/message on average (%d without PQ fields, +%.1f); %.1f%% of messages carry PQ fields",
			burst, avg, base, avg-float64(base), 100*float64(pqMsgs)/float64(messages))
		if burst == 1 && avg > float64(base)+100 {
			t.Errorf("ping-pong PQ overhead %.1f bytes/message: the policy is not doing what §5.4 says", avg-float64(base))
		}
	}
}
