package primitives

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/sha512"
	"testing"

	"github.com/cloudflare/circl/kem/mlkem/mlkem1024"
	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"

	"github.com/parleyim/parley/internal/vectortest"
)

// The known-answer vectors in testdata/vectors/primitives.json, written by
// internal/cmd/vectorgen/primitives.go (whose types these mirror). Every test
// here recomputes the committed outputs from the committed inputs; where an
// operation is randomized, it replays the named deterministic entropy stream
// the generator used. A failure means the cipher suite changed: that is a
// protocol change and must be deliberate.

type hkdfVector struct {
	Label   string `json:"label"`
	Secret  string `json:"secret"`
	Salt    string `json:"salt"`
	Context string `json:"context"`
	Length  int    `json:"length"`
	Output  string `json:"output"`
}

type rootKDFVector struct {
	RootKey string `json:"root_key"`
	DH      string `json:"dh"`
	PQ      string `json:"pq"`
	NewRoot string `json:"new_root"`
	Chain   string `json:"chain"`
}

type chainKDFVector struct {
	ChainKey string `json:"chain_key"`
	Next     string `json:"next"`
	Seed     string `json:"seed"`
}

type messageKeyVector struct {
	Seed string `json:"seed"`
	Salt string `json:"salt"`
	Key  string `json:"key"`
}

type hashVector struct {
	Label  string   `json:"label"`
	Parts  []string `json:"parts"`
	Digest string   `json:"digest"`
}

type macVector struct {
	Key    string   `json:"key"`
	Label  string   `json:"label"`
	Parts  []string `json:"parts"`
	Output string   `json:"output"`
}

type sha512Vector struct {
	Input  string `json:"input"`
	Digest string `json:"digest"`
}

type aeadVector struct {
	Key        string `json:"key"`
	Plaintext  string `json:"plaintext"`
	AD         string `json:"ad"`
	Entropy    string `json:"entropy"`
	Ciphertext string `json:"ciphertext"`
}

type x25519Vector struct {
	Entropy   string `json:"entropy"`
	PrivateA  string `json:"private_a"`
	PublicA   string `json:"public_a"`
	PrivateB  string `json:"private_b"`
	PublicB   string `json:"public_b"`
	SharedKey string `json:"shared"`
}

type mlkemVector struct {
	KeygenEntropy string `json:"keygen_entropy"`
	Seed          string `json:"seed"`
	PublicKey     string `json:"public_key"`
	EncapsEntropy string `json:"encaps_entropy"`
	Ciphertext    string `json:"ciphertext"`
	SharedKey     string `json:"shared"`
}

type signatureVector struct {
	KeygenEntropy string `json:"keygen_entropy"`
	Seed          string `json:"seed"`
	PublicKey     string `json:"public_key"`
	Label         string `json:"label"`
	Message       string `json:"message"`
	Entropy       string `json:"entropy"`
	Signature     string `json:"signature"`
}

type vectors struct {
	HKDF       []hkdfVector       `json:"hkdf"`
	RootKDF    []rootKDFVector    `json:"root_kdf"`
	ChainKDF   []chainKDFVector   `json:"chain_kdf"`
	MessageKey []messageKeyVector `json:"message_key"`
	Hash       []hashVector       `json:"hash"`
	MAC        []macVector        `json:"mac"`
	SHA512     []sha512Vector     `json:"sha512"`
	SealSingle []aeadVector       `json:"seal_single_use"`
	Seal       []aeadVector       `json:"seal"`
	X25519     []x25519Vector     `json:"x25519"`
	MLKEM768   []mlkemVector      `json:"mlkem768"`
	MLKEM1024  []mlkemVector      `json:"mlkem1024"`
	Signatures []signatureVector  `json:"signatures"`
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	var v vectors
	vectortest.Load(t, "primitives", &v)
	return &v
}

// nonEmpty fails the test if a vector section is missing, so that a renamed
// JSON field cannot turn a replay loop into a silent no-op.
func nonEmpty[T any](t *testing.T, name string, s []T) []T {
	t.Helper()
	if len(s) == 0 {
		t.Fatalf("primitives.json has no %s vectors", name)
	}
	return s
}

