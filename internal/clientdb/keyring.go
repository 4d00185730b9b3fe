package clientdb

import (
	"encoding/binary"
	"fmt"

	"github.com/parleyim/parley/internal/primitives"
)

// Argon2id cost of new wrapped keys (docs/client.md §2). They are
// the second recommended option of RFC 9106 §4 (m = 64 MiB, t = 3, p = 4),
// which the RFC suggests where memory is constrained: a phone must unlock its
// store in well under a second. They are written next to every wrapped key,
// so they can be raised later; Open rewraps a key found under a lower cost.
const (
	Argon2MemoryKiB   = 64 * 1024
	Argon2Time        = 3
	Argon2Parallelism = 4
)

// Implementation limits on the Argon2id parameters read back from a file.
// They are not security bounds (weak parameters can only be written by
// someone who knows the passphrase); they stop a corrupted file from making
// Open allocate gigabytes or run for hours.
const (
	maxArgon2MemoryKiB   = 1 << 20 // 1 GiB, 16 times the default
	maxArgon2Time        = 64
	maxArgon2Parallelism = 64
)

// DefaultArgon2Params are the parameters Create and ChangePassphrase use.
var DefaultArgon2Params = primitives.Argon2Params{
	MemoryKiB:   Argon2MemoryKiB,
	Time:        Argon2Time,
	Parallelism: Argon2Parallelism,
}

// kdfParams is what Create, ChangePassphrase and the upgrade in Open use.
// Only tests change it (from TestMain, before any test runs), because the
// real cost makes every Create take a noticeable fraction of a second; it is
// deliberately not an exported knob.
var kdfParams = DefaultArgon2Params

// StorageKeySize is the size of the random storage key.
const StorageKeySize = primitives.AEADKeySize

// The wrapped-key format, version 1 (docs/client.md §2):
//
//	magic "PLYK" | version 0x01 | kind
//	kind 0x01 (passphrase): m uint32 | t uint32 | p uint8 | salt [16]
//	                        | AES-256-GCM(KEK, storage key, ad = every byte before it)
//	                          as nonce [12] | ciphertext [32] | tag [16]
//	kind 0x02 (insecure):   storage key [32]
//
// Integers are big-endian. KEK = Argon2id(passphrase, salt, m, t, p), 32
// bytes. The header is the associated data, so changing a parameter or the
// salt fails the tag exactly as a wrong passphrase does (it would change the
// KEK anyway; binding it also keeps the format unambiguous).
const (
	wrapMagic     = "PLYK"
	wrapVersion   = 1
	kindPassword  = 1
	kindInsecure  = 2
	wrapHeaderLen = 4 + 1 + 1
	wrapParamsLen = 4 + 4 + 1 + primitives.Argon2SaltSize
	wrapSealedLen = primitives.AEADNonceSize + StorageKeySize + primitives.AEADOverhead

	wrappedPassphraseLen = wrapHeaderLen + wrapParamsLen + wrapSealedLen
	wrappedInsecureLen   = wrapHeaderLen + StorageKeySize
)

// wrappedKey is a decoded wrapped key.
type wrappedKey struct {
	insecure bool
	params   primitives.Argon2Params
	salt     [primitives.Argon2SaltSize]byte
	sealed   []byte // kind passphrase: nonce || ciphertext || tag
	clear    [StorageKeySize]byte
}

// checkParams applies the implementation limits, on both write and read.
func checkParams(p primitives.Argon2Params) error {
	if p.Time < 1 || p.Time > maxArgon2Time ||
		p.Parallelism < 1 || p.Parallelism > maxArgon2Parallelism ||
		uint64(p.MemoryKiB) < 8*uint64(p.Parallelism) || p.MemoryKiB > maxArgon2MemoryKiB {
		return fmt.Errorf("%w: Argon2id parameters m=%d t=%d p=%d out of range", ErrCorrupt, p.MemoryKiB, p.Time, p.Parallelism)
	}
	return nil
}

// header returns the bytes a passphrase-wrapped key authenticates.
func (w *wrappedKey) header() []byte {
	b := make([]byte, 0, wrappedPassphraseLen)
	b = append(b, wrapMagic...)
	b = append(b, wrapVersion, kindPassword)
	b = binary.BigEndian.AppendUint32(b, w.params.MemoryKiB)
	b = binary.BigEndian.AppendUint32(b, w.params.Time)
	b = append(b, w.params.Parallelism)
	return append(b, w.salt[:]...)
}

func (w *wrappedKey) marshal() []byte {
	if w.insecure {
		b := make([]byte, 0, wrappedInsecureLen)
		b = append(b, wrapMagic...)
		b = append(b, wrapVersion, kindInsecure)
		return append(b, w.clear[:]...)
	}
	return append(w.header(), w.sealed...)
}

