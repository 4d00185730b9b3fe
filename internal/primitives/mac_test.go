package primitives

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

// TestMACIsFramedHMAC checks MAC against crypto/hmac over the documented
// framing, and that the label, key and framing all matter.
func TestMACIsFramedHMAC(t *testing.T) {
	key := []byte("server secret")
	got := MAC(key, LabelAuthToken, []byte("ab"), []byte("c"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte("Parley-v1 Auth Token\x00\x00\x00\x00\x02ab\x00\x00\x00\x01c"))
	if want := m.Sum(nil); !Equal(got[:], want) {
		t.Fatalf("MAC = %x, want %x", got, want)
	}
	for name, other := range map[string][32]byte{
		"label":   MAC(key, LabelAuthChallenge, []byte("ab"), []byte("c")),
		"key":     MAC([]byte("other secret"), LabelAuthToken, []byte("ab"), []byte("c")),
		"framing": MAC(key, LabelAuthToken, []byte("a"), []byte("bc")),
	} {
		if other == got {
			t.Errorf("changing the %s did not change the MAC", name)
		}
	}
}