// withEntropy runs f under the named deterministic stream, as the generator
// did. Tests in this package never run in parallel, so the global hook is
// safe to swap here.
func withEntropy(t *testing.T, seed string, f func()) {
	t.Helper()
	if seed == "" {
		t.Fatal("vector has no entropy stream name")
	}
	restore := UnsafeDeterministicEntropy(seed)
	defer restore()
	f()
}

func key32(t *testing.T, s string) *[KeySize]byte {
	t.Helper()
	b := vectortest.Hex(t, s)
	if len(b) != KeySize {
		t.Fatalf("vector key is %d bytes, want %d", len(b), KeySize)
	}
	return (*[KeySize]byte)(b)
}

func eq(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %x\nwant %x", what, got, want)
	}
}

func TestVectorsHKDF(t *testing.T) {
	v := loadVectors(t)
	seen := map[string]bool{}
	for _, c := range nonEmpty(t, "hkdf", v.HKDF) {
		seen[c.Label] = true
		out := HKDF(vectortest.Hex(t, c.Secret), vectortest.Hex(t, c.Salt), Label(c.Label), vectortest.Hex(t, c.Context), c.Length)
		eq(t, "HKDF "+c.Label, out, vectortest.Hex(t, c.Output))
		if len(out) != c.Length {
			t.Errorf("HKDF %s: %d bytes, want %d", c.Label, len(out), c.Length)
		}
	}
	for _, l := range AllLabels {
		if !seen[string(l)] {
			t.Errorf("no HKDF vector for label %q: regenerate with go run ./internal/cmd/vectorgen", l)
		}
	}
}

func TestVectorsRootKDF(t *testing.T) {
	v := loadVectors(t)
	withPQ, withoutPQ := 0, 0
	for i, c := range nonEmpty(t, "root_kdf", v.RootKDF) {
		pq := vectortest.Hex(t, c.PQ)
		if len(pq) == 0 {
			withoutPQ++
		} else {
			withPQ++
		}
		root, chain := RootKDF(key32(t, c.RootKey), vectortest.Hex(t, c.DH), pq)
		eq(t, "RootKDF new root", root[:], vectortest.Hex(t, c.NewRoot))
		eq(t, "RootKDF chain", chain[:], vectortest.Hex(t, c.Chain))
		// The vectors walk one root chain: each step starts from the
		// previous step's new root.
		if i > 0 && c.RootKey != v.RootKDF[i-1].NewRoot {
			t.Errorf("root_kdf[%d] does not continue the chain", i)
		}
	}
	if withPQ == 0 || withoutPQ == 0 {
		t.Errorf("root_kdf vectors: %d with the ML-KEM part, %d without; want both", withPQ, withoutPQ)
	}
}

func TestVectorsChainKDF(t *testing.T) {
	v := loadVectors(t)
	for i, c := range nonEmpty(t, "chain_kdf", v.ChainKDF) {
		next, seed := ChainKDF(key32(t, c.ChainKey))
		eq(t, "ChainKDF next", next[:], vectortest.Hex(t, c.Next))
		eq(t, "ChainKDF seed", seed[:], vectortest.Hex(t, c.Seed))
		if i > 0 && c.ChainKey != v.ChainKDF[i-1].Next {
			t.Errorf("chain_kdf[%d] does not continue the chain", i)
		}
	}
}

func TestVectorsMessageKey(t *testing.T) {
	v := loadVectors(t)
	for _, c := range nonEmpty(t, "message_key", v.MessageKey) {
		k := MessageKey(key32(t, c.Seed), vectortest.Hex(t, c.Salt))
		eq(t, "MessageKey", k[:], vectortest.Hex(t, c.Key))
	}
}

func TestVectorsHash(t *testing.T) {
	v := loadVectors(t)
	for _, c := range nonEmpty(t, "hash", v.Hash) {
		var parts [][]byte
		for _, p := range c.Parts {
			parts = append(parts, vectortest.Hex(t, p))
		}
		d := Hash(Label(c.Label), parts...)
		eq(t, "Hash "+c.Label, d[:], vectortest.Hex(t, c.Digest))
	}
}

