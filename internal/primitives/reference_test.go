package primitives

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
)

// Cross-checks of the wrappers against independent references: published
// RFC test vectors and the standard library used directly.

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfc5869HKDF is HKDF-SHA256 written out from RFC 5869 §2.2–2.3 with
// crypto/hmac, independent of crypto/hkdf.
func rfc5869HKDF(ikm, salt, info []byte, length int) []byte {
	if len(salt) == 0 {
		salt = make([]byte, sha256.Size)
	}
	ext := hmac.New(sha256.New, salt)
	ext.Write(ikm)
	prk := ext.Sum(nil)
	var okm, prev []byte
	for i := byte(1); len(okm) < length; i++ {
		m := hmac.New(sha256.New, prk)
		m.Write(prev)
		m.Write(info)
		m.Write([]byte{i})
		prev = m.Sum(nil)
		okm = append(okm, prev...)
	}
	return okm[:length]
}

// TestHKDFReferenceRFC5869 checks the test's own HKDF reference (and
// crypto/hkdf) against RFC 5869 Appendix A.1–A.3, the SHA-256 cases.
//
// Parley's HKDF cannot be fed these cases directly: its info is always
// label || 0x00 || context, and none of the RFC's info strings (f0..f9,
// b0..ff, empty) contains a 0x00 byte. TestHKDFEquivalence then ties
// Parley's HKDF to the checked references.
func TestHKDFReferenceRFC5869(t *testing.T) {
	seq := func(from, to byte) []byte {
		var b []byte
		for c := int(from); c <= int(to); c++ {
			b = append(b, byte(c))
		}
		return b
	}
	cases := []struct {
		name            string
		ikm, salt, info []byte
		length          int
		prk, okm        string
	}{
		{
			"A.1", bytes.Repeat([]byte{0x0b}, 22), seq(0x00, 0x0c), seq(0xf0, 0xf9), 42,
			"077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
			"3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
		},
		{
			"A.2", seq(0x00, 0x4f), seq(0x60, 0xaf), seq(0xb0, 0xff), 82,
			"06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
			"b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
		},
		{
			"A.3", bytes.Repeat([]byte{0x0b}, 22), nil, nil, 42,
			"19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
			"8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := unhex(t, c.okm)
			if got := rfc5869HKDF(c.ikm, c.salt, c.info, c.length); !bytes.Equal(got, want) {
				t.Errorf("reference HKDF = %x, want %x", got, want)
			}
			prk, err := hkdf.Extract(sha256.New, c.ikm, c.salt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(prk, unhex(t, c.prk)) {
				t.Errorf("crypto/hkdf PRK = %x, want %s", prk, c.prk)
			}
			got, err := hkdf.Key(sha256.New, c.ikm, c.salt, string(c.info), c.length)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("crypto/hkdf = %x, want %x", got, want)
			}
		})
	}
}

// TestHKDFEquivalence checks that HKDF is RFC 5869 HKDF-SHA256 with
// info = label || 0x00 || context, for every label, against both the
// RFC-checked reference above and crypto/hkdf.
func TestHKDFEquivalence(t *testing.T) {
	secret := []byte("input keying material")
	for _, salt := range [][]byte{nil, {}, []byte("salt"), bytes.Repeat([]byte{7}, 100)} {
		for _, ctx := range [][]byte{nil, []byte("ctx"), bytes.Repeat([]byte{0}, 70)} {
			for _, length := range []int{1, 32, 33, 64, 255 * 32} {
				for _, l := range AllLabels {
					info := append([]byte(string(l)+"\x00"), ctx...)
					got := HKDF(secret, salt, l, ctx, length)
					if ref := rfc5869HKDF(secret, salt, info, length); !bytes.Equal(got, ref) {
						t.Fatalf("HKDF(%q, salt %x, ctx %x, %d) differs from RFC 5869", l, salt, ctx, length)
					}
					ref, err := hkdf.Key(sha256.New, secret, salt, string(info), length)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, ref) {
						t.Fatalf("HKDF(%q) differs from crypto/hkdf", l)
					}
				}
			}
		}
	}
}

// TestMessageKeyIsHKDFExpand checks the hand-unrolled HMAC in MessageKey
// against crypto/hkdf.Expand(sha256.New, seed, label||0x00||salt, 32), for
// salts on both sides of the stack buffer's size.
func TestMessageKeyIsHKDFExpand(t *testing.T) {
	for n := 0; n <= 3*64; n++ {
		var seed [KeySize]byte
		for i := range seed {
			seed[i] = byte(n + i)
		}
		salt := bytes.Repeat([]byte{byte(n)}, n)
		got := MessageKey(&seed, salt)
		want, err := hkdf.Expand(sha256.New, seed[:], string(LabelMessageKey)+"\x00"+string(salt), KeySize)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:], want) {
			t.Fatalf("MessageKey with a %d-byte salt = %x, crypto/hkdf.Expand gives %x", n, got, want)
		}
	}
}

