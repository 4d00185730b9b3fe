package main

import (
	"encoding/hex"
	"fmt"

	"github.com/parleyim/parley/internal/primitives"
)

// The primitives vectors (testdata/vectors/primitives.json) pin every KDF
// label and construction of the cipher suite, docs/protocol.md §2. Inputs
// are drawn from named deterministic entropy streams and written out in
// full; every randomized operation (Seal's nonce, ML-KEM encapsulation, key
// generation, signing) runs under its own named stream, recorded in the
// vector's "entropy" field, so that a test can replay it exactly.
//
// The field names and layout are mirrored by the test types in
// internal/primitives/vectors_test.go.

type primHKDFVector struct {
	Label   string `json:"label"`
	Secret  string `json:"secret"`
	Salt    string `json:"salt"`
	Context string `json:"context"`
	Length  int    `json:"length"`
	Output  string `json:"output"`
}

type primRootKDFVector struct {
	RootKey string `json:"root_key"`
	DH      string `json:"dh"`
	PQ      string `json:"pq"`
	NewRoot string `json:"new_root"`
	Chain   string `json:"chain"`
}

type primChainKDFVector struct {
	ChainKey string `json:"chain_key"`
	Next     string `json:"next"`
	Seed     string `json:"seed"`
}

type primMessageKeyVector struct {
	Seed string `json:"seed"`
	Salt string `json:"salt"`
	Key  string `json:"key"`
}

type primHashVector struct {
	Label  string   `json:"label"`
	Parts  []string `json:"parts"`
	Digest string   `json:"digest"`
}

type primMACVector struct {
	Key    string   `json:"key"`
	Label  string   `json:"label"`
	Parts  []string `json:"parts"`
	Output string   `json:"output"`
}

type primSHA512Vector struct {
	Input  string `json:"input"`
	Digest string `json:"digest"`
}

type primAEADVector struct {
	Key        string `json:"key"`
	Plaintext  string `json:"plaintext"`
	AD         string `json:"ad"`
	Entropy    string `json:"entropy,omitempty"` // Seal only: the stream its nonce is drawn from
	Ciphertext string `json:"ciphertext"`
}

type primX25519Vector struct {
	Entropy   string `json:"entropy"` // GenerateX25519 under this stream gives PrivateA
	PrivateA  string `json:"private_a"`
	PublicA   string `json:"public_a"`
	PrivateB  string `json:"private_b"`
	PublicB   string `json:"public_b"`
	SharedKey string `json:"shared"`
}

type primMLKEMVector struct {
	KeygenEntropy string `json:"keygen_entropy"` // Generate under this stream gives Seed
	Seed          string `json:"seed"`
	PublicKey     string `json:"public_key"`
	EncapsEntropy string `json:"encaps_entropy"` // Encapsulate under this stream gives Ciphertext
	Ciphertext    string `json:"ciphertext"`
	SharedKey     string `json:"shared"`
}

type primSignatureVector struct {
	KeygenEntropy string `json:"keygen_entropy"` // GenerateSigningKey under this stream gives Seed
	Seed          string `json:"seed"`
	PublicKey     string `json:"public_key"`
	Label         string `json:"label"`
	Message       string `json:"message"`
	Entropy       string `json:"entropy"` // Sign under this stream (deterministic ML-DSA) gives Signature
	Signature     string `json:"signature"`
}

type primVectors struct {
	Comment    string                 `json:"comment"`
	HKDF       []primHKDFVector       `json:"hkdf"`
	RootKDF    []primRootKDFVector    `json:"root_kdf"`
	ChainKDF   []primChainKDFVector   `json:"chain_kdf"`
	MessageKey []primMessageKeyVector `json:"message_key"`
	Hash       []primHashVector       `json:"hash"`
	MAC        []primMACVector        `json:"mac"`
	SHA512     []primSHA512Vector     `json:"sha512"`
	SealSingle []primAEADVector       `json:"seal_single_use"`
	Seal       []primAEADVector       `json:"seal"`
	X25519     []primX25519Vector     `json:"x25519"`
	MLKEM768   []primMLKEMVector      `json:"mlkem768"`
	MLKEM1024  []primMLKEMVector      `json:"mlkem1024"`
	Signatures []primSignatureVector  `json:"signatures"`
}

// entropyName names a deterministic stream of the primitives vectors.
func entropyName(what string) string { return "parley vectors primitives/" + what }

// underEntropy runs f with Random replaced by the named deterministic
// stream. It leaves real entropy installed afterwards; every draw in this
// generator goes through underEntropy, so nothing depends on the order in
// which vectors are produced.
func underEntropy(name string, f func()) {
	restore := primitives.UnsafeDeterministicEntropy(name)
	defer restore()
	f()
}

// fixed returns n input bytes drawn from the named stream.
func fixed(what string, n int) []byte {
	b := make([]byte, n)
	underEntropy(entropyName("input "+what), func() { primitives.Random(b) })
	return b
}