func TestVectorsMAC(t *testing.T) {
	v := loadVectors(t)
	for _, c := range nonEmpty(t, "mac", v.MAC) {
		var parts [][]byte
		for _, p := range c.Parts {
			parts = append(parts, vectortest.Hex(t, p))
		}
		m := MAC(vectortest.Hex(t, c.Key), Label(c.Label), parts...)
		eq(t, "MAC "+c.Label, m[:], vectortest.Hex(t, c.Output))
	}
}

func TestVectorsSHA512(t *testing.T) {
	v := loadVectors(t)
	for _, c := range nonEmpty(t, "sha512", v.SHA512) {
		in := vectortest.Hex(t, c.Input)
		d := SHA512(in)
		eq(t, "SHA512", d[:], vectortest.Hex(t, c.Digest))
		ref := sha512.Sum512(in)
		eq(t, "SHA512 against crypto/sha512", d[:], ref[:])
	}
}

// referenceGCMSeal is AES-256-GCM straight from crypto/cipher.
func referenceGCMSeal(t *testing.T, key, nonce, pt, ad []byte) []byte {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return g.Seal(nil, nonce, pt, ad)
}

func TestVectorsSealSingleUse(t *testing.T) {
	v := loadVectors(t)
	for _, c := range nonEmpty(t, "seal_single_use", v.SealSingle) {
		key := key32(t, c.Key)
		pt, ad, ct := vectortest.Hex(t, c.Plaintext), vectortest.Hex(t, c.AD), vectortest.Hex(t, c.Ciphertext)
		eq(t, "SealSingleUse", SealSingleUse(key, nil, pt, ad), ct)
		eq(t, "SealSingleUse against crypto/cipher with the zero nonce", ct, referenceGCMSeal(t, key[:], make([]byte, AEADNonceSize), pt, ad))
		got, err := OpenSingleUse(key, nil, ct, ad)
		if err != nil {
			t.Fatalf("OpenSingleUse: %v", err)
		}
		eq(t, "OpenSingleUse", got, pt)
	}
}

func TestVectorsSeal(t *testing.T) {
	v := loadVectors(t)
	for _, c := range nonEmpty(t, "seal", v.Seal) {
		key := key32(t, c.Key)
		pt, ad, sealed := vectortest.Hex(t, c.Plaintext), vectortest.Hex(t, c.AD), vectortest.Hex(t, c.Ciphertext)
		var got []byte
		withEntropy(t, c.Entropy, func() { got = Seal(key, nil, pt, ad) })
		eq(t, "Seal under the vector's entropy", got, sealed)

		// The nonce is the first AEADNonceSize bytes of the stream.
		var nonce [AEADNonceSize]byte
		withEntropy(t, c.Entropy, func() { Random(nonce[:]) })
		eq(t, "Seal nonce prefix", sealed[:AEADNonceSize], nonce[:])
		eq(t, "Seal against crypto/cipher", sealed[AEADNonceSize:], referenceGCMSeal(t, key[:], nonce[:], pt, ad))

		opened, err := Open(key, nil, sealed, ad)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		eq(t, "Open", opened, pt)
	}
}

func TestVectorsX25519(t *testing.T) {
	v := loadVectors(t)
	for _, c := range nonEmpty(t, "x25519", v.X25519) {
		var gen *X25519PrivateKey
		withEntropy(t, c.Entropy, func() { gen = GenerateX25519() })
		eq(t, "GenerateX25519 under the vector's entropy", gen.Bytes(), vectortest.Hex(t, c.PrivateA))

		a, err := NewX25519PrivateKey(vectortest.Hex(t, c.PrivateA))
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewX25519PrivateKey(vectortest.Hex(t, c.PrivateB))
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "X25519 public A", a.Public().Bytes(), vectortest.Hex(t, c.PublicA))
		eq(t, "X25519 public B", b.Public().Bytes(), vectortest.Hex(t, c.PublicB))
		pubA, err := NewX25519PublicKey(vectortest.Hex(t, c.PublicA))
		if err != nil {
			t.Fatal(err)
		}
		pubB, err := NewX25519PublicKey(vectortest.Hex(t, c.PublicB))
		if err != nil {
			t.Fatal(err)
		}
		ab, err := a.ECDH(pubB)
		if err != nil {
			t.Fatal(err)
		}
		ba, err := b.ECDH(pubA)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "X25519 A·B", ab, vectortest.Hex(t, c.SharedKey))
		eq(t, "X25519 B·A", ba, vectortest.Hex(t, c.SharedKey))
	}
}

