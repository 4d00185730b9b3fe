// Command vectorgen writes Parley's known-answer vectors under
// testdata/vectors/ and the fuzz seed corpora under each package's
// testdata/fuzz/. Run it from the module root:
//
//	go run ./internal/cmd/vectorgen
//
// It is the only program that uses primitives.UnsafeDeterministicEntropy:
// every key, salt and encapsulation in the vectors comes from a fixed seed,
// so running it twice writes identical files. The package tests replay the
// files; a change in any output is a wire or KDF change and must be
// deliberate.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/parleyim/parley/internal/primitives"
)

// generator produces one vector file. Generators run in name order, each
// under its own deterministic entropy seeded by its name.
type generator struct {
	name string
	fn   func() any
}

var generators []generator

// register adds a vector file named name+".json".
func register(name string, fn func() any) {
	generators = append(generators, generator{name, fn})
}

// corpus is one fuzz target's seed corpus, written by generators through
// addCorpus and flushed by main.
type corpus struct {
	dir    string // package directory relative to the module root
	target string // fuzz function name
	inputs [][]byte
}

var corpora []*corpus

// addCorpus records seed inputs for a fuzz target. Each input becomes one
// file in dir/testdata/fuzz/target/ in the go test fuzz v1 format.
func addCorpus(dir, target string, inputs ...[]byte) {
	for _, c := range corpora {
		if c.dir == dir && c.target == target {
			c.inputs = append(c.inputs, inputs...)
			return
		}
	}
	corpora = append(corpora, &corpus{dir: dir, target: target, inputs: inputs})
}

func main() {
	root := flag.String("root", ".", "module root")
	flag.Parse()
	sort.Slice(generators, func(i, j int) bool { return generators[i].name < generators[j].name })
	for _, g := range generators {
		restore := primitives.UnsafeDeterministicEntropy("parley vectors " + g.name)
		v := g.fn()
		restore()
		if v == nil {
			continue // the generator only writes seed corpora
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			log.Fatalf("vectorgen: %s: %v", g.name, err)
		}
		path := filepath.Join(*root, "testdata", "vectors", g.name+".json")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			log.Fatalf("vectorgen: %v", err)
		}
		fmt.Println("wrote", path)
	}
	for _, c := range corpora {
		// Write into a fresh directory and swap it in, so that a fuzzer
		// reading the corpus never sees it half-written.
		dir := filepath.Join(*root, c.dir, "testdata", "fuzz", c.target)
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			log.Fatalf("vectorgen: %v", err)
		}
		tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+c.target+"-")
		if err != nil {
			log.Fatalf("vectorgen: %v", err)
		}
		for i, in := range c.inputs {
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(in)) + ")\n"
			name := filepath.Join(tmp, fmt.Sprintf("seed-%03d", i))
			if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
				log.Fatalf("vectorgen: %v", err)
			}
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			log.Fatalf("vectorgen: %v", err)
		}
		old := tmp + ".old"
		if err := os.Rename(dir, old); err != nil && !os.IsNotExist(err) {
			log.Fatalf("vectorgen: %v", err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			log.Fatalf("vectorgen: %v", err)
		}
		if err := os.RemoveAll(old); err != nil {
			log.Fatalf("vectorgen: %v", err)
		}
		fmt.Printf("wrote %d seeds to %s\n", len(c.inputs), dir)
	}
}
