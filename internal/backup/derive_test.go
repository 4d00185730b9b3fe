package backup

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/parleyim/parley/internal/primitives"
)

func TestBech32BIP173Valid(t *testing.T) {
	for _, s := range []string{
		"A12UEL5L",
		"a12uel5l",
		"an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
		"11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
		"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
		"?1ezyfcl",
	} {
		hrp, data, err := bech32Decode(s)
		// Several vectors carry a data part that is not a whole number of
		// bytes; they are checksum vectors. Check the checksum directly.
		lower := strings.ToLower(s)
		pos := strings.LastIndexByte(lower, '1')
		var values []byte
		for i := pos + 1; i < len(lower); i++ {
			values = append(values, byte(strings.IndexByte(bech32Charset, lower[i])))
		}
		if bech32Polymod(append(bech32HRPValues(lower[:pos]), values...)) != 1 {
			t.Errorf("%s: checksum does not verify", s)
		}
		if err == nil {
			if got := bech32Encode(hrp, data); got != lower {
				t.Errorf("re-encoding %s gives %s", s, got)
			}
		}
	}
}

func TestBech32BIP173Invalid(t *testing.T) {
	for _, s := range []string{
		"\x201nwldj5",   // HRP character out of range
		"\x7f1axkwrx",   // HRP character out of range
		"\x801eym55h",   // HRP character out of range
		"pzry9x0s0muk",  // no separator
		"1pzry9x0s0muk", // empty HRP
		"x1b4n0q5v",     // invalid data character
		"li1dgmt3",      // too short checksum
		"de1lg7wt\xff",  // invalid character in checksum
		"A1G7SGD8",      // checksum calculated with upper-case HRP
		"10a06t8",       // empty HRP
		"1qzzfhee",      // empty HRP
		"a12UEL5L",      // mixed case
	} {
		if _, _, err := bech32Decode(s); err == nil {
			t.Errorf("%q decoded", s)
		}
	}
	// BIP-173 also refuses strings over 90 characters; age does not (its
	// post-quantum recipients are about 1960), and neither does this
	// decoder: "an84characterslong...1569pvx" is refused for its checksum
	// alone.
}

// TestBech32SegwitProgram: BIP-173's P2WPKH example, whose data part is the
// witness version then the 20-byte program regrouped in 5-bit values.
func TestBech32SegwitProgram(t *testing.T) {
	program, _ := hex.DecodeString("751e76e8199196d454941c45d1b3a323f1433bd6")
	const addr = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
	s := bech32Encode("bc", program)
	_, data, err := bech32Decode(s)
	if err != nil || !bytes.Equal(data, program) {
		t.Fatalf("round trip: %x, %v", data, err)
	}
	// The address's data part after the 'q' (version 0) is the program.
	if got := s[3 : len(s)-6]; got != addr[4:len(addr)-6] {
		t.Fatalf("program encodes as %s, BIP-173 has %s", got, addr[4:len(addr)-6])
	}
	// The address's own checksum (over version symbol and program).
	var values []byte
	for i := 3; i < len(addr); i++ {
		values = append(values, byte(strings.IndexByte(bech32Charset, addr[i])))
	}
	if bech32Polymod(append(bech32HRPValues("bc"), values...)) != 1 {
		t.Fatal("address checksum does not verify")
	}
}

func TestBech32CharIsCharset(t *testing.T) {
	for v := range 32 {
		if bech32Char(byte(v)) != bech32Charset[v] {
			t.Fatalf("bech32Char(%d) = %q", v, bech32Char(byte(v)))
		}
	}
}

// TestAgeIdentityMatchesAge: the identity string is what age itself
// prints for the parsed identity, and the seed inside it is the HKDF
// output of docs/backup.md §2.
func TestAgeIdentityMatchesAge(t *testing.T) {
	for range 5 {
		k := NewRecoveryKey()
		s := k.AgeIdentityString()
		if !strings.HasPrefix(s, "AGE-SECRET-KEY-PQ-1") {
			t.Fatalf("identity %s", s)
		}
		id := k.AgeIdentity()
		if id.String() != s {
			t.Fatalf("age prints %s, we wrote %s", id.String(), s)
		}
		hrp, seed, err := bech32Decode(s)
		if err != nil || hrp != ageIdentityHRP {
			t.Fatalf("decode: %q, %v", hrp, err)
		}
		want := primitives.HKDF(k[:], nil, primitives.LabelBackupAgeIdentity, nil, 32)
		if !bytes.Equal(seed, want) {
			t.Fatal("identity seed is not the HKDF output")
		}
		r := k.Recipient()
		if !strings.HasPrefix(r.String(), "age1pq1") || r.String() != id.Recipient().String() {
			t.Fatalf("recipient %.20s…", r.String())
		}
		if _, err := age.ParseHybridRecipient(r.String()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDerivationsAreDeterministicAndSeparated(t *testing.T) {
	k := sampleKey()
	again := sampleKey()
	if k.AgeIdentityString() != again.AgeIdentityString() || k.Locator() != again.Locator() || k.KeyID() != again.KeyID() {
		t.Fatal("derivations are not deterministic")
	}
	other := k
	other[31] ^= 1
	if k.AgeIdentityString() == other.AgeIdentityString() || k.Locator() == other.Locator() || k.KeyID() == other.KeyID() {
		t.Fatal("a one-bit change of the key leaves a derivation unchanged")
	}
	loc := k.Locator()
	seed := primitives.HKDF(k[:], nil, primitives.LabelBackupAgeIdentity, nil, 32)
	if bytes.Equal(loc[:], seed) || bytes.Equal(loc[:], k[:]) {
		t.Fatal("locator equals the identity seed or the key")
	}
	if got := RecipientKeyID(k.Recipient()); got != k.KeyID() {
		t.Fatal("RecipientKeyID differs from KeyID")
	}
	h := primitives.Hash(primitives.LabelBackupKeyID, []byte(k.Recipient().String()))
	if id := k.KeyID(); !bytes.Equal(id[:], h[:8]) {
		t.Fatal("key ID is not the hash of the recipient string")
	}
}

// TestWriteTokenIsSeparateFromLocator: the server learns the locator on
// every download and the token's hash on upload; neither may be the other
// or the key.
func TestWriteTokenIsSeparateFromLocator(t *testing.T) {
	k := sampleKey()
	tok, loc := k.WriteToken(), k.Locator()
	if tok != k.WriteToken() {
		t.Fatal("write token is not deterministic")
	}
	other := k
	other[0] ^= 1
	if other.WriteToken() == tok {
		t.Fatal("a one-bit change of the key leaves the write token unchanged")
	}
	if bytes.Equal(tok[:], loc[:]) || bytes.Equal(tok[:], k[:]) {
		t.Fatal("write token equals the locator or the key")
	}
}