// parseWrappedKey decodes a wrapped key strictly: one encoding per value, no
// trailing bytes, parameters within the implementation limits.
func parseWrappedKey(b []byte) (*wrappedKey, error) {
	bad := func(what string) error { return fmt.Errorf("%w: wrapped key: %s", ErrCorrupt, what) }
	if len(b) < wrapHeaderLen || string(b[:4]) != wrapMagic {
		return nil, bad("bad magic")
	}
	if b[4] != wrapVersion {
		return nil, bad(fmt.Sprintf("unknown version %d", b[4]))
	}
	w := &wrappedKey{}
	switch b[5] {
	case kindInsecure:
		if len(b) != wrappedInsecureLen {
			return nil, bad("wrong length")
		}
		w.insecure = true
		copy(w.clear[:], b[wrapHeaderLen:])
	case kindPassword:
		if len(b) != wrappedPassphraseLen {
			return nil, bad("wrong length")
		}
		p := b[wrapHeaderLen:]
		w.params = primitives.Argon2Params{
			MemoryKiB:   binary.BigEndian.Uint32(p[0:4]),
			Time:        binary.BigEndian.Uint32(p[4:8]),
			Parallelism: p[8],
		}
		if err := checkParams(w.params); err != nil {
			return nil, err
		}
		copy(w.salt[:], p[9:wrapParamsLen])
		w.sealed = append([]byte(nil), p[wrapParamsLen:]...)
	default:
		return nil, bad(fmt.Sprintf("unknown kind %d", b[5]))
	}
	return w, nil
}

// WrapKey wraps a storage key under a passphrase with Argon2id at the given
// cost and a fresh random salt, in the format above. The parameters are data
// so that the known-answer vectors can use a cheap cost; Create and
// ChangePassphrase always pass DefaultArgon2Params.
func WrapKey(storageKey *[StorageKeySize]byte, passphrase []byte, params primitives.Argon2Params) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, ErrEmptyPassphrase
	}
	if err := checkParams(params); err != nil {
		return nil, fmt.Errorf("clientdb: cannot wrap key: %w", err)
	}
	w := &wrappedKey{params: params}
	primitives.Random(w.salt[:])
	kek, err := primitives.Argon2id(passphrase, w.salt[:], params)
	if err != nil {
		return nil, fmt.Errorf("clientdb: cannot wrap key: %w", err)
	}
	// primitives.Seal draws a random nonce. Each KEK is used once (its salt
	// is fresh), so even a fixed nonce would be safe; a random one costs 12
	// bytes and needs no argument.
	hdr := w.header()
	out := primitives.Seal(&kek, hdr, storageKey[:], hdr)
	clear(kek[:])
	return out, nil
}

// WrapKeyInsecure encodes a storage key in the clear, for a store the user
// explicitly chose not to protect with a passphrase.
func WrapKeyInsecure(storageKey *[StorageKeySize]byte) []byte {
	w := &wrappedKey{insecure: true, clear: *storageKey}
	return w.marshal()
}

// UnwrapKey recovers the storage key from a wrapped key. insecure reports a
// key stored in the clear, in which case passphrase is not used. A wrong
// passphrase, and any change to the salt, parameters or sealed key, is
// ErrWrongPassphrase; a malformed encoding is ErrCorrupt.
func UnwrapKey(wrapped, passphrase []byte) (key [StorageKeySize]byte, insecure bool, err error) {
	w, err := parseWrappedKey(wrapped)
	if err != nil {
		return key, false, err
	}
	key, err = w.unwrap(passphrase)
	return key, w.insecure, err
}

func (w *wrappedKey) unwrap(passphrase []byte) (key [StorageKeySize]byte, err error) {
	if w.insecure {
		return w.clear, nil
	}
	kek, err := primitives.Argon2id(passphrase, w.salt[:], w.params)
	if err != nil {
		// checkParams already refused what Argon2id refuses.
		return key, fmt.Errorf("%w: wrapped key: %v", ErrCorrupt, err)
	}
	// The GCM tag comparison is constant-time, and every failure is the one
	// ErrDecrypt, so nothing tells a wrong passphrase from a tampered salt.
	out, err := primitives.Open(&kek, key[:0], w.sealed, w.header())
	clear(kek[:])
	if err != nil || len(out) != StorageKeySize {
		clear(key[:])
		return key, ErrWrongPassphrase
	}
	return key, nil
}

// weaker reports whether p costs an attacker less than q in memory or time.
func weaker(p, q primitives.Argon2Params) bool {
	return p.MemoryKiB < q.MemoryKiB || p.Time < q.Time
}

// Subkeys of the storage key. Each has one job, so a sealed value can never
// be read as an index hash or the reverse.
const (
	labelSealKey  = primitives.LabelClientDBSealKey
	labelIndexKey = primitives.LabelClientDBIndexKey
	labelIndex    = primitives.LabelClientDBIndex
)

// keys are the subkeys of an open store.
type keys struct {
	sealKey  [primitives.AEADKeySize]byte
	indexKey [primitives.KeySize]byte
}

func deriveKeys(storageKey *[StorageKeySize]byte) *keys {
	k := &keys{}
	copy(k.sealKey[:], primitives.HKDF(storageKey[:], nil, labelSealKey, nil, primitives.AEADKeySize))
	copy(k.indexKey[:], primitives.HKDF(storageKey[:], nil, labelIndexKey, nil, primitives.KeySize))
	return k
}

// wipe clears the subkeys, as far as Go lets us: copies made by the runtime
// or by HKDF's callees are out of reach.
func (k *keys) wipe() {
	clear(k.sealKey[:])
	clear(k.indexKey[:])
}
