package primitives

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// Tests named after the attack each one stops.

// TestLowOrderPointRejected: a peer that sends a low-order X25519 point
// forces the shared secret to zero, which would make the session key
// predictable. RFC 7748 §6.1 says to check for the all-zero output; each
// point below is one of the canonical low-order u-coordinates (0, 1, the
// two points of order 8, p-1, p, p+1) and the same values with bit 255
// set, which RFC 7748 §5 masks off.
func TestLowOrderPointRejected(t *testing.T) {
	points := []string{
		"0000000000000000000000000000000000000000000000000000000000000000", // 0 (order 4)
		"0100000000000000000000000000000000000000000000000000000000000000", // 1 (order 1)
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p-1 (order 2)
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p ≡ 0
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p+1 ≡ 1
	}
	keys := []*X25519PrivateKey{GenerateX25519(), GenerateX25519()}
	exchanged := 0
	for _, p := range points {
		for _, highBit := range []bool{false, true} {
			b := unhex(t, p)
			if highBit {
				b[31] |= 0x80
			}
			pub, err := NewX25519PublicKey(b)
			if err != nil {
				// Refusing the encoding outright would also be safe.
				if err != ErrInvalidKey {
					t.Errorf("NewX25519PublicKey(%x) = %v, want ErrInvalidKey or acceptance", b, err)
				}
				continue
			}
			for _, k := range keys {
				exchanged++
				s, err := k.ECDH(pub)
				if !errors.Is(err, ErrLowOrderPoint) {
					t.Errorf("ECDH with low-order point %x = %x, %v; want ErrLowOrderPoint", b, s, err)
				}
				if s != nil {
					t.Errorf("ECDH with low-order point %x returned a secret %x", b, s)
				}
			}
		}
	}
	if exchanged == 0 {
		t.Fatal("every low-order point was refused at parsing; the ECDH check never ran")
	}
	// A real peer key still works.
	if _, err := keys[0].ECDH(keys[1].Public()); err != nil {
		t.Errorf("ECDH with a valid key: %v", err)
	}
}

// hybridParts builds the component keys of a hybrid key from its seed with
// the reference libraries, so that tests can forge single components.
func hybridParts(t *testing.T, k *SigningKey) (ed25519.PrivateKey, *mldsa65.PrivateKey) {
	t.Helper()
	seed := k.Seed()
	var ms [mldsa65.SeedSize]byte
	copy(ms[:], seed[ed25519.SeedSize:])
	_, ml := mldsa65.NewKeyFromSeed(&ms)
	return ed25519.NewKeyFromSeed(seed[:ed25519.SeedSize]), ml
}

func mldsaSign(t *testing.T, k *mldsa65.PrivateKey, m, ctx []byte) []byte {
	t.Helper()
	sig := make([]byte, mldsa65.SignatureSize)
	if err := mldsa65.SignTo(k, m, ctx, false, sig); err != nil {
		t.Fatal(err)
	}
	return sig
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}

