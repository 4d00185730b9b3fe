// Package vectortest loads the committed known-answer vectors and checks the
// fuzz seed corpora, for package tests. It is imported only by _test files.
package vectortest

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// root is the module root, found from this file's location.
func root(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("vectortest: cannot locate module root")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Load decodes testdata/vectors/name.json into v, failing the test if the
// file is missing or malformed. Regenerate with `go run ./internal/cmd/vectorgen`.
func Load(t testing.TB, name string, v any) {
	t.Helper()
	path := filepath.Join(root(t), "testdata", "vectors", name+".json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("vectortest: %v (regenerate with: go run ./internal/cmd/vectorgen)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("vectortest: %s: %v", path, err)
	}
}

// Corpus returns the seed inputs of a fuzz target in the calling package
// (testdata/fuzz/target), failing the test if there are none: a seed glob
// that silently matches nothing would leave the fuzzer without a corpus.
func Corpus(t testing.TB, target string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", target))
	if err != nil {
		t.Fatalf("vectortest: fuzz corpus of %s: %v", target, err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("vectortest: fuzz corpus of %s is empty", target)
	}
	return n
}

// Hex decodes a hex string from a vector file.
func Hex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("vectortest: bad hex in vector: %v", err)
	}
	return b
}
