package main

import (
	"encoding/hex"

	"github.com/parleyim/parley/internal/shamir"
)

type shamirVectors struct {
	Comment string       `json:"comment"`
	Cases   []shamirCase `json:"cases"`
}

type shamirCase struct {
	Secret string   `json:"secret"`
	N      int      `json:"n"`
	K      int      `json:"k"`
	Parts  []string `json:"parts"`
}

// shamirFuzzInput encodes parts as internal/shamir's FuzzCombine reads
// them: a length byte before each part.
func shamirFuzzInput(parts [][]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, byte(len(p)))
		b = append(b, p...)
	}
	return b
}

func init() {
	register("shamir", func() any {
		v := &shamirVectors{Comment: "internal/shamir known answers (docs/backup.md §6): parts are value bytes || x; " +
			"the cases are split in order under the entropy stream \"parley vectors shamir\"; regenerate with go run ./internal/cmd/vectorgen"}
		var seeds [][]byte
		for _, c := range []struct {
			secret []byte
			n, k   int
		}{
			{[]byte{0x00}, 2, 2},
			{[]byte("Parley recovery"), 3, 2},
			{[]byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
				0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20}, 5, 3},
			{[]byte{0xff, 0xff, 0xff, 0xff}, 4, 4},
			{[]byte("x"), 7, 5},
		} {
			parts, err := shamir.Split(c.secret, c.n, c.k)
			if err != nil {
				panic("vectorgen: shamir: " + err.Error())
			}
			sc := shamirCase{Secret: hex.EncodeToString(c.secret), N: c.n, K: c.k}
			for _, p := range parts {
				sc.Parts = append(sc.Parts, hex.EncodeToString(p))
			}
			v.Cases = append(v.Cases, sc)
			seeds = append(seeds, shamirFuzzInput(parts[:c.k]), shamirFuzzInput(parts))
		}
		addCorpus("internal/shamir", "FuzzCombine", seeds...)
		return v
	})
}
