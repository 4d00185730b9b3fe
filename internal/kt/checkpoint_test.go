package kt

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"

	"github.com/parleyim/parley/internal/primitives"
)

const testOrigin = "parley.example/kt"

func testSigner(t testing.TB) *CheckpointSigner {
	t.Helper()
	s, err := NewCheckpointSigner(testOrigin, primitives.GenerateEd25519(), primitives.GenerateSigningKey())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCheckpointOpensWithXModNote: the log's Ed25519 line verifies with
// golang.org/x/mod/sumdb/note and the standard vkey, which keeps the hybrid
// line as an unknown signature; with both verifiers both lines verify.
func TestCheckpointOpensWithXModNote(t *testing.T) {
	s := testSigner(t)
	root := [32]byte{1, 2, 3}
	signed, err := s.Sign(42, root)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := note.NewVerifier(s.Ed25519VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(ev))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 1 || n.UnverifiedSigs[0].Name != testOrigin {
		t.Fatalf("sigs %v, unverified %v", n.Sigs, n.UnverifiedSigs)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		t.Fatal(err)
	}
	if c != (Checkpoint{testOrigin, 42, root}) {
		t.Fatalf("checkpoint %+v", c)
	}
	hv, err := ParseHybridVerifier(s.HybridVerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err = note.Open(signed, note.VerifierList(ev, hv))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("with the hybrid verifier: %v, %d sigs", err, len(n.Sigs))
	}
	// Tampered text: both signatures fail.
	bad := bytes.Replace(signed, []byte("\n42\n"), []byte("\n43\n"), 1)
	for _, v := range []note.Verifier{ev, hv} {
		var ise *note.InvalidSignatureError
		if _, err := note.Open(bad, note.VerifierList(v)); !errors.As(err, &ise) {
			t.Errorf("tampered checkpoint with %T: %v", v, err)
		}
	}
	// Another log's hybrid key with the same name is an unknown key (its
	// key ID differs), so the note is unverified, not accepted.
	other, _ := NewHybridVerifier(testOrigin, primitives.GenerateSigningKey().Public())
	var une *note.UnverifiedNoteError
	if _, err := note.Open(signed, note.VerifierList(other)); !errors.As(err, &une) {
		t.Errorf("foreign hybrid key: %v", err)
	}
}

func TestParseCheckpointStrict(t *testing.T) {
	good := Checkpoint{testOrigin, 7, [32]byte{9}}.Text()
	if c, err := ParseCheckpoint(good); err != nil || c.Size != 7 || c.Text() != good {
		t.Fatalf("round trip: %v", err)
	}
	root := strings.Split(good, "\n")[2]
	for _, bad := range []string{
		"", "\n", good[:len(good)-1],
		good + "extension\n",
		testOrigin + "\n07\n" + root + "\n",
		testOrigin + "\n-1\n" + root + "\n",
		testOrigin + "\n7\n" + root[:len(root)-1] + "\n",
		testOrigin + "\n7\n" + strings.TrimRight(root, "=") + "\n",
		testOrigin + "\n7\nAAAA\n",
		"has space\n7\n" + root + "\n",
		"a+b\n7\n" + root + "\n",
		"\n7\n" + root + "\n",
	} {
		if _, err := ParseCheckpoint(bad); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("ParseCheckpoint(%q) = %v", bad, err)
		}
	}
}

func TestVerifierKeys(t *testing.T) {
	s := testSigner(t)
	hv, err := ParseHybridVerifier(s.HybridVerifierKey())
	if err != nil || hv.String() != s.HybridVerifierKey() || hv.Name() != testOrigin {
		t.Fatalf("hybrid vkey round trip: %v", err)
	}
	k := s.HybridVerifierKey()
	i := strings.IndexByte(k, '+')
	for _, bad := range []string{
		"", k[:i], k[:len(k)-4] + "AAAA", // key ID no longer matches
		"other" + k[i:],        // name change changes the key ID
		s.Ed25519VerifierKey(), // an Ed25519 key is not a hybrid key
	} {
		if _, err := ParseHybridVerifier(bad); err == nil {
			t.Errorf("ParseHybridVerifier(%.40q...) accepted", bad)
		}
	}
	if _, err := NewCosignatureVerifier(s.Ed25519VerifierKey()); err == nil {
		t.Error("an Ed25519 note key accepted as a cosignature key")
	}
}