// TestRootKDFIsHKDF checks RootKDF against crypto/hkdf.Key with salt = rk,
// secret = dh || pq, info = LabelRatchetRoot || 0x00, split 32/32.
func TestRootKDFIsHKDF(t *testing.T) {
	for _, pqLen := range []int{0, 32} {
		var rk [KeySize]byte
		copy(rk[:], "root key root key root key root!")
		dh := bytes.Repeat([]byte{0xd1}, 32)
		pq := bytes.Repeat([]byte{0x9c}, pqLen)
		root, chain := RootKDF(&rk, dh, pq)
		want, err := hkdf.Key(sha256.New, append(append([]byte{}, dh...), pq...), rk[:], string(LabelRatchetRoot)+"\x00", 2*KeySize)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root[:], want[:KeySize]) || !bytes.Equal(chain[:], want[KeySize:]) {
			t.Errorf("RootKDF (pq %d bytes) = %x || %x, crypto/hkdf gives %x", pqLen, root, chain, want)
		}
		// The ML-KEM part must matter, and so must the root key.
		if pqLen > 0 {
			r2, c2 := RootKDF(&rk, dh, nil)
			if r2 == root || c2 == chain {
				t.Error("RootKDF ignores the ML-KEM part")
			}
		}
		rk2 := rk
		rk2[0] ^= 1
		if r2, c2 := RootKDF(&rk2, dh, pq); r2 == root || c2 == chain {
			t.Error("RootKDF ignores the root key")
		}
	}
}

// TestChainKDFIsHMAC checks ChainKDF against the Double Ratchet
// specification §5.2: seed = HMAC-SHA256(ck, 0x01), next = HMAC-SHA256(ck, 0x02).
func TestChainKDFIsHMAC(t *testing.T) {
	var ck [KeySize]byte
	copy(ck[:], "chain key chain key chain key ch")
	next, seed := ChainKDF(&ck)
	mac := func(b byte) []byte {
		m := hmac.New(sha256.New, ck[:])
		m.Write([]byte{b})
		return m.Sum(nil)
	}
	if !bytes.Equal(seed[:], mac(0x01)) {
		t.Errorf("ChainKDF seed = %x, want HMAC(ck, 0x01) = %x", seed, mac(0x01))
	}
	if !bytes.Equal(next[:], mac(0x02)) {
		t.Errorf("ChainKDF next = %x, want HMAC(ck, 0x02) = %x", next, mac(0x02))
	}
	if next == seed || next == ck {
		t.Error("ChainKDF outputs are not distinct")
	}
}

// TestHashEncoding checks Hash against its definition, SHA-256 over
// label || 0x00 || (uint32 length || part)*, and that the encoding is
// injective where a naive concatenation is not.
func TestHashEncoding(t *testing.T) {
	l := LabelDeviceFingerprint
	parts := [][]byte{[]byte("ab"), {}, []byte("c")}
	ref := sha256.New()
	ref.Write([]byte(string(l) + "\x00"))
	for _, p := range parts {
		ref.Write([]byte{0, 0, 0, byte(len(p))})
		ref.Write(p)
	}
	got := Hash(l, parts...)
	if !bytes.Equal(got[:], ref.Sum(nil)) {
		t.Errorf("Hash = %x, want %x", got, ref.Sum(nil))
	}
	distinct := [][][]byte{
		nil,
		{{}},
		{{}, {}},
		{[]byte("abc")},
		{[]byte("ab"), []byte("c")},
		{[]byte("a"), []byte("bc")},
		{[]byte("ab"), {}, []byte("c")},
	}
	seen := map[[KeySize]byte]string{}
	for _, ps := range distinct {
		h := Hash(l, ps...)
		name := fmt.Sprintf("%q", ps)
		if prev, ok := seen[h]; ok {
			t.Errorf("Hash collides for %s and %s", prev, name)
		}
		seen[h] = name
	}
	if Hash(LabelSafetyNumber, []byte("x")) == Hash(LabelDeviceListHash, []byte("x")) {
		t.Error("Hash ignores the label")
	}
}

