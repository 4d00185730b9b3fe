package shamir

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/vectortest"
)

// vectorCase is one case of testdata/vectors/shamir.json. The generator
// (internal/cmd/vectorgen/shamir.go) splits the cases in order under the
// entropy stream "parley vectors shamir"; TestVectors repeats that.
type vectorCase struct {
	Secret string   `json:"secret"`
	N      int      `json:"n"`
	K      int      `json:"k"`
	Parts  []string `json:"parts"`
}

type vectorFile struct {
	Comment string       `json:"comment"`
	Cases   []vectorCase `json:"cases"`
}

func TestVectors(t *testing.T) {
	var v vectorFile
	vectortest.Load(t, "shamir", &v)
	if len(v.Cases) < 4 {
		t.Fatalf("only %d cases", len(v.Cases))
	}
	restore := primitives.UnsafeDeterministicEntropy("parley vectors shamir")
	defer restore()
	for i, c := range v.Cases {
		secret := vectortest.Hex(t, c.Secret)
		parts, err := Split(secret, c.N, c.K)
		if err != nil {
			t.Fatal(err)
		}
		var committed [][]byte
		for j, p := range c.Parts {
			b := vectortest.Hex(t, p)
			if hex.EncodeToString(parts[j]) != p {
				t.Errorf("case %d part %d: Split gives %x, committed %s", i, j, parts[j], p)
			}
			committed = append(committed, b)
		}
		// Independently of the generator: the committed parts recover the
		// secret from every k-subset.
		subsets(committed, c.K, func(ps [][]byte) {
			got, err := Combine(ps)
			if err != nil || !bytes.Equal(got, secret) {
				t.Errorf("case %d: %v, %x; want %x", i, err, got, secret)
			}
		})
	}
}
