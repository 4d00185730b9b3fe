package backup

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/wire"
)

func TestSharesAnyThresholdRecover(t *testing.T) {
	k := NewRecoveryKey()
	shares, err := SplitRecoveryKey(k, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shares {
		if s.KeyID != k.KeyID() || s.Threshold != 3 || len(s.Data) != RecoveryKeySize {
			t.Fatalf("share %+v", s)
		}
	}
	for a := range 5 {
		for b := a + 1; b < 5; b++ {
			for c := b + 1; c < 5; c++ {
				got, err := CombineShares([]Share{shares[c], shares[a], shares[b]})
				if err != nil || got != k {
					t.Fatalf("shares %d %d %d: %v", a, b, c, err)
				}
			}
		}
	}
	if got, err := CombineShares(shares); err != nil || got != k {
		t.Fatalf("all five: %v", err)
	}
}

// TestKMinusOneSharesFail: fewer shares than the threshold are refused,
// and lying about the threshold in them does not yield a key.
func TestKMinusOneSharesFail(t *testing.T) {
	k := NewRecoveryKey()
	shares, _ := SplitRecoveryKey(k, 5, 3)
	if _, err := CombineShares(shares[:2]); !errors.Is(err, ErrNotEnoughShares) {
		t.Fatalf("2 of 3: %v", err)
	}
	if _, err := CombineShares(nil); !errors.Is(err, ErrNotEnoughShares) {
		t.Fatalf("none: %v", err)
	}
	lied := []Share{shares[0], shares[1]}
	lied[0].Threshold, lied[1].Threshold = 2, 2
	got, err := CombineShares(lied)
	if !errors.Is(err, ErrSharesInconsistent) {
		t.Fatalf("2 shares claiming threshold 2: %v", err)
	}
	if got != (RecoveryKey{}) {
		t.Fatal("a key was returned with the error")
	}
}

// TestSharesFromAnotherGenerationFail: after a rotation, old shares do not
// mix with new ones.
func TestSharesFromAnotherGenerationFail(t *testing.T) {
	old, cur := NewRecoveryKey(), NewRecoveryKey()
	oldShares, _ := SplitRecoveryKey(old, 3, 2)
	newShares, _ := SplitRecoveryKey(cur, 3, 2)
	if _, err := CombineShares([]Share{oldShares[0], newShares[1]}); !errors.Is(err, ErrMixedShares) {
		t.Fatalf("old and new: %v", err)
	}
	// An old share relabelled with the new key ID is a wrong share.
	relabelled := oldShares[0]
	relabelled.KeyID = cur.KeyID()
	if _, err := CombineShares([]Share{relabelled, newShares[1]}); !errors.Is(err, ErrSharesInconsistent) {
		t.Fatalf("relabelled old share: %v", err)
	}
	// Shares of the same key split twice do not mix either.
	again, _ := SplitRecoveryKey(cur, 3, 2)
	if _, err := CombineShares([]Share{again[0], newShares[1]}); !errors.Is(err, ErrSharesInconsistent) {
		t.Fatalf("two splits of one key: %v", err)
	}
	threshold3, _ := SplitRecoveryKey(cur, 3, 3)
	if _, err := CombineShares([]Share{threshold3[0], newShares[1], newShares[2]}); !errors.Is(err, ErrMixedShares) {
		t.Fatalf("different thresholds: %v", err)
	}
}

// TestLyingContactCannotForceWrongKey: a forged share among exactly
// threshold shares is detected; among spares it is skipped.
func TestLyingContactCannotForceWrongKey(t *testing.T) {
	k := NewRecoveryKey()
	shares, _ := SplitRecoveryKey(k, 5, 3)
	forged := shares[1]
	forged.Data = bytes.Clone(forged.Data)
	forged.Data[7] ^= 0x20
	if _, err := CombineShares([]Share{shares[0], forged, shares[2]}); !errors.Is(err, ErrSharesInconsistent) {
		t.Fatalf("forged share: %v", err)
	}
	got, err := CombineShares([]Share{shares[0], forged, shares[2], shares[3]})
	if err != nil || got != k {
		t.Fatalf("forged share among spares: %v", err)
	}
}

func TestDuplicateSharesRefused(t *testing.T) {
	shares, _ := SplitRecoveryKey(NewRecoveryKey(), 3, 2)
	if _, err := CombineShares([]Share{shares[0], shares[0]}); !errors.Is(err, ErrDuplicateShare) {
		t.Fatalf("same share twice: %v", err)
	}
	other := shares[1]
	other.Index = shares[0].Index
	if _, err := CombineShares([]Share{shares[0], other, shares[2]}); !errors.Is(err, ErrDuplicateShare) {
		t.Fatalf("same index twice: %v", err)
	}
}

func TestSplitRecoveryKeyParameters(t *testing.T) {
	k := NewRecoveryKey()
	for _, c := range [][2]int{{3, 1}, {2, 3}, {256, 2}, {0, 0}, {1, 1}} {
		if _, err := SplitRecoveryKey(k, c[0], c[1]); err == nil {
			t.Errorf("%d-of-%d accepted", c[1], c[0])
		}
	}
}

func TestShareEncoding(t *testing.T) {
	shares, _ := SplitRecoveryKey(NewRecoveryKey(), 3, 2)
	for _, s := range shares {
		b := s.Marshal()
		if len(b) != ShareSize {
			t.Fatalf("%d bytes", len(b))
		}
		got, err := ParseShare(b)
		if err != nil || got.KeyID != s.KeyID || got.Threshold != s.Threshold || got.Index != s.Index || !bytes.Equal(got.Data, s.Data) {
			t.Fatalf("round trip: %+v, %v", got, err)
		}
		// Every strict prefix and any trailing byte is refused.
		for n := range len(b) {
			if _, err := ParseShare(b[:n]); !errors.Is(err, ErrMalformedShare) {
				t.Fatalf("prefix of %d: %v", n, err)
			}
		}
		if _, err := ParseShare(append(bytes.Clone(b), 0)); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("trailing byte: %v", err)
		}
		v2 := bytes.Clone(b)
		v2[0] = 2
		if _, err := ParseShare(v2); !errors.Is(err, ErrUnsupportedVersion) {
			t.Fatalf("version 2: %v", err)
		}
		for name, pos := range map[string]int{"threshold": 1 + KeyIDSize, "index": 2 + KeyIDSize} {
			bad := bytes.Clone(b)
			bad[pos] = 0
			if _, err := ParseShare(bad); !errors.Is(err, ErrMalformedShare) {
				t.Fatalf("%s 0: %v", name, err)
			}
		}
	}
}
