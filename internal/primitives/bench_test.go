package primitives

import "testing"

// Benchmarks of each primitive on its own: the floors that the ratchet,
// handshake and session benchmarks are reported against. Run with
//
//	go test -run x -bench . -benchmem -count 6 ./internal/primitives

// Sinks keep results alive so the compiler cannot drop the work. They are
// typed: assigning a slice or array to an interface would allocate and
// show up in the allocation counts.
var (
	sink      any // pointers only
	bytesSink []byte
	hashSink  [KeySize]byte
)

func BenchmarkX25519Keygen(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = GenerateX25519()
	}
}

func BenchmarkX25519ECDH(b *testing.B) {
	k, peer := GenerateX25519(), GenerateX25519().Public()
	b.ReportAllocs()
	for b.Loop() {
		s, err := k.ECDH(peer)
		if err != nil {
			b.Fatal(err)
		}
		bytesSink = s
	}
}

func BenchmarkMLKEM768Keygen(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = GenerateMLKEM768()
	}
}

func BenchmarkMLKEM768Encaps(b *testing.B) {
	pub := GenerateMLKEM768().Public()
	b.ReportAllocs()
	for b.Loop() {
		ss, ct := pub.Encapsulate()
		bytesSink, bytesSink = ss, ct
	}
}

func BenchmarkMLKEM768Decaps(b *testing.B) {
	k := GenerateMLKEM768()
	_, ct := k.Public().Encapsulate()
	b.ReportAllocs()
	for b.Loop() {
		ss, err := k.Decapsulate(ct)
		if err != nil {
			b.Fatal(err)
		}
		bytesSink = ss
	}
}

func BenchmarkMLKEM1024Keygen(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = GenerateMLKEM1024()
	}
}

func BenchmarkMLKEM1024Encaps(b *testing.B) {
	pub := GenerateMLKEM1024().Public()
	b.ReportAllocs()
	for b.Loop() {
		ss, ct := pub.Encapsulate()
		bytesSink, bytesSink = ss, ct
	}
}

func BenchmarkMLKEM1024Decaps(b *testing.B) {
	k := GenerateMLKEM1024()
	_, ct := k.Public().Encapsulate()
	b.ReportAllocs()
	for b.Loop() {
		ss, err := k.Decapsulate(ct)
		if err != nil {
			b.Fatal(err)
		}
		bytesSink = ss
	}
}

// benchStatement is the size of a prekey statement (kind, id, key).
var benchStatement = make([]byte, 1+4+32)

func BenchmarkHybridSign(b *testing.B) {
	k := GenerateSigningKey()
	b.ReportAllocs()
	for b.Loop() {
		bytesSink = k.Sign(LabelSigPrekey, benchStatement)
	}
}

func BenchmarkHybridVerify(b *testing.B) {
	k := GenerateSigningKey()
	sig := k.Sign(LabelSigPrekey, benchStatement)
	pub := k.Public()
	b.ReportAllocs()
	for b.Loop() {
		if err := pub.Verify(LabelSigPrekey, benchStatement, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRootKDF(b *testing.B) {
	var rk [KeySize]byte
	dh := make([]byte, X25519KeySize)
	b.ReportAllocs()
	for b.Loop() {
		rk, _ = RootKDF(&rk, dh, nil)
	}
}

func BenchmarkRootKDFWithPQ(b *testing.B) {
	var rk [KeySize]byte
	dh := make([]byte, X25519KeySize)
	pq := make([]byte, MLKEMSharedKeySize)
	b.ReportAllocs()
	for b.Loop() {
		rk, _ = RootKDF(&rk, dh, pq)
	}
}

func BenchmarkChainKDF(b *testing.B) {
	var ck [KeySize]byte
	b.ReportAllocs()
	for b.Loop() {
		ck, _ = ChainKDF(&ck)
	}
}

func BenchmarkMessageKey(b *testing.B) {
	var seed [KeySize]byte
	salt := make([]byte, 16) // the ratchet's per-message salt
	b.ReportAllocs()
	for b.Loop() {
		seed = MessageKey(&seed, salt)
	}
}

func BenchmarkSealSingleUse1KiB(b *testing.B) {
	var key [AEADKeySize]byte
	pt := make([]byte, 1024)
	ad := make([]byte, 64)
	dst := make([]byte, 0, len(pt)+AEADOverhead)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		dst = SealSingleUse(&key, dst[:0], pt, ad)
	}
}

func BenchmarkOpenSingleUse1KiB(b *testing.B) {
	var key [AEADKeySize]byte
	pt := make([]byte, 1024)
	ad := make([]byte, 64)
	ct := SealSingleUse(&key, nil, pt, ad)
	dst := make([]byte, 0, len(pt))
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = OpenSingleUse(&key, dst[:0], ct, ad)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	part := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		hashSink = Hash(LabelDeviceFingerprint, part, part)
	}
}

func BenchmarkHKDF(b *testing.B) {
	secret, context := make([]byte, 4*32+32), make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		bytesSink = HKDF(secret, nil, LabelPQXDH, context, KeySize)
	}
}
