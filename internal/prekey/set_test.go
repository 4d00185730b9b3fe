package prekey_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Set layout sizes (docs/protocol.md §7.4), written out so that a layout
// change fails the test.
const (
	setX25519EntrySize = 4 + 32 + 3373
	setMLKEMEntrySize  = 4 + 64 + 3373
)

// setLayout locates the parts of a set encoding.
type setLayout struct {
	signed, oneTime, pq     int // offsets of the first entry of each list
	nSigned, nOneTime, nPQ  int
	lastResort, seen, nSeen int // offset of the last-resort entry, of the first seen key
	prev                    int // offset of the previous-last-resort flag
}

func layoutOf(t testing.TB, enc []byte) setLayout {
	t.Helper()
	var l setLayout
	l.nSigned = int(enc[5])
	l.signed = 6
	off := l.signed + l.nSigned*setX25519EntrySize
	l.nOneTime = int(binary.BigEndian.Uint16(enc[off:]))
	l.oneTime = off + 2
	off = l.oneTime + l.nOneTime*setX25519EntrySize
	l.nPQ = int(binary.BigEndian.Uint16(enc[off:]))
	l.pq = off + 2
	l.lastResort = l.pq + l.nPQ*setMLKEMEntrySize
	off = l.lastResort + setMLKEMEntrySize
	l.nSeen = int(binary.BigEndian.Uint16(enc[off:]))
	l.seen = off + 2
	l.prev = l.seen + 32*l.nSeen
	end := l.prev + 1
	if l.prev < len(enc) && enc[l.prev] == 1 {
		nPrevSeen := int(binary.BigEndian.Uint16(enc[l.prev+1+setMLKEMEntrySize:]))
		end = l.prev + 1 + setMLKEMEntrySize + 2 + 32*nPrevSeen
	}
	if end != len(enc) {
		t.Fatalf("set encoding of %d bytes does not follow the expected layout", len(enc))
	}
	return l
}

// roundTrip checks that s survives the sealed store byte for byte and
// returns the decoded copy.
func roundTrip(t *testing.T, s *prekey.Set) *prekey.Set {
	t.Helper()
	enc := s.Marshal()
	layoutOf(t, enc)
	s2, err := prekey.UnmarshalSet(enc)
	if err != nil {
		t.Fatalf("UnmarshalSet: %v", err)
	}
	if !bytes.Equal(s2.Marshal(), enc) {
		t.Fatal("set does not re-encode identically")
	}
	// Marshal is a function of the state, not of map iteration order.
	if !bytes.Equal(s.Marshal(), enc) {
		t.Fatal("Marshal is not deterministic")
	}
	ot, pq := s.Counts()
	ot2, pq2 := s2.Counts()
	if ot != ot2 || pq != pq2 || s.LastResortUses() != s2.LastResortUses() {
		t.Errorf("decoded set reports counts %d, %d, %d; want %d, %d, %d", ot2, pq2, s2.LastResortUses(), ot, pq, s.LastResortUses())
	}
	sp, lr := s.Current()
	sp2, lr2 := s2.Current()
	if sp.ID != sp2.ID || !sp.Key.Equal(sp2.Key) || lr.ID != lr2.ID || !bytes.Equal(lr.Key.Bytes(), lr2.Key.Bytes()) {
		t.Error("decoded set has different current prekeys")
	}
	return s2
}

