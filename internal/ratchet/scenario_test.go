package ratchet

import (
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// anyError is a decryptFails wildcard: any error, as long as the state is
// unchanged.
var anyError error

// pingPongUntil runs a ping-pong conversation from a to b and back, each
// message delivered at once, until a message sent by the first party
// satisfies stop; it returns that message undelivered, the sender and the
// receiver.
func pingPongUntil(t *testing.T, a, b *State, stop func(m *Message) bool) (m []byte, from, to *State) {
	t.Helper()
	from, to = a, b
	for i := 0; i < 500; i++ {
		m := mustEncrypt(t, from, msg(i))
		pm, err := ParseMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		if stop(pm) {
			return m, from, to
		}
		mustDecrypt(t, to, m, msg(i))
		from, to = to, from
	}
	t.Fatal("condition never met")
	return nil, nil, nil
}

func TestTamperedCiphertextRejected(t *testing.T) {
	a, b := newPair(t, nil, nil)
	m0 := mustEncrypt(t, a, "first, starts b's receiving chain")
	m1 := mustEncrypt(t, a, "second, on the current chain")
	for _, m := range [][]byte{m0, m1} {
		pm, _ := ParseMessage(m)
		start := len(m) - len(pm.Ciphertext)
		for i := start; i < len(m); i++ {
			bad := append([]byte(nil), m...)
			bad[i] ^= 0x01
			decryptFails(t, b, bad, ErrDecrypt)
		}
		// Truncating the ciphertext (and fixing the length) is refused too.
		pm.Ciphertext = pm.Ciphertext[:len(pm.Ciphertext)-1]
		decryptFails(t, b, pm.Marshal(), ErrDecrypt)
		if _, err := b.Decrypt(m, t0); err != nil {
			t.Fatalf("genuine message after tampered copies: %v", err)
		}
	}
}

// TestTamperedHeaderRejected flips every bit of every header byte of a
// message carrying a PQ key, one carrying a PQ ciphertext, and one on an
// established chain. Each must fail, and leave the state unchanged.
func TestTamperedHeaderRejected(t *testing.T) {
	a, b := newPair(t, nil, nil)
	ek, from, to := pingPongUntil(t, a, b, func(m *Message) bool { return m.PQKey != nil })
	tamperHeader(t, to, ek)
	if _, err := to.Decrypt(ek, t0); err != nil {
		t.Fatal(err)
	}
	ct, err := to.Encrypt(nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if pm, _ := ParseMessage(ct); pm.PQCiphertext == nil {
		t.Fatal("answer carries no PQ ciphertext")
	}
	tamperHeader(t, from, ct)
	mustDecrypt(t, from, ct, "")
	plain := mustEncrypt(t, to, "plain")
	tamperHeader(t, from, plain)
	mustDecrypt(t, from, plain, "plain")
}

func tamperHeader(t *testing.T, to *State, m []byte) {
	t.Helper()
	pm, err := ParseMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	type field struct {
		name       string
		start, end int
		want       error
	}
	fields := []field{
		{"version", 0, 1, wire.ErrUnsupportedVersion},
		{"flags", 1, 2, wire.ErrMalformed},
		{"ratchet key", 2, 34, anyError},
		{"pn", 34, 38, anyError},
		{"n", 38, 42, anyError},
		{"salt", 42, 58, ErrDecrypt},
	}
	off := headerBaseSize
	if pm.PQKey != nil {
		fields = append(fields, field{"PQ key", off, off + pqKeySize, anyError})
		off += pqKeySize
	}
	if pm.PQCiphertext != nil {
		// The key id is checked on the message that starts a chain; later
		// messages of the chain are covered by the AEAD.
		idErr := ErrDecrypt
		if pm.RatchetKey != to.dhrPub {
			idErr = ErrPQUnknownKey
		}
		fields = append(fields,
			field{"PQ key id", off, off + PQKeyIDSize, idErr},
			field{"PQ ciphertext", off + PQKeyIDSize, off + pqCTFieldSize, ErrDecrypt})
		off += pqCTFieldSize
	}
	fields = append(fields, field{"ciphertext length", off, off + 3, wire.ErrMalformed})
	for _, f := range fields {
		for i := f.start; i < f.end; i++ {
			for bit := 0; bit < 8; bit++ {
				if f.name == "PQ key" || f.name == "PQ ciphertext" {
					if bit > 0 && i%7 != 0 {
						continue // keep the 1184- and 1088-byte fields quick
					}
				}
				bad := append([]byte(nil), m...)
				bad[i] ^= 1 << bit
				before := to.Marshal()
				_, err := to.Decrypt(bad, t0)
				if err == nil {
					t.Fatalf("%s: byte %d bit %d flipped: accepted", f.name, i, bit)
				}
				if f.want != nil && !errors.Is(err, f.want) {
					t.Fatalf("%s: byte %d bit %d flipped: %v, want %v", f.name, i, bit, err, f.want)
				}
				if string(before) != string(to.Marshal()) {
					t.Fatalf("%s: rejected message changed the state", f.name)
				}
			}
		}
	}
}

func TestReplayRejected(t *testing.T) {
	a, b := newPair(t, nil, nil)
	var sent [][]byte
	from, to := a, b
	for i := 0; i < 120; i++ { // long enough to include a PQ re-key
		m := mustEncrypt(t, from, msg(i))
		mustDecrypt(t, to, m, msg(i))
		decryptFails(t, to, m, ErrDuplicate) // immediate replay
		sent = append(sent, m)
		if i%3 == 2 {
			from, to = to, from
		}
	}
	// Late replays of every earlier message, to whichever side received it,
	// also after a restart.
	a, b = clone(t, a, nil), clone(t, b, nil)
	to = b
	for i, m := range sent {
		decryptFails(t, to, m, ErrDuplicate)
		if i%3 == 2 {
			to = map[*State]*State{a: b, b: a}[to]
		}
	}
}

// TestMessageKeyNeverReused restores a party from a snapshot, as a device
// restored from an old backup would be, so that it sends at the same chain
// position twice. The per-message salt must still give a fresh AEAD key.
func TestMessageKeyNeverReused(t *testing.T) {
	var keys [][primitives.AEADKeySize]byte
	h := &testHooks{aeadKey: func(k [primitives.AEADKeySize]byte, seal bool) {
		if seal {
			keys = append(keys, k)
		}
	}}
	a, b := newPair(t, h, nil)
	mustDecrypt(t, b, mustEncrypt(t, a, "hello"), "hello")
	mustDecrypt(t, a, mustEncrypt(t, b, "hi"), "hi")
	keys = nil
	snapshot := a.Marshal()
	m1 := mustEncrypt(t, a, "first life")
	a, err := Unmarshal(snapshot)
	if err != nil {
		t.Fatal(err)
	}
	a.hooks = h
	m2 := mustEncrypt(t, a, "second life")
	p1, _ := ParseMessage(m1)
	p2, _ := ParseMessage(m2)
	if p1.RatchetKey != p2.RatchetKey || p1.N != p2.N {
		t.Fatal("rolled-back party did not repeat the chain position; the test proves nothing")
	}
	if p1.Salt == p2.Salt {
		t.Fatal("same salt after rollback")
	}
	if len(keys) != 2 || keys[0] == keys[1] {
		t.Fatal("same AEAD key used for two messages after rollback")
	}
	mustDecrypt(t, b, m1, "first life")
	decryptFails(t, b, m2, ErrDuplicate)
}

// attackerOpens reports whether anything derivable from a stolen state
// opens message m: every stored skipped seed, and the next 64 positions of
// both chain keys, each with the message's salt and the session AD.
func attackerOpens(s *State, m []byte) bool {
	pm, err := ParseMessage(m)
	if err != nil {
		panic(err)
	}
	ad := append(append([]byte(nil), s.ad...), m[:pm.headerLen]...)
	try := func(seed *[primitives.KeySize]byte) bool {
		k := primitives.MessageKey(seed, pm.Salt[:])
		_, err := primitives.OpenSingleUse(&k, nil, pm.Ciphertext, ad)
		return err == nil
	}
	for i := range s.skipped {
		if try(&s.skipped[i].seed) {
			return true
		}
	}
	for _, ck := range [][primitives.KeySize]byte{s.ckr, s.cks, s.rk} {
		for i := 0; i < 64; i++ {
			var seed [primitives.KeySize]byte
			ck, seed = primitives.ChainKDF(&ck)
			if try(&seed) {
				return true
			}
		}
	}
	return false
}

// TestForwardSecrecy steals a party's current state and tries every key it
// can derive on the messages that party already received.
func TestForwardSecrecy(t *testing.T) {
	a, b := newPair(t, nil, nil)
	var received [][]byte
	for r := 0; r < 4; r++ {
		for i := 0; i < 3; i++ {
			m := mustEncrypt(t, a, msg(i))
			mustDecrypt(t, b, m, msg(i))
			received = append(received, m)
		}
		mustDecrypt(t, a, mustEncrypt(t, b, "reply"), "reply")
	}
	skippedMsg := mustEncrypt(t, a, "skipped")
	last := mustEncrypt(t, a, "last")
	mustDecrypt(t, b, last, "last")
	received = append(received, last)
	future := mustEncrypt(t, a, "future")

	stolen := clone(t, b, nil)
	for i, m := range received {
		if attackerOpens(stolen, m) {
			t.Fatalf("stolen state opens message %d it had already received", i)
		}
		decryptFails(t, stolen, m, ErrDuplicate)
	}
	// The attacker is not vacuous: it opens what the state legitimately can
	// (a future message of the current chain and a still-skipped message).
	if !attackerOpens(stolen, future) || !attackerOpens(stolen, skippedMsg) {
		t.Fatal("attacker cannot even open messages the state can; the test proves nothing")
	}
}

// TestPostCompromiseHealing steals b's state (no later secrets) and follows
// the conversation with it: it can read a's messages until b has sent from a
// fresh ratchet key and a has answered, and not after.
func TestPostCompromiseHealing(t *testing.T) {
	a, b := newPair(t, nil, nil)
	mustDecrypt(t, b, mustEncrypt(t, a, "a0"), "a0")
	stolen := clone(t, b, nil)

	deliver := func(m []byte, want string, attackerReads bool) {
		t.Helper()
		mustDecrypt(t, b, m, want)
		pt, err := stolen.Decrypt(m, t0)
		if attackerReads && (err != nil || string(pt) != want) {
			t.Fatalf("%s: attacker could not read a message it should (err %v); the test proves nothing", want, err)
		}
		if !attackerReads && err == nil {
			t.Fatalf("%s: attacker read a message after healing", want)
		}
	}
	deliver(mustEncrypt(t, a, "a1"), "a1", true) // same chain
	deliver(mustEncrypt(t, a, "a2"), "a2", true)
	mustDecrypt(t, a, mustEncrypt(t, b, "b0"), "b0") // b's chain from before the theft
	deliver(mustEncrypt(t, a, "a3"), "a3", true)     // a's new key, but DH with b's stolen key
	mustDecrypt(t, a, mustEncrypt(t, b, "b1"), "b1") // b's fresh key: the round trip completes
	deliver(mustEncrypt(t, a, "a4"), "a4", false)
	deliver(mustEncrypt(t, a, "a5"), "a5", false)
	mustDecrypt(t, a, mustEncrypt(t, b, "b2"), "b2")
	deliver(mustEncrypt(t, a, "a6"), "a6", false)
}

// TestPQHealing gives the attacker snapshots of both parties and every
// X25519 private key generated after them (a quantum adversary who recorded
// the traffic gets those anyway), but not the ML-KEM keys. It must lose the
// conversation exactly when the first PQ re-key completes. A control
// attacker that also gets the ML-KEM keys and encapsulations keeps reading,
// which shows ML-KEM is the only thing stopping the first.
func TestPQHealing(t *testing.T) {
	type capture struct {
		x   []*primitives.X25519PrivateKey
		kem []*primitives.MLKEM768PrivateKey
		enc [][2][]byte
	}
	var capA, capB capture
	recording := func(c *capture) *testHooks {
		return &testHooks{
			genX25519: func() *primitives.X25519PrivateKey {
				k := primitives.GenerateX25519()
				c.x = append(c.x, k)
				return k
			},
			genMLKEM: func() *primitives.MLKEM768PrivateKey {
				k := primitives.GenerateMLKEM768()
				c.kem = append(c.kem, k)
				return k
			},
			encapsulate: func(ek *primitives.MLKEM768PublicKey) ([]byte, []byte) {
				ss, ct := ek.Encapsulate()
				c.enc = append(c.enc, [2][]byte{append([]byte(nil), ss...), ct})
				return ss, ct
			},
		}
	}
	a, b := newPair(t, recording(&capA), recording(&capB))
	from, to := a, b
	for i := 0; i < 10; i++ {
		mustDecrypt(t, to, mustEncrypt(t, from, msg(i)), msg(i))
		from, to = to, from
	}
	// replaying hooks hand out the real parties' keys generated after the
	// snapshot, in order; withKEM decides whether ML-KEM secrets leak too.
	replaying := func(c *capture, withKEM bool) *testHooks {
		nx, nk, ne := len(c.x), len(c.kem), len(c.enc)
		h := &testHooks{genX25519: func() *primitives.X25519PrivateKey { nx++; return c.x[nx-1] }}
		if withKEM {
			h.genMLKEM = func() *primitives.MLKEM768PrivateKey { nk++; return c.kem[nk-1] }
			h.encapsulate = func(*primitives.MLKEM768PublicKey) ([]byte, []byte) {
				ne++
				return append([]byte(nil), c.enc[ne-1][0]...), c.enc[ne-1][1]
			}
		}
		return h
	}
	attacker := map[*State]*State{a: clone(t, a, replaying(&capA, false)), b: clone(t, b, replaying(&capB, false))}
	control := map[*State]*State{a: clone(t, a, replaying(&capA, true)), b: clone(t, b, replaying(&capB, true))}

	healed := false
	readBefore := 0
	for i := 10; i < 110; i++ {
		m := mustEncrypt(t, from, msg(i))
		// The clones send too (into the void), so that their PQ policy
		// counters, which count sent messages, stay in step.
		for _, c := range []*State{attacker[from], control[from]} {
			if _, err := c.Encrypt(nil, t0); err != nil {
				t.Fatal(err)
			}
		}
		pm, _ := ParseMessage(m)
		if pm.PQCiphertext != nil {
			healed = true // this chain's key depends on the ML-KEM secret
		}
		mustDecrypt(t, to, m, msg(i))
		pt, err := attacker[to].Decrypt(m, t0)
		switch {
		case !healed && (err != nil || string(pt) != msg(i)):
			t.Fatalf("message %d before the PQ re-key: attacker could not read it (%v); the test proves nothing", i, err)
		case healed && err == nil:
			t.Fatalf("message %d after the PQ re-key: attacker read it", i)
		}
		if !healed {
			readBefore++
		}
		if pt, err := control[to].Decrypt(m, t0); err != nil || string(pt) != msg(i) {
			t.Fatalf("message %d: control attacker with the ML-KEM secrets failed: %v", i, err)
		}
		from, to = to, from
	}
	if !healed || readBefore < 30 {
		t.Fatalf("healed=%v after reading %d messages; expected a PQ re-key after about %d", healed, readBefore, PQRekeyMessages)
	}
}

func TestChainJumpOverLimit(t *testing.T) {
	a, b := newPair(t, nil, nil)
	var ms [][]byte
	for i := 0; i <= MaxSkip+1; i++ {
		ms = append(ms, mustEncrypt(t, a, msg(i)))
	}
	decryptFails(t, b, ms[MaxSkip+1], ErrTooFarAhead)
	mustDecrypt(t, b, ms[MaxSkip], msg(MaxSkip)) // exactly MaxSkip skipped: allowed
	if n := len(b.Missing()); n != MaxSkip {
		t.Fatalf("Missing has %d gaps, want %d", n, MaxSkip)
	}
	mustDecrypt(t, b, ms[17], msg(17))
}

func TestChainJumpOverLimitAcrossStep(t *testing.T) {
	a, b := newPair(t, nil, nil)
	mustDecrypt(t, b, mustEncrypt(t, a, "a0"), "a0")
	for i := 0; i < MaxSkip+1; i++ {
		mustEncrypt(t, a, "dropped") // pn will be MaxSkip+2; b has Nr = 1
	}
	mustDecrypt(t, a, mustEncrypt(t, b, "b0"), "b0")
	decryptFails(t, b, mustEncrypt(t, a, "a new chain"), ErrTooFarAhead)
}

func TestSkippedKeyStoreLimit(t *testing.T) {
	a, b := newPair(t, nil, nil)
	var first []byte
	for r := 0; r < 3; r++ {
		var ms [][]byte
		for i := 0; i <= MaxSkip; i++ {
			ms = append(ms, mustEncrypt(t, a, msg(i)))
		}
		if r == 0 {
			first = ms[0]
		}
		mustDecrypt(t, b, ms[MaxSkip], msg(MaxSkip)) // skips MaxSkip
		mustDecrypt(t, a, mustEncrypt(t, b, "reply"), "reply")
	}
	if n := len(b.Missing()); n != MaxSkippedKeys {
		t.Fatalf("%d skipped keys stored, want the limit %d", n, MaxSkippedKeys)
	}
	// The oldest were evicted first.
	if g := b.Missing()[0]; g.N != 0 {
		t.Fatalf("oldest remaining gap is n=%d of some chain; eviction is not oldest-first", g.N)
	}
	decryptFails(t, b, first, ErrDuplicate)
	if _, err := Unmarshal(b.Marshal()); err != nil {
		t.Fatalf("full store does not round-trip: %v", err)
	}
}

// TestPQCiphertextForWrongKeyRejected has the peer answer an ML-KEM key its
// partner never generated (a buggy or malicious peer); the message must be
// refused with the state untouched, whether or not the receiver has a key
// pending.
func TestPQCiphertextForWrongKeyRejected(t *testing.T) {
	t.Run("other key pending", func(t *testing.T) {
		a, b := newPair(t, nil, nil)
		ek, from, to := pingPongUntil(t, a, b, func(m *Message) bool { return m.PQKey != nil })
		if _, err := to.Decrypt(ek, t0); err != nil { // to answers in its new sending chain
			t.Fatal(err)
		}
		// The peer names a key id 'from' does not hold (from's real
		// pending key is a different one).
		to.pq.sendID[0] ^= 1
		ans := mustEncrypt(t, to, "answer")
		if from.pq.pending == nil {
			t.Fatal("setup: sender has no pending key")
		}
		decryptFails(t, from, ans, ErrPQUnknownKey)
	})
	t.Run("none pending", func(t *testing.T) {
		a, b := newPair(t, nil, nil)
		mustDecrypt(t, b, mustEncrypt(t, a, "hello"), "hello")
		// b records an EK a never generated, and answers it at its next
		// step.
		stranger := primitives.GenerateMLKEM768().Public()
		b.pq.peer, b.pq.peerEK = stranger, stranger.Bytes()
		b.pq.peerID = pqKeyID(b.pq.peerEK)
		mustDecrypt(t, a, mustEncrypt(t, b, "b0"), "b0")
		mustDecrypt(t, b, mustEncrypt(t, a, "a1"), "a1")
		ans := mustEncrypt(t, b, "answer")
		if p, _ := ParseMessage(ans); p.PQCiphertext == nil {
			t.Fatal("setup: no PQ ciphertext")
		}
		if a.pq.pending != nil {
			t.Fatal("setup: a has a pending key")
		}
		decryptFails(t, a, ans, ErrPQUnknownKey)
	})
}
