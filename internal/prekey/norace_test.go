//go:build !race

package prekey_test

const raceEnabled = false
