package clientdb

import (
	"os"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
)

// defaultKDFAtInit is kdfParams as the package set it, before TestMain
// lowered it.
var defaultKDFAtInit primitives.Argon2Params

// testKDF is the Argon2id cost of every store the tests create: the real
// cost would make each Create take a large fraction of a second (seconds
// under -race). TestDefaultArgon2Params checks the real cost separately.
var testKDF = primitives.Argon2Params{MemoryKiB: 32, Time: 1, Parallelism: 1}

func TestMain(m *testing.M) {
	defaultKDFAtInit = kdfParams
	kdfParams = testKDF
	os.Exit(m.Run())
}
