//go:build race

package prekey_test

// raceEnabled thins out the exhaustive single-goroutine tests (every strict
// prefix of a set, filling a set to its limit), which the race detector
// slows by two orders of magnitude without checking anything more.
const raceEnabled = true