func TestSetRoundTrip(t *testing.T) {
	signer, s, u := newSet(t, 3)
	roundTrip(t, s)

	more, err := s.Replenish(signer, 2)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s)

	s.RotateSigned(signer)
	roundTrip(t, s)
	s.RotateLastResort(signer)
	roundTrip(t, s)

	// Consume a one-time pair, then the decoded set must no longer know it
	// and must still find the others with the same private keys.
	b := bundleOf(u, 1, 2)
	k, err := s.Find(claimOf(b))
	if err != nil {
		t.Fatal(err)
	}
	s.Consume(k)
	s2 := roundTrip(t, s)
	if _, err := s2.Find(claimOf(b)); !errors.Is(err, prekey.ErrUnknownPrekey) {
		t.Errorf("consumed prekeys found after round trip: %v", err)
	}
	b = &prekey.Bundle{Signed: *u.Signed, OneTime: &more.OneTime[1], PQ: more.PQ[0]}
	k1, err := s.Find(claimOf(b))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := s2.Find(claimOf(b))
	if err != nil {
		t.Fatalf("round-tripped set: %v", err)
	}
	if !bytes.Equal(k1.Signed.Bytes(), k2.Signed.Bytes()) || !bytes.Equal(k1.OneTime.Bytes(), k2.OneTime.Bytes()) ||
		!bytes.Equal(k1.PQ.Seed(), k2.PQ.Seed()) || !bytes.Equal(k1.PQPublic.Signature, k2.PQPublic.Signature) {
		t.Error("round-tripped set holds different private keys")
	}

	// Consume last-resort handshakes: the seen list is kept in order.
	_, lr := s.Current()
	for i := range 3 {
		k, err := s.Find(prekey.Claim{Signed: u.Signed.ID, PQ: lr.ID, Ephemeral: primitives.GenerateX25519().Public().Bytes()})
		if err != nil {
			t.Fatal(i, err)
		}
		s.Consume(k)
		roundTrip(t, s)
	}
	enc := s.Marshal()
	l := layoutOf(t, enc)
	if l.nSigned != 2 || l.nOneTime != 4 || l.nPQ != 4 || l.nSeen != 3 {
		t.Errorf("layout %+v", l)
	}

	// Rotating the signed prekey past MaxSignedPrekeys keeps the newest.
	for range prekey.MaxSignedPrekeys + 1 {
		s.RotateSigned(signer)
	}
	if l := layoutOf(t, s.Marshal()); l.nSigned != prekey.MaxSignedPrekeys {
		t.Errorf("%d signed prekeys held, want %d", l.nSigned, prekey.MaxSignedPrekeys)
	}
	roundTrip(t, s)

	// IDs are never reused, also across a round trip.
	s3 := roundTrip(t, s)
	u3, err := s3.Replenish(signer, 1)
	if err != nil {
		t.Fatal(err)
	}
	u4, err := s.Replenish(signer, 1)
	if err != nil {
		t.Fatal(err)
	}
	if u3.OneTime[0].ID != u4.OneTime[0].ID {
		t.Errorf("decoded set issues ID %d, original %d", u3.OneTime[0].ID, u4.OneTime[0].ID)
	}
	sp, lr := s.Current()
	for _, id := range []prekey.ID{sp.ID, lr.ID, more.OneTime[0].ID, more.PQ[1].ID} {
		if u4.OneTime[0].ID <= id {
			t.Errorf("new ID %d not above existing ID %d", u4.OneTime[0].ID, id)
		}
	}
}

func TestUnmarshalSetRejectsStrictPrefixes(t *testing.T) {
	_, s, u := newSet(t, 1)
	k, err := s.Find(claimOf(bundleOf(u, -1, -1)))
	if err != nil {
		t.Fatal(err)
	}
	s.Consume(k)
	enc := s.Marshal()
	for _, n := range setPrefixes(t, enc) {
		if _, err := prekey.UnmarshalSet(enc[:n]); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("prefix of %d/%d bytes: err = %v, want ErrMalformed", n, len(enc), err)
		}
	}
}

// setPrefixes returns every strict prefix length of enc; under the race
// detector, only those within 8 bytes of a field boundary and every 61st.
func setPrefixes(t *testing.T, enc []byte) []int {
	var out []int
	if !raceEnabled {
		for n := range len(enc) {
			out = append(out, n)
		}
		return out
	}
	l := layoutOf(t, enc)
	bounds := []int{0, 1, 5, 6, l.oneTime - 2, l.oneTime, l.pq - 2, l.pq, l.lastResort, l.seen - 2, l.seen, len(enc)}
	entry := func(start, size, n int, fields ...int) {
		for i := range n {
			off := start + i*size
			for _, f := range fields {
				bounds = append(bounds, off+f)
			}
		}
	}
	entry(l.signed, setX25519EntrySize, l.nSigned, 4, 36)
	entry(l.oneTime, setX25519EntrySize, l.nOneTime, 4, 36)
	entry(l.pq, setMLKEMEntrySize, l.nPQ+1, 4, 68) // with the last-resort entry
	entry(l.seen, 32, l.nSeen, 0)
	near := func(n int) bool {
		for _, b := range bounds {
			if n >= b-8 && n <= b+8 {
				return true
			}
		}
		return false
	}
	for n := range len(enc) {
		if n%61 == 0 || near(n) {
			out = append(out, n)
		}
	}
	return out
}