// TestSignatureRequiresBothComponents: the hybrid must stay secure while
// either algorithm does, so breaking one half (a forged Ed25519 signature
// after a quantum computer, or a forged ML-DSA signature after a
// cryptanalytic break) must not be enough.
func TestSignatureRequiresBothComponents(t *testing.T) {
	k := GenerateSigningKey()
	other := GenerateSigningKey()
	label, msg := LabelSigPrekey, []byte("prekey bytes")
	sig := k.Sign(label, msg)
	if err := k.Public().Verify(label, msg, sig); err != nil {
		t.Fatalf("valid signature: %v", err)
	}
	if len(sig) != SignatureSize {
		t.Fatalf("signature is %d bytes, want %d", len(sig), SignatureSize)
	}

	edKey, mlKey := hybridParts(t, k)
	m := hybridMessage(label, msg)
	ctx := []byte("Parley-v1")
	// Building a signature by hand from the reference libraries verifies:
	// the framing is what the spec says.
	manual := append(ed25519.Sign(edKey, m), mldsaSign(t, mlKey, m, ctx)...)
	if err := k.Public().Verify(label, msg, manual); err != nil {
		t.Fatalf("hand-built hybrid signature: %v", err)
	}

	otherSig := other.Sign(label, msg)
	edOnly := sig[:ed25519.SignatureSize]
	mlOnly := sig[ed25519.SignatureSize:]
	bad := map[string][]byte{
		"Ed25519 half altered (first byte)":    flip(sig, 0),
		"Ed25519 half altered (last byte)":     flip(sig, ed25519.SignatureSize-1),
		"ML-DSA half altered (first byte)":     flip(sig, ed25519.SignatureSize),
		"ML-DSA half altered (last byte)":      flip(sig, SignatureSize-1),
		"ML-DSA half zeroed":                   append(bytes.Clone(edOnly), make([]byte, mldsa65.SignatureSize)...),
		"Ed25519 half zeroed":                  append(make([]byte, ed25519.SignatureSize), mlOnly...),
		"Ed25519 half from another key":        append(bytes.Clone(otherSig[:ed25519.SignatureSize]), mlOnly...),
		"ML-DSA half from another key":         append(bytes.Clone(edOnly), otherSig[ed25519.SignatureSize:]...),
		"ML-DSA half over M' without context":  append(bytes.Clone(edOnly), mldsaSign(t, mlKey, m, nil)...),
		"ML-DSA half over the bare message":    append(bytes.Clone(edOnly), mldsaSign(t, mlKey, msg, ctx)...),
		"Ed25519 half over the bare message":   append(ed25519.Sign(edKey, msg), mlOnly...),
		"halves swapped":                       append(bytes.Clone(mlOnly), edOnly...),
		"Ed25519 half only":                    edOnly,
		"ML-DSA half only":                     mlOnly,
		"truncated by one byte":                sig[:len(sig)-1],
		"one byte appended":                    append(bytes.Clone(sig), 0),
		"empty":                                {},
		"nil":                                  nil,
		"signature by another key":             otherSig,
		"Ed25519 half from another message":    append(bytes.Clone(k.Sign(label, []byte("other"))[:ed25519.SignatureSize]), mlOnly...),
		"ML-DSA half from another message":     append(bytes.Clone(edOnly), k.Sign(label, []byte("other"))[ed25519.SignatureSize:]...),
		"ML-DSA half signed under another ctx": append(bytes.Clone(edOnly), mldsaSign(t, mlKey, m, []byte("Parley-v2"))...),
	}
	for name, s := range bad {
		if err := k.Public().Verify(label, msg, s); err != ErrSignature {
			t.Errorf("%s: Verify = %v, want ErrSignature", name, err)
		}
	}
	if err := other.Public().Verify(label, msg, sig); err != ErrSignature {
		t.Errorf("verify under another key = %v, want ErrSignature", err)
	}
	if err := k.Public().Verify(label, []byte("prekey bytez"), sig); err != ErrSignature {
		t.Errorf("verify of another message = %v, want ErrSignature", err)
	}
	// A public key whose halves come from different keys does not accept
	// either key's signature.
	mixed := append(bytes.Clone(k.Public().Bytes()[:ed25519.PublicKeySize]), other.Public().Bytes()[ed25519.PublicKeySize:]...)
	mp, err := NewSigningPublicKey(mixed)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]byte{sig, otherSig} {
		if err := mp.Verify(label, msg, s); err != ErrSignature {
			t.Errorf("mixed public key accepted a signature: %v", err)
		}
	}
}