// TestCosignaturesInteroperateWithTorchwood: cosignatures made by
// filippo.io/torchwood (the witness implementation behind litewitness)
// verify with CosignatureVerifier, and ours with torchwood's verifier.
func TestCosignaturesInteroperateWithTorchwood(t *testing.T) {
	s := testSigner(t)
	signed, err := s.Sign(5, [32]byte{5})
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	tw, err := torchwood.NewCosignatureSigner("witness.example/w1", priv)
	if err != nil {
		t.Fatal(err)
	}
	n, err := openUnverified(signed)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, tw)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewCosignatureVerifier(tw.Verifier().String())
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != tw.Verifier().String() || v.KeyHash() != tw.KeyHash() {
		t.Fatal("vkey or key ID differs from torchwood's")
	}
	opened, err := note.Open(cosigned, note.VerifierList(v))
	if err != nil || len(opened.Sigs) != 1 {
		t.Fatalf("torchwood cosignature: %v", err)
	}
	ts, err := CosignatureTime(opened.Sigs[0])
	if err != nil || time.Since(ts) > time.Minute || time.Since(ts) < -time.Minute {
		t.Fatalf("cosignature time %v, %v", ts, err)
	}

	// Ours, verified by torchwood.
	key, _ := primitives.NewEd25519Key(priv.Seed())
	fixed := time.Unix(1_700_000_000, 0)
	ours, err := NewCosigner("witness.example/w1", key, func() time.Time { return fixed })
	if err != nil {
		t.Fatal(err)
	}
	if ours.VerifierKey() != tw.Verifier().String() {
		t.Fatal("our cosigner's vkey differs from torchwood's for the same key")
	}
	cosigned2, err := ours.Cosign(signed)
	if err != nil {
		t.Fatal(err)
	}
	opened, err = note.Open(cosigned2, note.VerifierList(tw.Verifier()))
	if err != nil || len(opened.Sigs) != 1 {
		t.Fatalf("our cosignature with torchwood's verifier: %v", err)
	}
	if ts, _ := CosignatureTime(opened.Sigs[0]); !ts.Equal(fixed) {
		t.Fatalf("time %v", ts)
	}
	// A cosignature over another checkpoint does not verify.
	other, _ := s.Sign(6, [32]byte{6})
	moved := append(bytes.Clone(other), cosigned2[bytes.LastIndex(cosigned2, []byte("— witness")):]...)
	var ise *note.InvalidSignatureError
	if _, err := note.Open(moved, note.VerifierList(v)); !errors.As(err, &ise) {
		t.Fatalf("cosignature moved to another checkpoint: %v", err)
	}
}

func TestAddSignatures(t *testing.T) {
	s := testSigner(t)
	signed, _ := s.Sign(1, [32]byte{})
	c, _ := NewCosigner("w.example/1", primitives.GenerateEd25519(), time.Now)
	once, err := c.Cosign(signed)
	if err != nil {
		t.Fatal(err)
	}
	line := once[len(signed):]
	twice, err := AddSignatures(once, line)
	if err != nil || !bytes.Equal(twice, once) {
		t.Fatalf("duplicate line not dropped: %v", err)
	}
	for _, bad := range [][]byte{[]byte("— w.example/1 AAAA"), []byte("x w AAAAAAA=\n"), []byte("— a b\n— c d\n"), []byte("— w.example/1 !!!!\n")} {
		if _, err := AddSignatures(signed, bad); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("AddSignatures(%q) = %v", bad, err)
		}
	}
}
