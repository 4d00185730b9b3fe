package primitives

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
)

func TestSHA256IsPlain(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("abc"), make([]byte, 65)} {
		if got, want := SHA256(in), sha256.Sum256(in); got != want {
			t.Fatalf("SHA256(%x) = %x, want %x", in, got, want)
		}
	}
	// FIPS 180-2 appendix B.1.
	want := unhex(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
	if got := SHA256([]byte("abc")); !Equal(got[:], want) {
		t.Fatalf("SHA256(abc) = %x", got)
	}
}

// TestVerifyEd25519RFC8032 replays RFC 8032 §7.1 test 2 and checks that
// tampering with any input, or a wrong-sized key or signature, is false.
func TestVerifyEd25519RFC8032(t *testing.T) {
	pub := unhex(t, "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
	msg := unhex(t, "72")
	sig := unhex(t, "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"+
		"085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")
	if !VerifyEd25519(pub, msg, sig) {
		t.Fatal("RFC 8032 test 2 does not verify")
	}
	flip := func(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 1; return c }
	if VerifyEd25519(flip(pub, 0), msg, sig) || VerifyEd25519(pub, flip(msg, 0), sig) || VerifyEd25519(pub, msg, flip(sig, 10)) {
		t.Fatal("a tampered input verified")
	}
	if VerifyEd25519(pub[:31], msg, sig) || VerifyEd25519(pub, msg, sig[:63]) || VerifyEd25519(nil, msg, sig) {
		t.Fatal("a wrong-sized key or signature verified")
	}
	// And a fresh key from the standard library, as a second reference.
	p, k, _ := ed25519.GenerateKey(nil)
	if !VerifyEd25519(p, []byte("m"), ed25519.Sign(k, []byte("m"))) {
		t.Fatal("crypto/ed25519 signature does not verify")
	}
}

func TestEd25519KeyRFC8032(t *testing.T) {
	// RFC 8032 §7.1 test 2: seed, public key, signature of 0x72.
	k, err := NewEd25519Key(unhex(t, "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"))
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(k.Public(), unhex(t, "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")) {
		t.Fatalf("public key %x", k.Public())
	}
	sig := k.Sign([]byte{0x72})
	if !Equal(sig, unhex(t, "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"+
		"085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")) {
		t.Fatalf("signature %x", sig)
	}
	if _, err := NewEd25519Key(make([]byte, 31)); err != ErrInvalidKey {
		t.Fatal("short seed accepted")
	}
	g := GenerateEd25519()
	if !VerifyEd25519(g.Public(), []byte("x"), g.Sign([]byte("x"))) || len(g.Seed()) != Ed25519SeedSize {
		t.Fatal("generated key does not round trip")
	}
}