// TestSignatureLabelSeparation: a signature made for one statement (a
// prekey) must not verify as another (a device list), nor under a shifted
// label/message split.
func TestSignatureLabelSeparation(t *testing.T) {
	k := GenerateSigningKey()
	msg := []byte("statement")
	for _, l := range AllLabels {
		sig := k.Sign(l, msg)
		if err := k.Public().Verify(l, msg, sig); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		for _, l2 := range AllLabels {
			if l2 == l {
				continue
			}
			if err := k.Public().Verify(l2, msg, sig); err != ErrSignature {
				t.Errorf("signature under %q verified under %q: %v", l, l2, err)
			}
		}
		// Moving bytes between the label and the message changes M'.
		shifts := []struct {
			l Label
			m []byte
		}{
			{l[:len(l)-1], append([]byte{l[len(l)-1]}, msg...)},
			{l + Label(msg[:1]), msg[1:]},
			{l + "\x00", msg},
			{"", append([]byte(string(l)+"\x00"), msg...)},
		}
		for _, s := range shifts {
			if err := k.Public().Verify(s.l, s.m, sig); err != ErrSignature {
				t.Errorf("signature under (%q, %q) verified under (%q, %q)", l, msg, s.l, s.m)
			}
		}
	}
}

// TestSigningKeyEncodings checks seed and public key round trips and the
// size checks of the parsers.
func TestSigningKeyEncodings(t *testing.T) {
	k := GenerateSigningKey()
	k2, err := NewSigningKey(k.Seed())
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().Equal(k.Public()) {
		t.Error("seed does not round-trip")
	}
	p, err := NewSigningPublicKey(k.Public().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(k.Public()) || p.Equal(GenerateSigningKey().Public()) || p.Equal(nil) {
		t.Error("SigningPublicKey.Equal is wrong")
	}
	if len(k.Public().Bytes()) != SigningPublicKeySize {
		t.Errorf("public key is %d bytes, want %d", len(k.Public().Bytes()), SigningPublicKeySize)
	}
	// Seed and Bytes return copies: a caller scribbling on them must not
	// change the key.
	s := k.Seed()
	clear(s)
	pb := k.Public().Bytes()
	clear(pb)
	if err := k.Public().Verify(LabelSigPrekey, nil, k.Sign(LabelSigPrekey, nil)); err != nil {
		t.Errorf("key changed through returned slices: %v", err)
	}
	for _, n := range []int{0, SigningSeedSize - 1, SigningSeedSize + 1} {
		if _, err := NewSigningKey(make([]byte, n)); err != ErrInvalidKey {
			t.Errorf("NewSigningKey(%d bytes) = %v, want ErrInvalidKey", n, err)
		}
	}
	for _, n := range []int{0, SigningPublicKeySize - 1, SigningPublicKeySize + 1} {
		if _, err := NewSigningPublicKey(make([]byte, n)); err != ErrInvalidKey {
			t.Errorf("NewSigningPublicKey(%d bytes) = %v, want ErrInvalidKey", n, err)
		}
	}
}

// TestAEADTamperRejected: AES-GCM must refuse any change to the
// ciphertext, the tag, the associated data, the key or the nonce, and say
// nothing but ErrDecrypt.
func TestAEADTamperRejected(t *testing.T) {
	var key, key2 [AEADKeySize]byte
	Random(key[:])
	Random(key2[:])
	pt := []byte("attack at dawn, bring the good biscuits")
	ad := []byte("header bytes")

	type opener func(k *[AEADKeySize]byte, ct, ad []byte) ([]byte, error)
	schemes := []struct {
		name     string
		sealed   []byte
		open     opener
		tagStart int
	}{
		{"SealSingleUse", SealSingleUse(&key, nil, pt, ad), func(k *[AEADKeySize]byte, ct, ad []byte) ([]byte, error) {
			return OpenSingleUse(k, nil, ct, ad)
		}, len(pt)},
		{"Seal", Seal(&key, nil, pt, ad), func(k *[AEADKeySize]byte, ct, ad []byte) ([]byte, error) {
			return Open(k, nil, ct, ad)
		}, AEADNonceSize + len(pt)},
	}
	for _, s := range schemes {
		t.Run(s.name, func(t *testing.T) {
			if got, err := s.open(&key, s.sealed, ad); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("open = %q, %v", got, err)
			}
			if want := s.tagStart + AEADOverhead; len(s.sealed) != want {
				t.Fatalf("sealed length %d, want %d", len(s.sealed), want)
			}
			reject := func(what string, k *[AEADKeySize]byte, ct, ad []byte) {
				t.Helper()
				got, err := s.open(k, ct, ad)
				if err != ErrDecrypt {
					t.Errorf("%s: err = %v, want ErrDecrypt", what, err)
				}
				if got != nil {
					t.Errorf("%s: returned plaintext %q", what, got)
				}
			}
			for i := range s.sealed {
				where := "ciphertext"
				switch {
				case i >= s.tagStart:
					where = "tag"
				case s.name == "Seal" && i < AEADNonceSize:
					where = "nonce"
				}
				for _, bit := range []byte{0x01, 0x80} {
					ct := bytes.Clone(s.sealed)
					ct[i] ^= bit
					reject(where+" bit flipped", &key, ct, ad)
				}
			}
			for n := range len(s.sealed) {
				reject("truncated", &key, s.sealed[:n], ad)
			}
			reject("byte appended", &key, append(bytes.Clone(s.sealed), 0), ad)
			reject("AD altered", &key, s.sealed, flip(ad, 0))
			reject("AD truncated", &key, s.sealed, ad[:len(ad)-1])
			reject("AD extended", &key, s.sealed, append(bytes.Clone(ad), 0))
			reject("AD missing", &key, s.sealed, nil)
			reject("wrong key", &key2, s.sealed, ad)
		})
	}
	// Seal and SealSingleUse are not interchangeable.
	if _, err := OpenSingleUse(&key, nil, schemes[1].sealed, ad); err != ErrDecrypt {
		t.Errorf("OpenSingleUse opened a Seal output: %v", err)
	}
	if _, err := Open(&key, nil, schemes[0].sealed, ad); err != ErrDecrypt {
		t.Errorf("Open opened a SealSingleUse output: %v", err)
	}
}

