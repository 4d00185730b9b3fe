package main

import (
	"encoding/binary"
	"encoding/hex"

	"github.com/parleyim/parley/internal/clientdb"
	"github.com/parleyim/parley/internal/primitives"
)

// clientdbVectors is testdata/vectors/clientdb.json, replayed by
// internal/clientdb's TestVectors: the wrapped-key format, the subkeys of
// the storage key, the keyed index hash and the associated data of sealed
// values (docs/client.md). The Argon2id cost is written into the
// vector and is tiny, so the test runs fast; the format carries its
// parameters, so nothing about it changes at the real cost.
//
// Subkeys, index hashes and sealed values are computed here from the
// specification with primitives directly, not through clientdb, so the
// test checks the package against an independent rendering of the spec.
type clientdbVectors struct {
	Comment         string                   `json:"comment"`
	Passphrase      string                   `json:"passphrase"`
	Params          clientdbParams           `json:"argon2id"`
	StorageKey      string                   `json:"storage_key"`
	Salt            string                   `json:"salt"`
	KEK             string                   `json:"kek"`
	Wrapped         string                   `json:"wrapped"`
	InsecureWrapped string                   `json:"insecure_wrapped"`
	Invalid         []clientdbInvalidWrapped `json:"invalid"`
	SealKey         string                   `json:"seal_key"`
	IndexKey        string                   `json:"index_key"`
	Index           []clientdbIndexVec       `json:"index"`
	Sealed          []clientdbSealedVec      `json:"sealed"`
}

type clientdbParams struct {
	MemoryKiB   uint32 `json:"memory_kib"`
	Time        uint32 `json:"time"`
	Parallelism uint8  `json:"parallelism"`
}

// clientdbInvalidWrapped is a wrapped key that must not unwrap under
// Passphrase; Expect is "wrong passphrase" or "corrupt".
type clientdbInvalidWrapped struct {
	Name       string `json:"name"`
	Passphrase string `json:"passphrase"`
	Wrapped    string `json:"wrapped"`
	Expect     string `json:"expect"`
}

type clientdbIndexVec struct {
	Domain string `json:"domain"`
	Value  string `json:"value"` // hex
	Hash   string `json:"hash"`
}

type clientdbSealedVec struct {
	Table     string   `json:"table"`
	Column    string   `json:"column"`
	Bind      []string `json:"bind"` // hex, in order
	Plaintext string   `json:"plaintext"`
	Sealed    string   `json:"sealed"`
}

