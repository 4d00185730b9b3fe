package handshake_test

import (
	"testing"

	"github.com/parleyim/parley/internal/handshake"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
)

// BenchmarkEstablish measures one complete session establishment, both
// sides, against the cost of the cryptography it cannot avoid:
//
//   - parley: Initiate (which verifies the bundle's three signatures) and
//     Respond, and Consume of the one-time prekeys, against bundles with a
//     one-time X25519 and a one-time ML-KEM prekey;
//   - parley-lastresort: the same against the last-resort bundle, with its
//     replay record growing as it would on a busy device;
//   - floor: the primitives alone: 3 hybrid signature verifications, an
//     X25519 key generation, 4 X25519 exchanges on each side, one ML-KEM-1024
//     encapsulation and decapsulation, and one HKDF on each side;
//   - floor-lastresort: the same for a bundle without a one-time X25519
//     prekey (2 verifications, 3 exchanges on each side), the floor of
//     parley-lastresort.
//
// The parley/floor ratio is the overhead of the package's own code:
// encodings, hashing the transcript and the fingerprints, lookups.
func BenchmarkEstablish(b *testing.B) {
	b.Run("parley", func(b *testing.B) {
		alice, bob := newDevice(b, 0), newDevice(b, prekey.MaxOneTimePrekeys)
		// Consume uses up one-time prekeys; restoring the set from its
		// encoding (outside the timer) brings the same keys back, so the
		// bundles stay valid.
		enc := bob.set.Marshal()
		bundles := make([]*prekey.Bundle, prekey.MaxOneTimePrekeys)
		for i := range bundles {
			bundles[i] = bob.bundle(i, i)
		}
		set := bob.set
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := i % len(bundles)
			if k == 0 && i > 0 {
				b.StopTimer()
				var err error
				if set, err = prekey.UnmarshalSet(enc); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			establish(b, alice, bob, set, bundles[k])
		}
	})
	b.Run("parley-lastresort", func(b *testing.B) {
		alice, bob := newDevice(b, 0), newDevice(b, 0)
		bundle := bob.bundle(-1, -1)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			establish(b, alice, bob, bob.set, bundle)
		}
	})
	for _, oneTime := range []bool{true, false} {
		name := "floor"
		if !oneTime {
			name = "floor-lastresort"
		}
		b.Run(name, func(b *testing.B) {
			f := newFloor()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f.run(b, oneTime)
			}
		})
	}
}

func establish(b *testing.B, alice, bob *device, set *prekey.Set, bundle *prekey.Bundle) {
	ini, err := handshake.Initiate(alice.keys, bob.pub, bundle)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := handshake.Respond(bob.keys, set, alice.pub, ini.Header)
	if err != nil {
		b.Fatal(err)
	}
	set.Consume(resp.Prekeys)
	if resp.SharedSecret != ini.SharedSecret {
		b.Fatal("secrets differ")
	}
}

// floor holds the keys of a handshake as bare primitives.
type floor struct {
	signer           *primitives.SigningPublicKey
	msgs, sigs       [3][]byte
	ikA, ikB         *primitives.X25519PrivateKey
	spk, opk         *primitives.X25519PrivateKey
	ikAPub, ikBPub   *primitives.X25519PublicKey
	spkPub, opkPub   *primitives.X25519PublicKey
	pq               *primitives.MLKEM1024PrivateKey
	pqPub            *primitives.MLKEM1024PublicKey
	transcriptDigest [32]byte
}

func newFloor() *floor {
	sk := primitives.GenerateSigningKey()
	f := &floor{signer: sk.Public()}
	f.ikA, f.ikB = primitives.GenerateX25519(), primitives.GenerateX25519()
	f.spk, f.opk = primitives.GenerateX25519(), primitives.GenerateX25519()
	f.ikAPub, f.ikBPub, f.spkPub, f.opkPub = f.ikA.Public(), f.ikB.Public(), f.spk.Public(), f.opk.Public()
	f.pq = primitives.GenerateMLKEM1024()
	// Parse the public key as the initiator would from a bundle.
	pub, err := primitives.NewMLKEM1024PublicKey(f.pq.Public().Bytes())
	if err != nil {
		panic(err)
	}
	f.pqPub = pub
	// Statements of the sizes the prekey signatures cover.
	f.msgs = [3][]byte{append(make([]byte, 5), f.spkPub.Bytes()...), append(make([]byte, 5), f.opkPub.Bytes()...), append(make([]byte, 5), pub.Bytes()...)}
	for i, m := range f.msgs {
		f.sigs[i] = sk.Sign(primitives.LabelSigPrekey, m)
	}
	return f
}

func (f *floor) run(b *testing.B, oneTime bool) {
	type pair struct {
		k *primitives.X25519PrivateKey
		p *primitives.X25519PublicKey
	}
	n := 3
	if !oneTime {
		n = 2
	}
	// Initiator.
	verify := []int{0, 1, 2} // signed, one-time, ML-KEM prekey statements
	if !oneTime {
		verify = []int{0, 2}
	}
	for _, i := range verify {
		if err := f.signer.Verify(primitives.LabelSigPrekey, f.msgs[i], f.sigs[i]); err != nil {
			b.Fatal(err)
		}
	}
	eph := primitives.GenerateX25519()
	ephPub := eph.Public()
	ss, ct := f.pqPub.Encapsulate()
	ikm := make([]byte, 0, 32+4*32+32)
	ikm = append(ikm, make([]byte, 32)...)
	for _, p := range []pair{{f.ikA, f.spkPub}, {eph, f.ikBPub}, {eph, f.spkPub}, {eph, f.opkPub}}[:n+1] {
		d, err := p.k.ECDH(p.p)
		if err != nil {
			b.Fatal(err)
		}
		ikm = append(ikm, d...)
	}
	ikm = append(ikm, ss...)
	skA := primitives.HKDF(ikm, nil, primitives.LabelPQXDH, f.transcriptDigest[:], primitives.KeySize)

	// Responder.
	ss2, err := f.pq.Decapsulate(ct)
	if err != nil {
		b.Fatal(err)
	}
	ikm2 := make([]byte, 0, 32+4*32+32)
	ikm2 = append(ikm2, make([]byte, 32)...)
	for _, p := range []pair{{f.spk, f.ikAPub}, {f.ikB, ephPub}, {f.spk, ephPub}, {f.opk, ephPub}}[:n+1] {
		d, err := p.k.ECDH(p.p)
		if err != nil {
			b.Fatal(err)
		}
		ikm2 = append(ikm2, d...)
	}
	ikm2 = append(ikm2, ss2...)
	skB := primitives.HKDF(ikm2, nil, primitives.LabelPQXDH, f.transcriptDigest[:], primitives.KeySize)
	if !primitives.Equal(skA, skB) {
		b.Fatal("secrets differ")
	}
}