// TestAEADAppends checks the dst conventions: output is appended, and the
// plaintext round-trips through a non-empty dst.
func TestAEADAppends(t *testing.T) {
	var key [AEADKeySize]byte
	Random(key[:])
	prefix := []byte("prefix")
	pt, ad := []byte("plaintext"), []byte("ad")
	for _, c := range []struct {
		name string
		seal func(dst []byte) []byte
		open func(dst, ct []byte) ([]byte, error)
	}{
		{"single use", func(dst []byte) []byte { return SealSingleUse(&key, dst, pt, ad) },
			func(dst, ct []byte) ([]byte, error) { return OpenSingleUse(&key, dst, ct, ad) }},
		{"random nonce", func(dst []byte) []byte { return Seal(&key, dst, pt, ad) },
			func(dst, ct []byte) ([]byte, error) { return Open(&key, dst, ct, ad) }},
	} {
		out := c.seal(bytes.Clone(prefix))
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("%s: Seal did not append to dst", c.name)
		}
		got, err := c.open(bytes.Clone(prefix), out[len(prefix):])
		if err != nil || !bytes.Equal(got, append(bytes.Clone(prefix), pt...)) {
			t.Errorf("%s: Open = %q, %v", c.name, got, err)
		}
	}
}

// TestSealNoncesDiffer: Seal is for keys that protect many messages, so
// its nonce must be fresh each time; a repeated GCM nonce leaks the XOR of
// plaintexts and the authentication key.
func TestSealNoncesDiffer(t *testing.T) {
	var key [AEADKeySize]byte
	Random(key[:])
	pt := []byte("same plaintext")
	nonces := map[[AEADNonceSize]byte]bool{}
	var prev []byte
	for range 1000 {
		s := Seal(&key, nil, pt, nil)
		n := [AEADNonceSize]byte(s[:AEADNonceSize])
		if nonces[n] {
			t.Fatalf("nonce %x repeated", n)
		}
		nonces[n] = true
		if bytes.Equal(s, prev) {
			t.Fatal("Seal returned the same output twice")
		}
		prev = s
	}
	// By contrast SealSingleUse is deterministic: its key must never be
	// reused, which is the caller's documented duty.
	if !bytes.Equal(SealSingleUse(&key, nil, pt, nil), SealSingleUse(&key, nil, pt, nil)) {
		t.Error("SealSingleUse is not deterministic")
	}
}