func init() {
	register("clientdb", func() any {
		must := func(err error) {
			if err != nil {
				panic("vectorgen: clientdb: " + err.Error())
			}
		}
		p := primitives.Argon2Params{MemoryKiB: 64, Time: 2, Parallelism: 2}
		const pass = "correct horse battery staple"
		var sk [clientdb.StorageKeySize]byte
		primitives.Random(sk[:])
		wrapped, err := clientdb.WrapKey(&sk, []byte(pass), p)
		must(err)
		// Layout: magic(4) version(1) kind(1) m(4) t(4) p(1) salt(16) sealed.
		salt := wrapped[15:31]
		kek, err := primitives.Argon2id([]byte(pass), salt, p)
		must(err)
		insecure := clientdb.WrapKeyInsecure(&sk)

		v := &clientdbVectors{
			Comment: "clientdb key wrapping (docs/client.md §2) and sealing (§3); " +
				"the Argon2id cost here is far below the default and only for the test",
			Passphrase:      pass,
			Params:          clientdbParams{p.MemoryKiB, p.Time, p.Parallelism},
			StorageKey:      hex.EncodeToString(sk[:]),
			Salt:            hex.EncodeToString(salt),
			KEK:             hex.EncodeToString(kek[:]),
			Wrapped:         hex.EncodeToString(wrapped),
			InsecureWrapped: hex.EncodeToString(insecure),
		}

		flip := func(i int) []byte {
			b := append([]byte(nil), wrapped...)
			b[i] ^= 0x01
			return b
		}
		setU32 := func(off int, x uint32) []byte {
			b := append([]byte(nil), wrapped...)
			binary.BigEndian.PutUint32(b[off:], x)
			return b
		}
		invalid := []struct {
			name, pass string
			b          []byte
			expect     string
		}{
			{"wrong passphrase", "correct horse battery stapler", wrapped, "wrong passphrase"},
			{"empty passphrase", "", wrapped, "wrong passphrase"},
			{"salt changed", pass, flip(20), "wrong passphrase"},
			{"memory changed", pass, setU32(6, p.MemoryKiB+1), "wrong passphrase"},
			{"time changed", pass, setU32(10, p.Time+1), "wrong passphrase"},
			{"nonce changed", pass, flip(31), "wrong passphrase"},
			{"ciphertext changed", pass, flip(50), "wrong passphrase"},
			{"tag changed", pass, flip(len(wrapped) - 1), "wrong passphrase"},
			{"bad magic", pass, flip(0), "corrupt"},
			{"unknown version", pass, flip(4), "corrupt"},
			{"unknown kind", pass, append(append([]byte(nil), wrapped[:5]...), append([]byte{3}, wrapped[6:]...)...), "corrupt"},
			{"truncated", pass, wrapped[:len(wrapped)-1], "corrupt"},
			{"trailing byte", pass, append(append([]byte(nil), wrapped...), 0), "corrupt"},
			{"empty", pass, []byte{}, "corrupt"},
			{"memory too large", pass, setU32(6, 1<<31), "corrupt"},
			{"memory below 8p", pass, setU32(6, 15), "corrupt"},
			{"time zero", pass, setU32(10, 0), "corrupt"},
			{"insecure truncated", pass, insecure[:len(insecure)-1], "corrupt"},
		}
		corpus := [][]byte{wrapped, insecure}
		for _, c := range invalid {
			v.Invalid = append(v.Invalid, clientdbInvalidWrapped{Name: c.name, Passphrase: c.pass, Wrapped: hex.EncodeToString(c.b), Expect: c.expect})
			corpus = append(corpus, c.b)
		}
		addCorpus("internal/clientdb", "FuzzUnwrapKey", corpus...)

		// Subkeys: HKDF-SHA256(storage key, no salt, label), 32 bytes each.
		sealKey := primitives.HKDF(sk[:], nil, "Parley-v1 ClientDB Seal Key", nil, 32)
		indexKey := primitives.HKDF(sk[:], nil, "Parley-v1 ClientDB Index Key", nil, 32)
		v.SealKey, v.IndexKey = hex.EncodeToString(sealKey), hex.EncodeToString(indexKey)

		// Index: HKDF-SHA256(index key, no salt, label, domain || 0x00 || value).
		msgValue := append(binary.BigEndian.AppendUint32(nil, 5), "alice"...)
		msgValue = append(msgValue, make([]byte, 16)...)
		for _, iv := range []struct {
			domain string
			value  []byte
		}{
			{"username", []byte("alice")},
			{"username", []byte("")},
			{"device", []byte("0123456789abcdef")},
			{"message", msgValue},
			{"setting", []byte("theme")},
		} {
			ctx := append(append([]byte(iv.domain), 0), iv.value...)
			h := primitives.HKDF(indexKey, nil, "Parley-v1 ClientDB Index", ctx, 32)
			v.Index = append(v.Index, clientdbIndexVec{Domain: iv.domain, Value: hex.EncodeToString(iv.value), Hash: hex.EncodeToString(h)})
		}

		// Sealed values: AES-256-GCM under the seal key with a random nonce,
		// ad = "Parley-v1 ClientDB Sealed Value" || part(table) ||
		// part(column) || part(bind_i)..., part(x) = uint32 len || x.
		var sealKeyArr [32]byte
		copy(sealKeyArr[:], sealKey)
		part := func(b, x []byte) []byte { return append(binary.BigEndian.AppendUint32(b, uint32(len(x))), x...) }
		for _, sv := range []struct {
			table, column string
			bind          [][]byte
			plaintext     []byte
		}{
			{"identity", "account_key_seed", [][]byte{binary.BigEndian.AppendUint64(nil, 1)}, []byte("seed seed seed seed seed seed 32")},
			{"settings", "value", [][]byte{make([]byte, 32)}, []byte("dark")},
			{"contacts", "username", [][]byte{make([]byte, 32), {1}, binary.BigEndian.AppendUint64(nil, 1_800_000_000_000_000_000)}, []byte("alice")},
			{"messages", "body", [][]byte{make([]byte, 32), make([]byte, 32), {0}, binary.BigEndian.AppendUint64(nil, 7), binary.BigEndian.AppendUint64(nil, 8)}, []byte{}},
		} {
			ad := []byte("Parley-v1 ClientDB Sealed Value")
			ad = part(ad, []byte(sv.table))
			ad = part(ad, []byte(sv.column))
			var bind []string
			for _, b := range sv.bind {
				ad = part(ad, b)
				bind = append(bind, hex.EncodeToString(b))
			}
			sealed := primitives.Seal(&sealKeyArr, nil, sv.plaintext, ad)
			v.Sealed = append(v.Sealed, clientdbSealedVec{
				Table: sv.table, Column: sv.column, Bind: bind,
				Plaintext: hex.EncodeToString(sv.plaintext), Sealed: hex.EncodeToString(sealed),
			})
		}
		return v
	})
}
