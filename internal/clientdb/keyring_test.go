package clientdb

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/vectortest"
)

// TestDefaultArgon2Params pins the production cost to at least the
// parameters docs/drafts/clientdb.md promises (m = 64 MiB, t = 3, p = 4) and
// checks that nothing but the tests lowers it.
func TestDefaultArgon2Params(t *testing.T) {
	want := primitives.Argon2Params{MemoryKiB: 64 * 1024, Time: 3, Parallelism: 4}
	if DefaultArgon2Params != want {
		t.Errorf("DefaultArgon2Params = %+v, want %+v", DefaultArgon2Params, want)
	}
	if defaultKDFAtInit != DefaultArgon2Params {
		t.Errorf("kdfParams starts as %+v, want DefaultArgon2Params", defaultKDFAtInit)
	}
	if err := checkParams(DefaultArgon2Params); err != nil {
		t.Errorf("default parameters exceed the implementation limits: %v", err)
	}
}

// TestWrapAtDefaultCost runs the real Argon2id cost once.
func TestWrapAtDefaultCost(t *testing.T) {
	if testing.Short() {
		t.Skip("Argon2id at 64 MiB in -short mode")
	}
	var sk [StorageKeySize]byte
	primitives.Random(sk[:])
	w, err := WrapKey(&sk, []byte("pass"), DefaultArgon2Params)
	if err != nil {
		t.Fatal(err)
	}
	got, insecure, err := UnwrapKey(w, []byte("pass"))
	if err != nil || insecure || got != sk {
		t.Fatalf("UnwrapKey = %x, %v, %v; want the key back", got, insecure, err)
	}
}

func TestWrapRoundTrip(t *testing.T) {
	var sk [StorageKeySize]byte
	primitives.Random(sk[:])
	w, err := WrapKey(&sk, []byte("hunter2"), testKDF)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != wrappedPassphraseLen {
		t.Errorf("wrapped key is %d bytes, want %d", len(w), wrappedPassphraseLen)
	}
	if bytes.Contains(w, sk[:]) {
		t.Error("wrapped key contains the storage key")
	}
	got, insecure, err := UnwrapKey(w, []byte("hunter2"))
	if err != nil || insecure || got != sk {
		t.Fatalf("UnwrapKey = %x, %v, %v", got, insecure, err)
	}
	w2, _ := WrapKey(&sk, []byte("hunter2"), testKDF)
	if bytes.Equal(w, w2) {
		t.Error("two wraps of one key are equal: the salt or nonce is not fresh")
	}
	for _, pass := range [][]byte{nil, []byte("hunter3"), []byte("hunter2\x00"), []byte("Hunter2")} {
		got, _, err := UnwrapKey(w, pass)
		if !errors.Is(err, ErrWrongPassphrase) || got != [StorageKeySize]byte{} {
			t.Errorf("UnwrapKey(%q) = %x, %v; want ErrWrongPassphrase and no key", pass, got, err)
		}
	}
	if _, err := WrapKey(&sk, nil, testKDF); !errors.Is(err, ErrEmptyPassphrase) {
		t.Errorf("WrapKey with empty passphrase: %v", err)
	}
	for _, p := range []primitives.Argon2Params{
		{MemoryKiB: 32, Time: 0, Parallelism: 1},
		{MemoryKiB: 32, Time: 1, Parallelism: 0},
		{MemoryKiB: 7, Time: 1, Parallelism: 1},
		{MemoryKiB: maxArgon2MemoryKiB + 1, Time: 1, Parallelism: 1},
		{MemoryKiB: 32, Time: maxArgon2Time + 1, Parallelism: 1},
	} {
		if _, err := WrapKey(&sk, []byte("x"), p); err == nil {
			t.Errorf("WrapKey accepted parameters %+v", p)
		}
	}
}

func TestWrapInsecure(t *testing.T) {
	var sk [StorageKeySize]byte
	primitives.Random(sk[:])
	w := WrapKeyInsecure(&sk)
	got, insecure, err := UnwrapKey(w, []byte("anything"))
	if err != nil || !insecure || got != sk {
		t.Fatalf("UnwrapKey(insecure) = %x, %v, %v", got, insecure, err)
	}
}

