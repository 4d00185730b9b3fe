package backup

import (
	"errors"
	"fmt"

	"github.com/parleyim/parley/internal/shamir"
	"github.com/parleyim/parley/internal/wire"
)

// Recovery shares (docs/backup.md §6): the recovery key split k-of-n with
// Shamir's scheme over GF(2^8), one share per trusted contact. Any k
// shares give back the key; k−1 reveal nothing about it. Each share names
// the key's generation (its key ID), so shares of a rotated-out key cannot
// be mixed with current ones, and CombineShares accepts a result only if
// its key ID is the one the shares name.

const (
	// shareVersion is the first byte of a marshalled share.
	shareVersion = 1
	// ShareSize is the size of a marshalled share: version (1) || key ID
	// (8) || threshold (1) || index (1) || data (32).
	ShareSize = 1 + KeyIDSize + 1 + 1 + RecoveryKeySize
	// MaxShareCombinations bounds the subsets of threshold shares that
	// CombineShares tries when it holds more shares than the threshold and
	// some are wrong. Each try derives a key ID (about 0.1 ms).
	MaxShareCombinations = 1000
)

var (
	// ErrNotEnoughShares reports fewer shares than their threshold.
	ErrNotEnoughShares = errors.New("backup: not enough recovery shares")
	// ErrMixedShares reports shares of different recovery keys
	// (generations) or with different thresholds.
	ErrMixedShares = errors.New("backup: the recovery shares are from different recovery keys")
	// ErrDuplicateShare reports the same share index twice.
	ErrDuplicateShare = errors.New("backup: the same recovery share was given twice")
	// ErrSharesInconsistent reports shares that agree on their key ID and
	// threshold but combine to a key with another key ID: at least one
	// share is wrong (corrupted, or forged by a contact or the relay).
	ErrSharesInconsistent = errors.New("backup: the recovery shares do not combine to their recovery key; at least one is wrong")
	// ErrMalformedShare is matched by every *ShareError.
	ErrMalformedShare = errors.New("backup: malformed recovery share")
)

// ShareError reports a share that is not well formed. It matches
// ErrMalformedShare and wire.ErrMalformed.
type ShareError struct{ Reason string }

func (e *ShareError) Error() string { return "backup: malformed recovery share: " + e.Reason }

// Is makes errors.Is(err, ErrMalformedShare) and errors.Is(err,
// wire.ErrMalformed) true.
func (e *ShareError) Is(target error) bool {
	return target == ErrMalformedShare || target == wire.ErrMalformed
}

// Share is one trusted contact's part of a recovery key.
type Share struct {
	KeyID     [KeyIDSize]byte // the recovery key's ID (its generation)
	Threshold uint8           // how many shares recover the key: 2..255
	Index     uint8           // the share's x coordinate: 1..255
	Data      []byte          // the Shamir values: RecoveryKeySize bytes
}

func (s *Share) check() string {
	switch {
	case s.Threshold < 2:
		return "threshold below 2"
	case s.Index == 0:
		return "index 0"
	case len(s.Data) != RecoveryKeySize:
		return "data is not 32 bytes"
	}
	return ""
}

// Marshal returns the share's ShareSize-byte encoding. A share from
// SplitRecoveryKey or ParseShare always encodes; any other is encoded as
// it is, and ParseShare refuses it if it is invalid.
func (s Share) Marshal() []byte {
	b := make([]byte, 0, ShareSize)
	b = append(b, shareVersion)
	b = append(b, s.KeyID[:]...)
	b = append(b, s.Threshold, s.Index)
	return append(b, s.Data...)
}