// kemCase abstracts the two ML-KEM parameter sets for the replay below.
type kemCase struct {
	name      string
	vectors   []mlkemVector
	generate  func() (seed, pub []byte)
	fromSeed  func(seed []byte) (pub []byte, decaps func([]byte) ([]byte, error), err error)
	encaps    func(pub []byte) (ss, ct []byte, err error)
	reference func(t *testing.T, seed, m, ct []byte) (pub, refCT, refSS, decapsSS []byte)
}

func TestVectorsMLKEM(t *testing.T) {
	v := loadVectors(t)
	cases := []kemCase{
		{
			name:    "ML-KEM-768",
			vectors: v.MLKEM768,
			generate: func() ([]byte, []byte) {
				k := GenerateMLKEM768()
				return k.Seed(), k.Public().Bytes()
			},
			fromSeed: func(seed []byte) ([]byte, func([]byte) ([]byte, error), error) {
				k, err := NewMLKEM768PrivateKey(seed)
				if err != nil {
					return nil, nil, err
				}
				return k.Public().Bytes(), k.Decapsulate, nil
			},
			encaps: func(pub []byte) ([]byte, []byte, error) {
				p, err := NewMLKEM768PublicKey(pub)
				if err != nil {
					return nil, nil, err
				}
				ss, ct := p.Encapsulate()
				return ss, ct, nil
			},
			reference: func(t *testing.T, seed, m, ct []byte) ([]byte, []byte, []byte, []byte) {
				pk, sk := mlkem768.NewKeyFromSeed(seed)
				pub := make([]byte, mlkem768.PublicKeySize)
				pk.Pack(pub)
				refCT := make([]byte, mlkem768.CiphertextSize)
				refSS := make([]byte, mlkem768.SharedKeySize)
				pk.EncapsulateTo(refCT, refSS, m)
				decaps := make([]byte, mlkem768.SharedKeySize)
				sk.DecapsulateTo(decaps, ct)
				return pub, refCT, refSS, decaps
			},
		},
		{
			name:    "ML-KEM-1024",
			vectors: v.MLKEM1024,
			generate: func() ([]byte, []byte) {
				k := GenerateMLKEM1024()
				return k.Seed(), k.Public().Bytes()
			},
			fromSeed: func(seed []byte) ([]byte, func([]byte) ([]byte, error), error) {
				k, err := NewMLKEM1024PrivateKey(seed)
				if err != nil {
					return nil, nil, err
				}
				return k.Public().Bytes(), k.Decapsulate, nil
			},
			encaps: func(pub []byte) ([]byte, []byte, error) {
				p, err := NewMLKEM1024PublicKey(pub)
				if err != nil {
					return nil, nil, err
				}
				ss, ct := p.Encapsulate()
				return ss, ct, nil
			},
			reference: func(t *testing.T, seed, m, ct []byte) ([]byte, []byte, []byte, []byte) {
				pk, sk := mlkem1024.NewKeyFromSeed(seed)
				pub := make([]byte, mlkem1024.PublicKeySize)
				pk.Pack(pub)
				refCT := make([]byte, mlkem1024.CiphertextSize)
				refSS := make([]byte, mlkem1024.SharedKeySize)
				pk.EncapsulateTo(refCT, refSS, m)
				decaps := make([]byte, mlkem1024.SharedKeySize)
				sk.DecapsulateTo(decaps, ct)
				return pub, refCT, refSS, decaps
			},
		},
	}
	for _, kc := range cases {
		t.Run(kc.name, func(t *testing.T) {
			for _, c := range nonEmpty(t, kc.name, kc.vectors) {
				seed, pub := vectortest.Hex(t, c.Seed), vectortest.Hex(t, c.PublicKey)
				ct, ss := vectortest.Hex(t, c.Ciphertext), vectortest.Hex(t, c.SharedKey)

				var genSeed, genPub []byte
				withEntropy(t, c.KeygenEntropy, func() { genSeed, genPub = kc.generate() })
				eq(t, "key generation under the vector's entropy: seed", genSeed, seed)
				eq(t, "key generation under the vector's entropy: public key", genPub, pub)

				gotPub, decaps, err := kc.fromSeed(seed)
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "public key from seed", gotPub, pub)

				got, err := decaps(ct)
				if err != nil {
					t.Fatalf("Decapsulate: %v", err)
				}
				eq(t, "Decapsulate committed ciphertext", got, ss)

				var encSS, encCT []byte
				withEntropy(t, c.EncapsEntropy, func() { encSS, encCT, err = kc.encaps(pub) })
				if err != nil {
					t.Fatal(err)
				}
				eq(t, "Encapsulate under the vector's entropy: ciphertext", encCT, ct)
				eq(t, "Encapsulate under the vector's entropy: shared key", encSS, ss)

				// An independent implementation (circl) agrees on the key
				// expansion, on derandomized encapsulation with the same
				// 32-byte message, and on decapsulation.
				var m [mlkemEncapsulationRandom]byte
				withEntropy(t, c.EncapsEntropy, func() { Random(m[:]) })
				refPub, refCT, refSS, refDecaps := kc.reference(t, seed, m[:], ct)
				eq(t, "circl public key", refPub, pub)
				eq(t, "circl ciphertext", refCT, ct)
				eq(t, "circl shared key", refSS, ss)
				eq(t, "circl decapsulation", refDecaps, ss)
			}
		})
	}
}

