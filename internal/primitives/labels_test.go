package primitives

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestLabelsDistinct checks the domain separation of every label: none is
// empty, none contains NUL (the separator in label || 0x00 || context), all
// share the versioned prefix, and no framed label is a prefix of another,
// so no (label, context) pair can be read as another label's input.
func TestLabelsDistinct(t *testing.T) {
	seen := map[Label]bool{}
	for _, l := range AllLabels {
		if l == "" {
			t.Error("empty label")
		}
		if strings.ContainsRune(string(l), 0) {
			t.Errorf("label %q contains NUL", l)
		}
		if !strings.HasPrefix(string(l), "Parley-v1 ") {
			t.Errorf("label %q does not start with %q", l, "Parley-v1 ")
		}
		if seen[l] {
			t.Errorf("label %q listed twice", l)
		}
		seen[l] = true
	}
	for i, a := range AllLabels {
		for j, b := range AllLabels {
			if i != j && strings.HasPrefix(string(b)+"\x00", string(a)+"\x00") {
				t.Errorf("framed label %q is a prefix of framed label %q", a, b)
			}
		}
	}
	// The hybrid signature prefix is framed the same way and must not be
	// mistaken for any label.
	if !strings.HasSuffix(hybridPrefix, "\x00") || strings.Count(hybridPrefix, "\x00") != 1 {
		t.Errorf("hybridPrefix %q is not a NUL-terminated label", hybridPrefix)
	}
	for _, l := range AllLabels {
		if strings.HasPrefix(hybridPrefix, string(l)+"\x00") || strings.HasPrefix(string(l)+"\x00", hybridPrefix) {
			t.Errorf("hybridPrefix collides with label %q", l)
		}
	}
}

// TestAllLabelsComplete checks that every Label constant declared in the
// package is in AllLabels, so that a new label cannot escape the
// distinctness, documentation and vector checks.
func TestAllLabelsComplete(t *testing.T) {
	fset := token.NewFileSet()
	listed := map[Label]bool{}
	for _, l := range AllLabels {
		listed[l] = true
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Label" {
					continue
				}
				for i, n := range vs.Names {
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok {
						t.Errorf("%s: label %s is not a string literal", name, n.Name)
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					found++
					if !listed[Label(v)] {
						t.Errorf("%s: label %s (%q) is missing from AllLabels", name, n.Name, v)
					}
				}
			}
		}
	}
	if found != len(AllLabels) {
		t.Errorf("found %d Label constants, AllLabels has %d entries", found, len(AllLabels))
	}
}

// TestLabelsDocumented checks that docs/protocol.md lists every label
// (§2.4), so the spec and the code cannot drift apart.
func TestLabelsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "protocol.md"))
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("docs/protocol.md does not exist yet; once it does, this test requires it to list every label in primitives.AllLabels")
	}
	if err != nil {
		t.Fatal(err)
	}
	spec := string(b)
	for _, l := range AllLabels {
		if !strings.Contains(spec, string(l)) {
			t.Errorf("docs/protocol.md does not mention label %q", l)
		}
	}
}

// moduleGoFiles calls fn for every non-test .go file of the module at
// root (rel is relative to root, with forward slashes), skipping testdata,
// hidden directories and nested modules.
func moduleGoFiles(root string, fn func(rel, path string) error) error {
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("module root not found: %w", err)
	}
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root {
				if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
					return filepath.SkipDir
				}
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		n++
		return fn(filepath.ToSlash(rel), path)
	})
	if err == nil && n == 0 {
		err = errors.New("no .go files found")
	}
	return err
}

const entropyHook = "UnsafeDeterministicEntropy"

// deterministicEntropyUses lists the places in the module at root that use
// the deterministic entropy hook outside its definition and the vector
// generator. It looks at identifiers and string literals, not comments, so
// that documentation mentioning the hook (doc.go) is allowed while any use,
// qualified or not, is caught.
func deterministicEntropyUses(root string) ([]string, error) {
	var uses []string
	fset := token.NewFileSet()
	err := moduleGoFiles(root, func(rel, path string) error {
		if rel == "internal/primitives/entropy.go" || strings.HasPrefix(rel, "internal/cmd/vectorgen/") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.Contains(string(src), entropyHook) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
		if err != nil {
			// Unparseable and mentions the hook: report it rather than
			// guess.
			uses = append(uses, rel+": "+err.Error())
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.Ident:
				if n.Name == entropyHook {
					uses = append(uses, fmt.Sprintf("%s:%d", rel, fset.Position(n.Pos()).Line))
				}
			case *ast.BasicLit:
				if n.Kind == token.STRING && strings.Contains(n.Value, entropyHook) {
					uses = append(uses, fmt.Sprintf("%s:%d (string)", rel, fset.Position(n.Pos()).Line))
				}
			}
			return true
		})
		return nil
	})
	return uses, err
}

// restrictedModules are the third-party cryptography libraries that, like
// crypto/..., only internal/primitives and its subpackages may import.
var restrictedModules = []string{
	"github.com/cloudflare/circl",
	"filippo.io/edwards25519", // group arithmetic for internal/primitives/vrf
}