// TestTamperedWrappedKey flips every bit of a wrapped key: each change must
// be refused with ErrWrongPassphrase or ErrCorrupt, never yield a key.
func TestTamperedWrappedKey(t *testing.T) {
	var sk [StorageKeySize]byte
	primitives.Random(sk[:])
	w, err := WrapKey(&sk, []byte("pw"), primitives.Argon2Params{MemoryKiB: 8, Time: 1, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		for bit := range 8 {
			b := bytes.Clone(w)
			b[i] ^= 1 << bit
			got, _, err := UnwrapKey(b, []byte("pw"))
			if err == nil {
				t.Fatalf("byte %d bit %d flipped: unwrapped to %x", i, bit, got)
			}
			if !errors.Is(err, ErrWrongPassphrase) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d bit %d flipped: %v", i, bit, err)
			}
		}
	}
	for n := range len(w) {
		if _, _, err := UnwrapKey(w[:n], []byte("pw")); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix of %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
}

// clientdbVectors mirrors internal/cmd/vectorgen/clientdb.go.
type clientdbVectors struct {
	Passphrase string `json:"passphrase"`
	Params     struct {
		MemoryKiB   uint32 `json:"memory_kib"`
		Time        uint32 `json:"time"`
		Parallelism uint8  `json:"parallelism"`
	} `json:"argon2id"`
	StorageKey      string `json:"storage_key"`
	Salt            string `json:"salt"`
	KEK             string `json:"kek"`
	Wrapped         string `json:"wrapped"`
	InsecureWrapped string `json:"insecure_wrapped"`
	Invalid         []struct {
		Name       string `json:"name"`
		Passphrase string `json:"passphrase"`
		Wrapped    string `json:"wrapped"`
		Expect     string `json:"expect"`
	} `json:"invalid"`
	SealKey  string `json:"seal_key"`
	IndexKey string `json:"index_key"`
	Index    []struct {
		Domain string `json:"domain"`
		Value  string `json:"value"`
		Hash   string `json:"hash"`
	} `json:"index"`
	Sealed []struct {
		Table     string   `json:"table"`
		Column    string   `json:"column"`
		Bind      []string `json:"bind"`
		Plaintext string   `json:"plaintext"`
		Sealed    string   `json:"sealed"`
	} `json:"sealed"`
}

// TestVectors replays testdata/vectors/clientdb.json: the wrapped-key
// format, Argon2id, the subkeys, the index hash and sealed values.
func TestVectors(t *testing.T) {
	var v clientdbVectors
	vectortest.Load(t, "clientdb", &v)
	if len(v.Invalid) == 0 || len(v.Index) == 0 || len(v.Sealed) == 0 {
		t.Fatal("clientdb.json is incomplete; regenerate with go run ./internal/cmd/vectorgen")
	}
	h := func(s string) []byte { return vectortest.Hex(t, s) }
	pass := []byte(v.Passphrase)
	params := primitives.Argon2Params{MemoryKiB: v.Params.MemoryKiB, Time: v.Params.Time, Parallelism: v.Params.Parallelism}

	kek, err := primitives.Argon2id(pass, h(v.Salt), params)
	if err != nil || !bytes.Equal(kek[:], h(v.KEK)) {
		t.Errorf("Argon2id = %x, %v; want %s", kek, err, v.KEK)
	}
	wrapped := h(v.Wrapped)
	w, err := parseWrappedKey(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if w.params != params || !bytes.Equal(w.salt[:], h(v.Salt)) || !bytes.Equal(w.marshal(), wrapped) {
		t.Errorf("parsed wrapped key %+v does not match the vector", w)
	}
	sk, insecure, err := UnwrapKey(wrapped, pass)
	if err != nil || insecure || !bytes.Equal(sk[:], h(v.StorageKey)) {
		t.Fatalf("UnwrapKey = %x, %v, %v; want %s", sk, insecure, err, v.StorageKey)
	}
	if got := WrapKeyInsecure(&sk); !bytes.Equal(got, h(v.InsecureWrapped)) {
		t.Errorf("WrapKeyInsecure = %x, want %s", got, v.InsecureWrapped)
	}
	if got, insecure, err := UnwrapKey(h(v.InsecureWrapped), nil); err != nil || !insecure || got != sk {
		t.Errorf("UnwrapKey(insecure) = %x, %v, %v", got, insecure, err)
	}
	for _, c := range v.Invalid {
		got, _, err := UnwrapKey(h(c.Wrapped), []byte(c.Passphrase))
		var want error
		switch c.Expect {
		case "wrong passphrase":
			want = ErrWrongPassphrase
		case "corrupt":
			want = ErrCorrupt
		default:
			t.Fatalf("%s: unknown expectation %q", c.Name, c.Expect)
		}
		if !errors.Is(err, want) || got != [StorageKeySize]byte{} {
			t.Errorf("%s: UnwrapKey = %x, %v; want %v", c.Name, got, err, want)
		}
	}

	k := deriveKeys(&sk)
	if !bytes.Equal(k.sealKey[:], h(v.SealKey)) || !bytes.Equal(k.indexKey[:], h(v.IndexKey)) {
		t.Errorf("subkeys %x %x, want %s %s", k.sealKey, k.indexKey, v.SealKey, v.IndexKey)
	}
	for _, iv := range v.Index {
		if got := k.index(iv.Domain, h(iv.Value)); !bytes.Equal(got, h(iv.Hash)) {
			t.Errorf("index(%s, %s) = %x, want %s", iv.Domain, iv.Value, got, iv.Hash)
		}
	}
	// The message domain's value is the de-duplication encoding of
	// (sender "alice", ID zero).
	for _, iv := range v.Index {
		if iv.Domain == domainMessage {
			if got := k.message("alice", [16]byte{}); !bytes.Equal(got, h(iv.Hash)) {
				t.Errorf("message(alice, 0) = %x, want %s", got, iv.Hash)
			}
		}
		if iv.Domain == domainUsername && len(iv.Value) > 0 {
			if got := k.username(string(h(iv.Value))); !bytes.Equal(got, h(iv.Hash)) {
				t.Errorf("username(%s) = %x, want %s", h(iv.Value), got, iv.Hash)
			}
		}
	}
	for _, sv := range v.Sealed {
		var bind [][]byte
		for _, b := range sv.Bind {
			bind = append(bind, h(b))
		}
		got, err := k.open(h(sv.Sealed), sv.Table, sv.Column, bind...)
		if err != nil || !bytes.Equal(got, h(sv.Plaintext)) {
			t.Errorf("open %s.%s = %x, %v; want %s", sv.Table, sv.Column, got, err, sv.Plaintext)
		}
		// And the same value under any other binding is refused.
		if _, err := k.open(h(sv.Sealed), sv.Table, sv.Column+"x", bind...); !errors.Is(err, ErrCorrupt) {
			t.Errorf("open %s.%s under another column: %v", sv.Table, sv.Column, err)
		}
	}
}

// FuzzUnwrapKey: the decoder never panics, accepts only canonical
// encodings (decode then encode gives the input back), and a decoded key
// under a cheap cost unwraps to a key or fails with ErrWrongPassphrase.
func FuzzUnwrapKey(f *testing.F) {
	var v clientdbVectors
	vectortest.Load(f, "clientdb", &v)
	pass := []byte(v.Passphrase)
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := parseWrappedKey(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parse error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(w.marshal(), b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", w.marshal(), b)
		}
		// Keep each input fast: the parameters come from the input.
		if uint64(w.params.MemoryKiB)*uint64(w.params.Time) > 1024 {
			return
		}
		key, insecure, err := UnwrapKey(b, pass)
		switch {
		case err == nil:
			if insecure != w.insecure {
				t.Fatal("insecure flag lost")
			}
		case errors.Is(err, ErrWrongPassphrase):
			if key != [StorageKeySize]byte{} {
				t.Fatal("failed unwrap returned key bytes")
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// TestFuzzCorpus checks that the seed corpus exists and is not empty (a
// glob that matches nothing would leave the fuzzer without seeds).
func TestFuzzCorpus(t *testing.T) {
	if n := vectortest.Corpus(t, "FuzzUnwrapKey"); n < 3 {
		t.Errorf("FuzzUnwrapKey has %d seeds, want at least 3", n)
	}
}
