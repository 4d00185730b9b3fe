package clientdb

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/parleyim/parley/internal/primitives"
)

// sealADPrefix starts the associated data of every sealed value.
const sealADPrefix = string(primitives.LabelClientDBSealedValue)

// sealAD is the associated data of a sealed value: the prefix, then the
// table, the column and every bound value, each as uint32 length || bytes.
// The length prefixes make the encoding injective, so no (table, column,
// row) can be read as another. The bound values are the row's key and every
// clear column of the row: moving a sealed value to another row or column,
// or editing a clear column next to it, makes opening it fail.
func sealAD(table, column string, bind [][]byte) []byte {
	n := len(sealADPrefix) + 8 + len(table) + len(column)
	for _, b := range bind {
		n += 4 + len(b)
	}
	ad := make([]byte, 0, n)
	ad = append(ad, sealADPrefix...)
	ad = appendPart(ad, []byte(table))
	ad = appendPart(ad, []byte(column))
	for _, b := range bind {
		ad = appendPart(ad, b)
	}
	return ad
}

func appendPart(b, part []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(part)))
	return append(b, part...)
}

// seal encrypts one value of table.column under the seal key with a random
// nonce (primitives.Seal). A store seals far fewer than the 2^32 values a
// random-nonce AES-GCM key allows.
func (k *keys) seal(plaintext []byte, table, column string, bind ...[]byte) []byte {
	return primitives.Seal(&k.sealKey, nil, plaintext, sealAD(table, column, bind))
}

// open reverses seal; any failure is ErrCorrupt, naming the column (the
// local user is no oracle to hide from, and the name helps a bug report).
func (k *keys) open(sealed []byte, table, column string, bind ...[]byte) ([]byte, error) {
	out, err := primitives.Open(&k.sealKey, nil, sealed, sealAD(table, column, bind))
	if err != nil {
		return nil, fmt.Errorf("%w: %s.%s", ErrCorrupt, table, column)
	}
	return out, nil
}

// Index domains. Each keyed hash is computed in one domain, so equal
// strings of different kinds (a username and a setting name) do not
// collide. Every username (own, contact, conversation, sender) is hashed in
// the same domain, so the tables can be joined on it.
const (
	domainUsername = "username"
	domainDevice   = "device"
	domainMessage  = "message"
	domainSetting  = "setting"
)

// IndexSize is the size of a keyed hash.
const indexSize = primitives.KeySize

// index is the keyed hash that stands in for a sealed lookup key:
// HKDF-SHA256(secret = index key, info = labelIndex || 0x00 || domain ||
// 0x00 || value), 32 bytes. For one key it is a PRF of (domain, value):
// without the storage key it reveals only which rows share a value, and
// for a username nothing a dictionary of guesses could test.
func (k *keys) index(domain string, value []byte) []byte {
	ctx := make([]byte, 0, len(domain)+1+len(value))
	ctx = append(ctx, domain...)
	ctx = append(ctx, 0)
	ctx = append(ctx, value...)
	return primitives.HKDF(k.indexKey[:], nil, labelIndex, ctx, indexSize)
}

func (k *keys) username(name string) []byte { return k.index(domainUsername, []byte(name)) }
func (k *keys) device(id [16]byte) []byte   { return k.index(domainDevice, id[:]) }
func (k *keys) setting(name string) []byte  { return k.index(domainSetting, []byte(name)) }

// message is the de-duplication key of a message: the sender chooses the
// message ID, so only (sender, ID) names a message. The sender is length
// prefixed, so (sender, ID) pairs cannot collide.
func (k *keys) message(sender string, id [16]byte) []byte {
	v := make([]byte, 0, 4+len(sender)+16)
	v = appendPart(v, []byte(sender))
	v = append(v, id[:]...)
	return k.index(domainMessage, v)
}

// Clear columns are bound into associated data through these encodings.

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func boolByte(b bool) []byte {
	if b {
		return []byte{1}
	}
	return []byte{0}
}

// unixNano stores a time as Unix nanoseconds; the zero time is 0, so a
// missing time survives a round trip. Times outside what int64 nanoseconds
// hold (years 1678–2262) are refused by checkTime before they get here.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Times int64 Unix nanoseconds can hold, with a margin.
var (
	minTime = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

func checkTime(what string, t time.Time) error {
	if t.IsZero() || (t.After(minTime) && t.Before(maxTime)) {
		return nil
	}
	return fmt.Errorf("clientdb: %s %v out of range", what, t)
}
