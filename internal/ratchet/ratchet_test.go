package ratchet

import (
	"bytes"
	"testing"
)

func TestConversation(t *testing.T) {
	a, b := newPair(t, nil, nil)
	if _, err := b.Encrypt([]byte("x"), t0); err != ErrNoSendingChain {
		t.Fatalf("responder Encrypt before receiving: %v, want ErrNoSendingChain", err)
	}
	i := 0
	for round := 0; round < 40; round++ {
		for k := 0; k < round%4+1; k++ {
			mustDecrypt(t, b, mustEncrypt(t, a, msg(i)), msg(i))
			i++
		}
		for k := 0; k < round%3+1; k++ {
			mustDecrypt(t, a, mustEncrypt(t, b, msg(i)), msg(i))
			i++
		}
	}
	if !a.Received() || !b.Received() {
		t.Fatal("Received() false after a conversation")
	}
	if len(a.Missing())+len(b.Missing()) != 0 {
		t.Fatal("in-order conversation left gaps")
	}
}

func TestOutOfOrder(t *testing.T) {
	a, b := newPair(t, nil, nil)
	m0 := mustEncrypt(t, a, "0")
	m1 := mustEncrypt(t, a, "1")
	m2 := mustEncrypt(t, a, "2")
	mustDecrypt(t, b, m2, "2")
	if g := b.Missing(); len(g) != 2 || g[0].N != 0 || g[1].N != 1 {
		t.Fatalf("Missing = %v, want messages 0 and 1", g)
	}
	r0 := mustEncrypt(t, b, "r0")
	mustDecrypt(t, a, r0, "r0")
	m3 := mustEncrypt(t, a, "3") // new chain, pn = 3
	mustDecrypt(t, b, m3, "3")
	mustDecrypt(t, b, m0, "0")
	decryptFails(t, b, m0, ErrDuplicate)
	mustDecrypt(t, b, m1, "1")
	if g := b.Missing(); len(g) != 0 {
		t.Fatalf("Missing = %v after all arrived", g)
	}
	decryptFails(t, b, m2, ErrDuplicate)
	decryptFails(t, b, m3, ErrDuplicate)
	// Restart both from their encodings and carry on.
	a, b = clone(t, a, nil), clone(t, b, nil)
	mustDecrypt(t, a, mustEncrypt(t, b, "r1"), "r1")
	mustDecrypt(t, b, mustEncrypt(t, a, "4"), "4")
	if !bytes.Equal(clone(t, a, nil).Marshal(), a.Marshal()) {
		t.Fatal("Marshal not stable")
	}
}