// ParseShare decodes a share. It refuses any other length, another version
// (ErrUnsupportedVersion) and invalid fields (*ShareError).
func ParseShare(b []byte) (Share, error) {
	if len(b) == 0 {
		return Share{}, &ShareError{"empty"}
	}
	if b[0] != shareVersion {
		return Share{}, fmt.Errorf("%w: recovery share version %d, this client reads %d", ErrUnsupportedVersion, b[0], shareVersion)
	}
	if len(b) != ShareSize {
		return Share{}, &ShareError{fmt.Sprintf("%d bytes, want %d", len(b), ShareSize)}
	}
	s := Share{
		KeyID:     [KeyIDSize]byte(b[1 : 1+KeyIDSize]),
		Threshold: b[1+KeyIDSize],
		Index:     b[2+KeyIDSize],
		Data:      append([]byte(nil), b[3+KeyIDSize:]...),
	}
	if r := s.check(); r != "" {
		return Share{}, &ShareError{r}
	}
	return s, nil
}

// SplitRecoveryKey splits k into n shares of which any threshold recover
// it: 2 ≤ threshold ≤ n ≤ 255. Share i has index i+1.
func SplitRecoveryKey(k RecoveryKey, n, threshold int) ([]Share, error) {
	if threshold < 2 || n < threshold || n > shamir.MaxParts {
		return nil, fmt.Errorf("backup: cannot split a recovery key %d-of-%d: need 2 ≤ threshold ≤ shares ≤ %d", threshold, n, shamir.MaxParts)
	}
	parts, err := shamir.Split(k[:], n, threshold)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	id := k.KeyID()
	shares := make([]Share, n)
	for i, p := range parts {
		shares[i] = Share{KeyID: id, Threshold: uint8(threshold), Index: p[RecoveryKeySize], Data: p[:RecoveryKeySize:RecoveryKeySize]}
	}
	return shares, nil
}

// CombineShares recovers the recovery key from at least threshold shares
// of one generation. The result's key ID must be the shares' key ID, so
// too few shares or a wrong share never yield a silently wrong key. Given
// more shares than the threshold, it looks for threshold of them that
// agree (at most MaxShareCombinations subsets), so one bad share among
// spares does not block recovery.
func CombineShares(shares []Share) (RecoveryKey, error) {
	var k RecoveryKey
	if len(shares) == 0 {
		return k, fmt.Errorf("%w: none given", ErrNotEnoughShares)
	}
	first := &shares[0]
	for i := range shares {
		s := &shares[i]
		if r := s.check(); r != "" {
			return k, &ShareError{fmt.Sprintf("share %d: %s", i+1, r)}
		}
		if s.KeyID != first.KeyID || s.Threshold != first.Threshold {
			return k, ErrMixedShares
		}
		for j := range i {
			if shares[j].Index == s.Index {
				return k, fmt.Errorf("%w: index %d", ErrDuplicateShare, s.Index)
			}
		}
	}
	need := int(first.Threshold)
	if len(shares) < need {
		return k, fmt.Errorf("%w: %d of the %d needed", ErrNotEnoughShares, len(shares), need)
	}
	parts := make([][]byte, need)
	for i := range parts {
		parts[i] = make([]byte, RecoveryKeySize+1)
	}
	defer func() {
		for _, p := range parts {
			clear(p)
		}
	}()
	// Walk the need-element subsets of shares in lexicographic order.
	idx := make([]int, need)
	for i := range idx {
		idx[i] = i
	}
	for tries := 0; tries < MaxShareCombinations; tries++ {
		for j, i := range idx {
			copy(parts[j], shares[i].Data)
			parts[j][RecoveryKeySize] = shares[i].Index
		}
		secret, err := shamir.Combine(parts)
		if err != nil {
			return k, fmt.Errorf("backup: %w", err)
		}
		copy(k[:], secret)
		clear(secret)
		if k.KeyID() == first.KeyID {
			return k, nil
		}
		// Next subset: advance the rightmost index that can move.
		j := need - 1
		for j >= 0 && idx[j] == len(shares)-need+j {
			j--
		}
		if j < 0 {
			break
		}
		idx[j]++
		for m := j + 1; m < need; m++ {
			idx[m] = idx[m-1] + 1
		}
	}
	k = RecoveryKey{}
	return k, ErrSharesInconsistent
}