// TestUnmarshalSetRejectsCorruption: a damaged sealed store is refused
// rather than silently misread.
func TestUnmarshalSetRejectsCorruption(t *testing.T) {
	signer, s, u := newSet(t, 2)
	s.RotateSigned(signer)
	k, err := s.Find(claimOf(bundleOf(u, -1, -1)))
	if err != nil {
		t.Fatal(err)
	}
	s.Consume(k)
	enc := s.Marshal()
	l := layoutOf(t, enc)
	if l.nSigned != 2 || l.nOneTime != 2 || l.nPQ != 2 || l.nSeen != 1 {
		t.Fatalf("unexpected layout %+v", l)
	}
	swap := func(b []byte, i, j, size int) {
		tmp := bytes.Clone(b[i : i+size])
		copy(b[i:i+size], b[j:j+size])
		copy(b[j:j+size], tmp)
	}
	setID := func(b []byte, off int, id uint32) { binary.BigEndian.PutUint32(b[off:], id) }
	id := func(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }

	cases := map[string]func(b []byte) []byte{
		"signed prekeys out of order": func(b []byte) []byte {
			swap(b, l.signed, l.signed+setX25519EntrySize, setX25519EntrySize)
			return b
		},
		"one-time prekeys out of order": func(b []byte) []byte {
			swap(b, l.oneTime, l.oneTime+setX25519EntrySize, setX25519EntrySize)
			return b
		},
		"ML-KEM prekeys out of order": func(b []byte) []byte {
			swap(b, l.pq, l.pq+setMLKEMEntrySize, setMLKEMEntrySize)
			return b
		},
		"duplicate one-time prekey": func(b []byte) []byte {
			copy(b[l.oneTime+setX25519EntrySize:], b[l.oneTime:l.oneTime+setX25519EntrySize])
			return b
		},
		"duplicate signed prekey ID": func(b []byte) []byte {
			setID(b, l.signed+setX25519EntrySize, id(b, l.signed))
			return b
		},
		"duplicate ML-KEM prekey": func(b []byte) []byte {
			copy(b[l.pq+setMLKEMEntrySize:], b[l.pq:l.pq+setMLKEMEntrySize])
			return b
		},
		// One ID naming two prekeys of different kinds: IDs are unique
		// within a device, and Find would silently pick one of them.
		"one-time X25519 prekey with a signed prekey's ID": func(b []byte) []byte {
			setID(b, l.oneTime, id(b, l.signed))
			return b
		},
		"ML-KEM prekey with a one-time X25519 prekey's ID": func(b []byte) []byte {
			setID(b, l.pq, id(b, l.oneTime+setX25519EntrySize))
			return b
		},
		"last-resort prekey with a one-time ML-KEM prekey's ID": func(b []byte) []byte {
			setID(b, l.lastResort, id(b, l.pq+setMLKEMEntrySize))
			return b
		},
		"last-resort prekey with a signed prekey's ID": func(b []byte) []byte {
			setID(b, l.lastResort, id(b, l.signed))
			return b
		},
		"prekey ID not below next ID": func(b []byte) []byte {
			setID(b, 1, id(b, l.pq+setMLKEMEntrySize))
			return b
		},
		"next ID zero": func(b []byte) []byte {
			setID(b, 1, 0)
			return b
		},
		"no signed prekey": func(b []byte) []byte {
			b[5] = 0
			return b
		},
		"more signed prekeys than MaxSignedPrekeys": func(b []byte) []byte {
			b[5] = prekey.MaxSignedPrekeys + 1
			return b
		},
		"more one-time prekeys than MaxOneTimePrekeys": func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[l.oneTime-2:], prekey.MaxOneTimePrekeys+1)
			return b
		},
		"more ML-KEM prekeys than MaxOneTimePrekeys": func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[l.pq-2:], prekey.MaxOneTimePrekeys+1)
			return b
		},
		"more seen keys than MaxLastResortUses": func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[l.seen-2:], prekey.MaxLastResortUses+1)
			return append(b, make([]byte, 32*prekey.MaxLastResortUses)...)
		},
		"one-time count one too high": func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[l.oneTime-2:], 3)
			return b
		},
		"seen count one too low": func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[l.seen-2:], 0)
			return b
		},
		"trailing byte": func(b []byte) []byte { return append(b, 0) },
	}
	for name, mut := range cases {
		if _, err := prekey.UnmarshalSet(mut(bytes.Clone(enc))); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	for _, v := range []byte{0, 2, 0xff} {
		b := bytes.Clone(enc)
		b[0] = v
		if _, err := prekey.UnmarshalSet(b); !errors.Is(err, wire.ErrUnsupportedVersion) {
			t.Errorf("version %d: err = %v, want ErrUnsupportedVersion", v, err)
		}
	}
	if _, err := prekey.UnmarshalSet(enc); err != nil {
		t.Fatalf("the uncorrupted set: %v", err)
	}
}

// FuzzUnmarshalSet: no input panics, and every accepted input re-encodes to
// exactly the same bytes.
func FuzzUnmarshalSet(f *testing.F) {
	signer, s, u := newSet(f, 1)
	f.Add(s.Marshal())
	s.RotateSigned(signer)
	k, err := s.Find(claimOf(bundleOf(u, -1, -1)))
	if err != nil {
		f.Fatal(err)
	}
	s.Consume(k)
	f.Add(s.Marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := prekey.UnmarshalSet(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) && !errors.Is(err, wire.ErrUnsupportedVersion) {
				t.Fatalf("error matches neither ErrMalformed nor ErrUnsupportedVersion: %v", err)
			}
			return
		}
		if got := s.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", data, got)
		}
	})
}