func fixed32(what string) *[32]byte { return (*[32]byte)(fixed(what, 32)) }

func hx(b []byte) string { return hex.EncodeToString(b) }

func init() {
	register("primitives", genPrimitives)
}

func genPrimitives() any {
	v := &primVectors{
		Comment: "Known-answer vectors for internal/primitives (docs/protocol.md §2). " +
			"All byte strings are hex. Regenerate with: go run ./internal/cmd/vectorgen",
	}

	// HKDF under every label: a plain case, the RFC's default salt with no
	// context, and a long output.
	for i, l := range primitives.AllLabels {
		cases := []struct {
			secret, salt, context []byte
			length                int
		}{
			{fixed(fmt.Sprintf("hkdf %d secret", i), 32), fixed(fmt.Sprintf("hkdf %d salt", i), 32), []byte("context"), 32},
			{fixed(fmt.Sprintf("hkdf %d secret2", i), 64), nil, nil, 64},
			{fixed(fmt.Sprintf("hkdf %d secret3", i), 17), fixed(fmt.Sprintf("hkdf %d salt3", i), 80), fixed(fmt.Sprintf("hkdf %d context3", i), 100), 100},
		}
		for _, c := range cases {
			v.HKDF = append(v.HKDF, primHKDFVector{
				Label: string(l), Secret: hx(c.secret), Salt: hx(c.salt), Context: hx(c.context),
				Length: c.length, Output: hx(primitives.HKDF(c.secret, c.salt, l, c.context, c.length)),
			})
		}
	}

	// RootKDF, with and without the ML-KEM part, and a three-step chain.
	rk := fixed32("root key")
	for i, pqLen := range []int{0, primitives.MLKEMSharedKeySize, 0, primitives.MLKEMSharedKeySize} {
		dh := fixed(fmt.Sprintf("root dh %d", i), primitives.X25519KeySize)
		pq := fixed(fmt.Sprintf("root pq %d", i), pqLen)
		newRoot, chain := primitives.RootKDF(rk, dh, pq)
		v.RootKDF = append(v.RootKDF, primRootKDFVector{
			RootKey: hx(rk[:]), DH: hx(dh), PQ: hx(pq), NewRoot: hx(newRoot[:]), Chain: hx(chain[:]),
		})
		rk = &newRoot
	}

	// ChainKDF along one chain, so the vectors also pin the chain's walk.
	ck := fixed32("chain key")
	for range 4 {
		next, seed := primitives.ChainKDF(ck)
		v.ChainKDF = append(v.ChainKDF, primChainKDFVector{ChainKey: hx(ck[:]), Next: hx(next[:]), Seed: hx(seed[:])})
		ck = &next
	}

	// MessageKey: the ratchet's 16-byte salt, none, the largest salt that
	// fits the stack buffer, and one past it.
	for i, n := range []int{16, 0, 64, 65, 200} {
		seed := fixed32(fmt.Sprintf("message key seed %d", i))
		salt := fixed(fmt.Sprintf("message key salt %d", i), n)
		k := primitives.MessageKey(seed, salt)
		v.MessageKey = append(v.MessageKey, primMessageKeyVector{Seed: hx(seed[:]), Salt: hx(salt), Key: hx(k[:])})
	}

	// Hash under every label, with no parts, an empty part and several.
	for i, l := range primitives.AllLabels {
		partSets := [][][]byte{
			nil,
			{{}},
			{fixed(fmt.Sprintf("hash %d a", i), 32), fixed(fmt.Sprintf("hash %d b", i), 5), {}, fixed(fmt.Sprintf("hash %d c", i), 1200)},
		}
		for _, parts := range partSets {
			hv := primHashVector{Label: string(l), Parts: []string{}}
			for _, p := range parts {
				hv.Parts = append(hv.Parts, hx(p))
			}
			d := primitives.Hash(l, parts...)
			hv.Digest = hx(d[:])
			v.Hash = append(v.Hash, hv)
		}
	}

	// MAC under every label, with the same part shapes as Hash.
	for i, l := range primitives.AllLabels {
		key := fixed(fmt.Sprintf("mac %d key", i), 32)
		partSets := [][][]byte{
			nil,
			{fixed(fmt.Sprintf("mac %d a", i), 16), {}, fixed(fmt.Sprintf("mac %d b", i), 70)},
		}
		for _, parts := range partSets {
			mv := primMACVector{Key: hx(key), Label: string(l), Parts: []string{}}
			for _, p := range parts {
				mv.Parts = append(mv.Parts, hx(p))
			}
			m := primitives.MAC(key, l, parts...)
			mv.Output = hx(m[:])
			v.MAC = append(v.MAC, mv)
		}
	}

	for i, n := range []int{0, 3, 111, 112, 1000} {
		in := fixed(fmt.Sprintf("sha512 %d", i), n)
		d := primitives.SHA512(in)
		v.SHA512 = append(v.SHA512, primSHA512Vector{Input: hx(in), Digest: hx(d[:])})
	}

	// AEAD: empty, short, 1 KiB; with and without associated data.
	aeadCases := []struct{ pt, ad int }{{0, 0}, {0, 32}, {13, 0}, {1024, 45}}
	for i, c := range aeadCases {
		key := fixed32(fmt.Sprintf("aead single key %d", i))
		pt := fixed(fmt.Sprintf("aead single plaintext %d", i), c.pt)
		ad := fixed(fmt.Sprintf("aead single ad %d", i), c.ad)
		v.SealSingle = append(v.SealSingle, primAEADVector{
			Key: hx(key[:]), Plaintext: hx(pt), AD: hx(ad),
			Ciphertext: hx(primitives.SealSingleUse(key, nil, pt, ad)),
		})
	}
	for i, c := range aeadCases {
		key := fixed32(fmt.Sprintf("aead key %d", i))
		pt := fixed(fmt.Sprintf("aead plaintext %d", i), c.pt)
		ad := fixed(fmt.Sprintf("aead ad %d", i), c.ad)
		e := entropyName(fmt.Sprintf("seal %d", i))
		var sealed []byte
		underEntropy(e, func() { sealed = primitives.Seal(key, nil, pt, ad) })
		v.Seal = append(v.Seal, primAEADVector{Key: hx(key[:]), Plaintext: hx(pt), AD: hx(ad), Entropy: e, Ciphertext: hx(sealed)})
	}

	// X25519 from generated private keys.
	for i := range 3 {
		e := entropyName(fmt.Sprintf("x25519 keygen %d", i))
		var a *primitives.X25519PrivateKey
		underEntropy(e, func() { a = primitives.GenerateX25519() })
		b, err := primitives.NewX25519PrivateKey(fixed(fmt.Sprintf("x25519 b %d", i), primitives.X25519KeySize))
		if err != nil {
			panic(err)
		}
		ss, err := a.ECDH(b.Public())
		if err != nil {
			panic(err)
		}
		v.X25519 = append(v.X25519, primX25519Vector{
			Entropy:  e,
			PrivateA: hx(a.Bytes()), PublicA: hx(a.Public().Bytes()),
			PrivateB: hx(b.Bytes()), PublicB: hx(b.Public().Bytes()),
			SharedKey: hx(ss),
		})
	}

	// ML-KEM-768 and ML-KEM-1024.
	for i := range 2 {
		ke := entropyName(fmt.Sprintf("mlkem768 keygen %d", i))
		ee := entropyName(fmt.Sprintf("mlkem768 encaps %d", i))
		var k *primitives.MLKEM768PrivateKey
		underEntropy(ke, func() { k = primitives.GenerateMLKEM768() })
		var ss, ct []byte
		underEntropy(ee, func() { ss, ct = k.Public().Encapsulate() })
		v.MLKEM768 = append(v.MLKEM768, primMLKEMVector{
			KeygenEntropy: ke, Seed: hx(k.Seed()), PublicKey: hx(k.Public().Bytes()),
			EncapsEntropy: ee, Ciphertext: hx(ct), SharedKey: hx(ss),
		})
	}
	for i := range 2 {
		ke := entropyName(fmt.Sprintf("mlkem1024 keygen %d", i))
		ee := entropyName(fmt.Sprintf("mlkem1024 encaps %d", i))
		var k *primitives.MLKEM1024PrivateKey
		underEntropy(ke, func() { k = primitives.GenerateMLKEM1024() })
		var ss, ct []byte
		underEntropy(ee, func() { ss, ct = k.Public().Encapsulate() })
		v.MLKEM1024 = append(v.MLKEM1024, primMLKEMVector{
			KeygenEntropy: ke, Seed: hx(k.Seed()), PublicKey: hx(k.Public().Bytes()),
			EncapsEntropy: ee, Ciphertext: hx(ct), SharedKey: hx(ss),
		})
	}

	// Hybrid signatures under both signature contexts.
	sigCases := []struct {
		label primitives.Label
		msg   []byte
	}{
		{primitives.LabelSigDeviceList, fixed("sig msg 0", 200)},
		{primitives.LabelSigPrekey, fixed("sig msg 1", 32)},
		{primitives.LabelSigPrekey, nil},
	}
	for i, c := range sigCases {
		ke := entropyName(fmt.Sprintf("signing keygen %d", i))
		se := entropyName(fmt.Sprintf("sign %d", i))
		var k *primitives.SigningKey
		underEntropy(ke, func() { k = primitives.GenerateSigningKey() })
		var sig []byte
		underEntropy(se, func() { sig = k.Sign(c.label, c.msg) })
		v.Signatures = append(v.Signatures, primSignatureVector{
			KeygenEntropy: ke, Seed: hx(k.Seed()), PublicKey: hx(k.Public().Bytes()),
			Label: string(c.label), Message: hx(c.msg), Entropy: se, Signature: hx(sig),
		})
	}
	return v
}