func TestVectorsSignatures(t *testing.T) {
	v := loadVectors(t)
	for _, c := range nonEmpty(t, "signatures", v.Signatures) {
		seed, pubBytes := vectortest.Hex(t, c.Seed), vectortest.Hex(t, c.PublicKey)
		msg, sig := vectortest.Hex(t, c.Message), vectortest.Hex(t, c.Signature)
		label := Label(c.Label)

		var gen *SigningKey
		withEntropy(t, c.KeygenEntropy, func() { gen = GenerateSigningKey() })
		eq(t, "GenerateSigningKey under the vector's entropy", gen.Seed(), seed)

		k, err := NewSigningKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "public key from seed", k.Public().Bytes(), pubBytes)
		pub, err := NewSigningPublicKey(pubBytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Verify(label, msg, sig); err != nil {
			t.Errorf("committed signature does not verify: %v", err)
		}
		var got []byte
		withEntropy(t, c.Entropy, func() { got = k.Sign(label, msg) })
		eq(t, "Sign under deterministic entropy", got, sig)

		// Each half verifies on its own, with the reference libraries,
		// over M' = prefix || label || 0x00 || msg (docs/protocol.md §2).
		m := append([]byte("Parley-v1 Hybrid Ed25519 ML-DSA-65\x00"+c.Label+"\x00"), msg...)
		edPub := ed25519.NewKeyFromSeed(seed[:ed25519.SeedSize]).Public().(ed25519.PublicKey)
		eq(t, "Ed25519 half of the public key", pubBytes[:ed25519.PublicKeySize], edPub)
		if !ed25519.Verify(edPub, m, sig[:ed25519.SignatureSize]) {
			t.Error("Ed25519 half does not verify with crypto/ed25519")
		}
		var mlPub mldsa65.PublicKey
		if err := mlPub.UnmarshalBinary(pubBytes[ed25519.PublicKeySize:]); err != nil {
			t.Fatal(err)
		}
		if !mldsa65.Verify(&mlPub, m, []byte("Parley-v1"), sig[ed25519.SignatureSize:]) {
			t.Error("ML-DSA-65 half does not verify with circl and context \"Parley-v1\"")
		}
	}
}