// TestMLKEMInvalidEncapsulationKeyRejected: FIPS 203 §7.2 requires the
// modulus check on encapsulation keys; a key with a coefficient ≥ q is
// refused rather than silently reduced.
func TestMLKEMInvalidEncapsulationKeyRejected(t *testing.T) {
	// setCoeff stores a 12-bit value as coefficient i of the ByteEncode12
	// encoding: two coefficients per three bytes, little-endian.
	setCoeff := func(b []byte, i int, v uint16) []byte {
		out := bytes.Clone(b)
		j := 3 * (i / 2)
		if i%2 == 0 {
			out[j] = byte(v)
			out[j+1] = out[j+1]&0xf0 | byte(v>>8)
		} else {
			out[j+1] = out[j+1]&0x0f | byte(v<<4)
			out[j+2] = byte(v >> 4)
		}
		return out
	}
	const q = 3329
	keys := []struct {
		name  string
		pub   []byte
		parse func([]byte) error
	}{
		{"ML-KEM-768", GenerateMLKEM768().Public().Bytes(), func(b []byte) error { _, err := NewMLKEM768PublicKey(b); return err }},
		{"ML-KEM-1024", GenerateMLKEM1024().Public().Bytes(), func(b []byte) error { _, err := NewMLKEM1024PublicKey(b); return err }},
	}
	for _, k := range keys {
		if err := k.parse(k.pub); err != nil {
			t.Fatalf("%s: valid key: %v", k.name, err)
		}
		// The last 32 bytes are the seed ρ, not coefficients.
		nCoeffs := (len(k.pub) - 32) * 2 / 3
		for _, i := range []int{0, 1, 255, 256, nCoeffs - 1} {
			if err := k.parse(setCoeff(k.pub, i, q-1)); err != nil {
				t.Errorf("%s: coefficient %d = q-1 refused: %v", k.name, i, err)
			}
			for _, v := range []uint16{q, q + 1, 0xfff} {
				if err := k.parse(setCoeff(k.pub, i, v)); err != ErrInvalidKey {
					t.Errorf("%s: coefficient %d = %d: err = %v, want ErrInvalidKey", k.name, i, v, err)
				}
			}
		}
		for _, n := range []int{0, len(k.pub) - 1, len(k.pub) + 1} {
			b := make([]byte, n)
			copy(b, k.pub)
			if err := k.parse(b); err != ErrInvalidKey {
				t.Errorf("%s: %d-byte key: err = %v, want ErrInvalidKey", k.name, n, err)
			}
		}
	}
}