// TestX25519RFC7748 checks X25519 against RFC 7748 §6.1.
func TestX25519RFC7748(t *testing.T) {
	alicePriv := unhex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	alicePub := unhex(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
	bobPriv := unhex(t, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
	bobPub := unhex(t, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
	shared := unhex(t, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

	a, err := NewX25519PrivateKey(alicePriv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewX25519PrivateKey(bobPriv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Public().Bytes(), alicePub) {
		t.Errorf("Alice's public key = %x, want %x", a.Public().Bytes(), alicePub)
	}
	if !bytes.Equal(b.Public().Bytes(), bobPub) {
		t.Errorf("Bob's public key = %x, want %x", b.Public().Bytes(), bobPub)
	}
	pa, err := NewX25519PublicKey(alicePub)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := NewX25519PublicKey(bobPub)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		k    *X25519PrivateKey
		p    *X25519PublicKey
	}{{"Alice", a, pb}, {"Bob", b, pa}} {
		s, err := c.k.ECDH(c.p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(s, shared) {
			t.Errorf("%s's shared secret = %x, want %x", c.name, s, shared)
		}
	}
	if !pa.Equal(a.Public()) || pa.Equal(pb) || pa.Equal(nil) {
		t.Error("X25519PublicKey.Equal is wrong")
	}
}

// TestX25519KeyEncodings checks the size checks of the key parsers.
func TestX25519KeyEncodings(t *testing.T) {
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := NewX25519PrivateKey(make([]byte, n)); err != ErrInvalidKey {
			t.Errorf("NewX25519PrivateKey(%d bytes) = %v, want ErrInvalidKey", n, err)
		}
		if _, err := NewX25519PublicKey(make([]byte, n)); err != ErrInvalidKey {
			t.Errorf("NewX25519PublicKey(%d bytes) = %v, want ErrInvalidKey", n, err)
		}
	}
	k := GenerateX25519()
	k2, err := NewX25519PrivateKey(k.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().Equal(k.Public()) {
		t.Error("private key does not round-trip through Bytes")
	}
}

// TestHMACSHA256 checks the allocation-free HMAC behind RootKDF, ChainKDF
// and MessageKey against crypto/hmac, for every key size it accepts and
// messages on both sides of its stack buffer, split into parts.
func TestHMACSHA256(t *testing.T) {
	msg := make([]byte, 3*hmacStackMsg)
	for i := range msg {
		msg[i] = byte(i*31 + 7)
	}
	for keyLen := 0; keyLen <= sha256BlockSize; keyLen++ {
		key := msg[len(msg)-keyLen:]
		for _, n := range []int{0, 1, 31, 32, 55, 56, 63, 64, 65, hmacStackMsg - 1, hmacStackMsg, hmacStackMsg + 1, len(msg)} {
			m := hmac.New(sha256.New, key)
			m.Write(msg[:n])
			want := m.Sum(nil)
			if got := hmacSHA256(key, msg[:n]); !bytes.Equal(got[:], want) {
				t.Fatalf("hmacSHA256(%d-byte key, %d-byte message) = %x, crypto/hmac gives %x", keyLen, n, got, want)
			}
			if got := hmacSHA256(key, msg[:n/3], nil, msg[n/3:n/2], msg[n/2:n]); !bytes.Equal(got[:], want) {
				t.Fatalf("hmacSHA256 with the %d-byte message in parts differs from crypto/hmac", n)
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("hmacSHA256 accepted a key longer than one block")
		}
	}()
	hmacSHA256(make([]byte, sha256BlockSize+1), nil)
}

// TestRootKDFIsHKDFAnyLength checks RootKDF against crypto/hkdf.Key for
// inputs of every length up to past hmacSHA256's stack buffer.
func TestRootKDFIsHKDFAnyLength(t *testing.T) {
	var rk [KeySize]byte
	copy(rk[:], "another root key, another chain")
	in := bytes.Repeat([]byte{0x5a, 0xa5, 0x00}, 100)
	for n := 0; n <= 2*hmacStackMsg+3; n++ {
		dh, pq := in[:n/2], in[n/2:n]
		root, chain := RootKDF(&rk, dh, pq)
		want, err := hkdf.Key(sha256.New, in[:n], rk[:], string(LabelRatchetRoot)+"\x00", 2*KeySize)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root[:], want[:KeySize]) || !bytes.Equal(chain[:], want[KeySize:]) {
			t.Fatalf("RootKDF with %d input bytes differs from crypto/hkdf", n)
		}
	}
}

// TestKDFsDoNotAllocate keeps the per-message KDFs off the heap (see
// hmacSHA256): the ratchet runs them for every message.
func TestKDFsDoNotAllocate(t *testing.T) {
	var k [KeySize]byte
	dh, pq, salt := make([]byte, 32), make([]byte, 32), make([]byte, 16)
	for name, f := range map[string]func(){
		"RootKDF":         func() { k, _ = RootKDF(&k, dh, nil) },
		"RootKDF with PQ": func() { k, _ = RootKDF(&k, dh, pq) },
		"ChainKDF":        func() { k, _ = ChainKDF(&k) },
		"MessageKey":      func() { k = MessageKey(&k, salt) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}