// cryptoImports lists the files of the module at root outside
// internal/primitives that import crypto/..., circl or edwards25519.
func cryptoImports(root string) ([]string, error) {
	var bad []string
	fset := token.NewFileSet()
	err := moduleGoFiles(root, func(rel, path string) error {
		if strings.HasPrefix(rel, "internal/primitives/") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			// The one exception: commands may configure TLS for the
			// transport (defence in depth, docs/protocol.md §2); TLS
			// protects no Parley secret.
			if p == "crypto/tls" && strings.HasPrefix(rel, "cmd/") {
				continue
			}
			restricted := p == "crypto" || strings.HasPrefix(p, "crypto/")
			for _, m := range restrictedModules {
				restricted = restricted || p == m || strings.HasPrefix(p, m+"/")
			}
			if restricted {
				bad = append(bad, fmt.Sprintf("%s imports %q", rel, p))
			}
		}
		return nil
	})
	return bad, err
}

var moduleRoot = filepath.Join("..", "..")

// TestOnlyVectorGeneratorUsesDeterministicEntropy: the deterministic
// entropy hook turns every key into a known value, so no production code
// but its definition and the vector generator may refer to it.
func TestOnlyVectorGeneratorUsesDeterministicEntropy(t *testing.T) {
	uses, err := deterministicEntropyUses(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range uses {
		t.Errorf("%s: uses primitives.%s; only internal/cmd/vectorgen may", u, entropyHook)
	}
}

// TestOnlyPrimitivesImportsCrypto: internal/primitives (with its
// subpackages) is the one cipher suite (docs/protocol.md §2); every other
// package must go through it, so that no package picks its own algorithm,
// its own group arithmetic or its own randomness.
func TestOnlyPrimitivesImportsCrypto(t *testing.T) {
	bad, err := cryptoImports(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Errorf("%s; only internal/primitives may", b)
	}
}

// TestHygieneChecksCatchViolations runs the two checks above on a small
// fake module, so that a broken walk cannot make them pass vacuously.
func TestHygieneChecksCatchViolations(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":                         "module example.com/m\n",
		"internal/primitives/entropy.go": "package primitives\n\nimport \"crypto/rand\"\n\nfunc UnsafeDeterministicEntropy() {}\n\nvar _ = rand.Read\n",
		"internal/primitives/doc.go":     "// Package primitives mentions UnsafeDeterministicEntropy in a comment.\npackage primitives\n",
		"internal/cmd/vectorgen/main.go": "package main\n\nimport p \"example.com/m/internal/primitives\"\n\nfunc main() { p.UnsafeDeterministicEntropy() }\n",
		"internal/ratchet/bad.go":        "package ratchet\n\nimport p \"example.com/m/internal/primitives\"\n\nfunc f() { p.UnsafeDeterministicEntropy() }\n",
		"internal/ratchet/ok_test.go":    "package ratchet\n\nimport (\n\t\"crypto/sha256\"\n\tp \"example.com/m/internal/primitives\"\n)\n\nfunc g() { p.UnsafeDeterministicEntropy(); sha256.New() }\n",
		"internal/store/keys.go":         "package store\n\nimport (\n\t\"crypto/sha256\"\n\t\"github.com/cloudflare/circl/sign/mldsa/mldsa65\"\n)\n",
		"internal/store/reflect.go":      "package store\n\nvar name = \"UnsafeDeterministicEntropy\"\n",
		"internal/store/testdata/x.go":   "package x\n\nimport \"crypto/md5\"\n",
		"internal/cryptoish/name.go":     "package cryptoish\n\nimport \"golang.org/x/crypto/cryptobyte\"\n",
		"internal/kt/index.go":           "package kt\n\nimport (\n\t\"filippo.io/edwards25519\"\n\t\"filippo.io/edwards25519/field\"\n)\n",
		"internal/kt/ok_test.go":         "package kt\n\nimport \"filippo.io/edwards25519\"\n",
		"internal/kt/near.go":            "package kt\n\nimport \"filippo.io/edwards25519x\"\n",
		"internal/primitives/vrf/vrf.go": "package vrf\n\nimport (\n\t\"crypto/sha512\"\n\t\"filippo.io/edwards25519\"\n)\n",
		"tools/nested/go.mod":            "module example.com/tools\n",
		"tools/nested/gen.go":            "package gen\n\nimport \"crypto/rand\"\n",
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	uses, err := deterministicEntropyUses(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"internal/ratchet/bad.go:5", "internal/store/reflect.go:3 (string)"}; !slices.Equal(uses, want) {
		t.Errorf("deterministicEntropyUses = %q, want %q", uses, want)
	}
	bad, err := cryptoImports(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`internal/kt/index.go imports "filippo.io/edwards25519"`,
		`internal/kt/index.go imports "filippo.io/edwards25519/field"`,
		`internal/store/keys.go imports "crypto/sha256"`,
		`internal/store/keys.go imports "github.com/cloudflare/circl/sign/mldsa/mldsa65"`,
	}
	if !slices.Equal(bad, want) {
		t.Errorf("cryptoImports = %q, want %q", bad, want)
	}
}