// TestMLKEMDecapsulation checks implicit rejection and size checks: a
// well-sized wrong ciphertext decapsulates to an unrelated secret, a
// wrong-sized one is ErrDecrypt.
func TestMLKEMDecapsulation(t *testing.T) {
	k768 := GenerateMLKEM768()
	ss, ct := k768.Public().Encapsulate()
	if len(ct) != MLKEM768CiphertextSize || len(ss) != MLKEMSharedKeySize {
		t.Fatalf("ML-KEM-768 sizes %d, %d", len(ct), len(ss))
	}
	if got, err := k768.Decapsulate(ct); err != nil || !bytes.Equal(got, ss) {
		t.Fatalf("ML-KEM-768 round trip: %x, %v", got, err)
	}
	if got, err := k768.Decapsulate(flip(ct, 0)); err != nil || bytes.Equal(got, ss) {
		t.Errorf("ML-KEM-768 tampered ciphertext: %x, %v; want an unrelated secret", got, err)
	}
	for _, n := range []int{0, len(ct) - 1, len(ct) + 1} {
		c := make([]byte, n)
		copy(c, ct)
		if _, err := k768.Decapsulate(c); err != ErrDecrypt {
			t.Errorf("ML-KEM-768 %d-byte ciphertext: %v, want ErrDecrypt", n, err)
		}
	}
	if _, err := GenerateMLKEM768().Decapsulate(ct); err != nil {
		t.Errorf("ML-KEM-768 wrong key: %v", err)
	}

	k1024 := GenerateMLKEM1024()
	ss, ct = k1024.Public().Encapsulate()
	if len(ct) != MLKEM1024CiphertextSize || len(ss) != MLKEMSharedKeySize {
		t.Fatalf("ML-KEM-1024 sizes %d, %d", len(ct), len(ss))
	}
	if got, err := k1024.Decapsulate(ct); err != nil || !bytes.Equal(got, ss) {
		t.Fatalf("ML-KEM-1024 round trip: %x, %v", got, err)
	}
	if got, err := k1024.Decapsulate(flip(ct, len(ct)-1)); err != nil || bytes.Equal(got, ss) {
		t.Errorf("ML-KEM-1024 tampered ciphertext: %x, %v; want an unrelated secret", got, err)
	}
	if _, err := k1024.Decapsulate(ct[:len(ct)-1]); err != ErrDecrypt {
		t.Errorf("ML-KEM-1024 short ciphertext: %v, want ErrDecrypt", err)
	}
	for _, n := range []int{0, MLKEMSeedSize - 1, MLKEMSeedSize + 1} {
		if _, err := NewMLKEM768PrivateKey(make([]byte, n)); err != ErrInvalidKey {
			t.Errorf("NewMLKEM768PrivateKey(%d bytes) = %v", n, err)
		}
		if _, err := NewMLKEM1024PrivateKey(make([]byte, n)); err != ErrInvalidKey {
			t.Errorf("NewMLKEM1024PrivateKey(%d bytes) = %v", n, err)
		}
	}
}

// TestEqualConstantTimeSemantics checks Equal's answers (its timing is
// crypto/subtle's): equal inputs, every single-byte difference, different
// lengths including a prefix, and empty inputs.
func TestEqualConstantTimeSemantics(t *testing.T) {
	a := []byte("0123456789abcdef0123456789abcdef")
	if !Equal(a, bytes.Clone(a)) {
		t.Error("Equal(a, copy of a) = false")
	}
	if !Equal(nil, nil) || !Equal([]byte{}, nil) || !Equal(nil, []byte{}) {
		t.Error("empty inputs are not equal")
	}
	for i := range a {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(a)
			b[i] ^= bit
			if Equal(a, b) || Equal(b, a) {
				t.Errorf("Equal ignores bit %#x of byte %d", bit, i)
			}
		}
	}
	for _, b := range [][]byte{nil, a[:1], a[:len(a)-1], append(bytes.Clone(a), 0), append(bytes.Clone(a), a...)} {
		if Equal(a, b) || Equal(b, a) {
			t.Errorf("Equal(%d bytes, %d bytes) = true", len(a), len(b))
		}
	}
}

// TestDeterministicEntropyRestores checks that the vector hook is undone:
// after restore, Random is crypto/rand again and the modes that depend on
// it (hedged ML-DSA, random encapsulation) are back.
func TestDeterministicEntropyRestores(t *testing.T) {
	draw := func() []byte { b := make([]byte, 32); Random(b); return b }
	restore := UnsafeDeterministicEntropy("test")
	a := draw()
	restore()
	restore = UnsafeDeterministicEntropy("test")
	b := draw()
	restore()
	if !bytes.Equal(a, b) {
		t.Fatal("the same stream gave different bytes")
	}
	if deterministicMode() {
		t.Fatal("still in deterministic mode after restore")
	}
	if bytes.Equal(draw(), a) || bytes.Equal(draw(), draw()) {
		t.Fatal("Random is not random after restore")
	}
	k := GenerateSigningKey()
	if bytes.Equal(k.Sign(LabelSigPrekey, nil), k.Sign(LabelSigPrekey, nil)) {
		t.Error("ML-DSA signing is not hedged outside deterministic mode")
	}
}
