package prekey_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// newSet returns a signer and a fresh set holding n one-time prekeys of each
// kind, with the upload that NewSet produced.
func newSet(t testing.TB, n int) (*primitives.SigningKey, *prekey.Set, *prekey.Upload) {
	t.Helper()
	signer := primitives.GenerateSigningKey()
	s, u, err := prekey.NewSet(signer, n)
	if err != nil {
		t.Fatalf("NewSet(%d): %v", n, err)
	}
	return signer, s, u
}

// bundleOf builds the bundle a server would hand out from an upload: the
// signed prekey, the i-th one-time X25519 prekey (none if i < 0), and the
// j-th one-time ML-KEM prekey (the last-resort key if j < 0).
func bundleOf(u *prekey.Upload, i, j int) *prekey.Bundle {
	b := &prekey.Bundle{Signed: *u.Signed}
	if i >= 0 {
		ot := u.OneTime[i]
		b.OneTime = &ot
	}
	if j >= 0 {
		b.PQ = u.PQ[j]
	} else {
		b.PQ = *u.LastResort
	}
	return b
}

// claimOf names the prekeys of b, with a fresh ephemeral key.
func claimOf(b *prekey.Bundle) prekey.Claim {
	c := prekey.Claim{Signed: b.Signed.ID, PQ: b.PQ.ID, Ephemeral: primitives.GenerateX25519().Public().Bytes()}
	if b.OneTime != nil {
		id := b.OneTime.ID
		c.OneTime = &id
	}
	return c
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestKindString(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range []prekey.Kind{prekey.KindSignedX25519, prekey.KindOneTimeX25519, prekey.KindOneTimeMLKEM, prekey.KindLastResortMLKEM, 0, 99} {
		s := k.String()
		if s == "" || seen[s] {
			t.Errorf("Kind(%d).String() = %q: empty or not distinct", byte(k), s)
		}
		seen[s] = true
	}
}

func TestUploadIsSignedAndComplete(t *testing.T) {
	signer, s, u := newSet(t, 3)
	if u.Signed == nil || u.LastResort == nil || len(u.OneTime) != 3 || len(u.PQ) != 3 {
		t.Fatalf("NewSet upload incomplete: %+v", u)
	}
	if !u.LastResort.LastResort {
		t.Error("last-resort key not marked LastResort")
	}
	ids := map[prekey.ID]bool{u.Signed.ID: true, u.LastResort.ID: true}
	for i := range 3 {
		if u.PQ[i].LastResort {
			t.Errorf("one-time ML-KEM prekey %d marked LastResort", i)
		}
		ids[u.OneTime[i].ID], ids[u.PQ[i].ID] = true, true
		if err := bundleOf(u, i, i).Verify(signer.Public()); err != nil {
			t.Errorf("bundle %d: %v", i, err)
		}
	}
	if len(ids) != 8 {
		t.Errorf("prekey IDs are not distinct: %d distinct of 8", len(ids))
	}
	if ot, pq := s.Counts(); ot != 3 || pq != 3 {
		t.Errorf("Counts() = %d, %d; want 3, 3", ot, pq)
	}
	signed, lr := s.Current()
	if signed.ID != u.Signed.ID || !signed.Key.Equal(u.Signed.Key) || !bytes.Equal(signed.Signature, u.Signed.Signature) {
		t.Error("Current() signed prekey differs from the upload")
	}
	if lr.ID != u.LastResort.ID || !bytes.Equal(lr.Key.Bytes(), u.LastResort.Key.Bytes()) || !lr.LastResort {
		t.Error("Current() last-resort prekey differs from the upload")
	}
}

func TestFindReturnsMatchingPrivateKeys(t *testing.T) {
	_, s, u := newSet(t, 2)
	for _, tc := range []struct {
		name string
		i, j int
	}{{"one-time", 1, 0}, {"no one-time X25519", -1, 1}, {"last resort", 0, -1}, {"last resort only", -1, -1}} {
		t.Run(tc.name, func(t *testing.T) {
			b := bundleOf(u, tc.i, tc.j)
			k, err := s.Find(claimOf(b))
			if err != nil {
				t.Fatal(err)
			}
			if !k.Signed.Public().Equal(b.Signed.Key) || k.SignedPublic.ID != b.Signed.ID {
				t.Error("signed private key does not match the bundle")
			}
			if (k.OneTime == nil) != (b.OneTime == nil) || (k.OneTimePublic == nil) != (b.OneTime == nil) {
				t.Fatal("one-time key presence does not match the claim")
			}
			if b.OneTime != nil && (!k.OneTime.Public().Equal(b.OneTime.Key) || k.OneTimePublic.ID != b.OneTime.ID) {
				t.Error("one-time private key does not match the bundle")
			}
			if !bytes.Equal(k.PQ.Public().Bytes(), b.PQ.Key.Bytes()) || k.PQPublic.ID != b.PQ.ID ||
				k.PQPublic.LastResort != b.PQ.LastResort || !bytes.Equal(k.PQPublic.Signature, b.PQ.Signature) {
				t.Error("ML-KEM private key does not match the bundle")
			}
			// Find consumes nothing.
			if ot, pq := s.Counts(); ot != 2 || pq != 2 || s.LastResortUses() != 0 {
				t.Errorf("Find changed the set: counts %d, %d, last-resort uses %d", ot, pq, s.LastResortUses())
			}
		})
	}
}

func TestFindRejectsMalformedEphemeral(t *testing.T) {
	_, s, u := newSet(t, 1)
	for _, n := range []int{0, 31, 33} {
		c := claimOf(bundleOf(u, -1, -1))
		c.Ephemeral = make([]byte, n)
		if _, err := s.Find(c); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("ephemeral of %d bytes: err = %v, want ErrMalformed", n, err)
		}
	}
}

// TestForgedBundleSignatureRejected: a server (or anyone on the path) that
// alters a prekey, or substitutes its own, must not get past Verify.
func TestForgedBundleSignatureRejected(t *testing.T) {
	signer, _, u := newSet(t, 1)
	for _, lastResort := range []bool{false, true} {
		j := 0
		if lastResort {
			j = -1
		}
		good := bundleOf(u, 0, j)
		if err := good.Verify(signer.Public()); err != nil {
			t.Fatalf("genuine bundle: %v", err)
		}
		// Flip a byte in the Ed25519 half, the ML-DSA half, and the last byte
		// of each of the three signatures: both components must verify.
		sigs := map[string]func(b *prekey.Bundle) *[]byte{
			"signed":   func(b *prekey.Bundle) *[]byte { return &b.Signed.Signature },
			"one-time": func(b *prekey.Bundle) *[]byte { return &b.OneTime.Signature },
			"pq":       func(b *prekey.Bundle) *[]byte { return &b.PQ.Signature },
		}
		for name, field := range sigs {
			for _, i := range []int{0, 63, 64, 1000, primitives.SignatureSize - 1} {
				b := copyBundle(good)
				p := field(b)
				*p = flip(*p, i)
				if err := b.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
					t.Errorf("lastResort=%v: %s signature byte %d flipped: err = %v, want ErrBadSignature", lastResort, name, i, err)
				}
			}
			b := copyBundle(good)
			p := field(b)
			*p = (*p)[:len(*p)-1]
			if err := b.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
				t.Errorf("%s signature truncated: err = %v", name, err)
			}
		}
		// The signature covers the ID and the key, not just the key.
		b := copyBundle(good)
		b.Signed.ID++
		if err := b.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
			t.Errorf("signed prekey ID changed: err = %v", err)
		}
		b = copyBundle(good)
		b.OneTime.ID = b.Signed.ID
		if err := b.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
			t.Errorf("one-time prekey ID changed: err = %v", err)
		}
		b = copyBundle(good)
		b.PQ.ID++
		if err := b.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
			t.Errorf("PQ prekey ID changed: err = %v", err)
		}
		b = copyBundle(good)
		b.Signed.Key = primitives.GenerateX25519().Public()
		if err := b.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
			t.Errorf("signed prekey replaced: err = %v", err)
		}
		b = copyBundle(good)
		b.PQ.Key = primitives.GenerateMLKEM1024().Public()
		if err := b.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
			t.Errorf("ML-KEM prekey replaced: err = %v", err)
		}
	}

	// A bundle signed by another device's key, presented as this device's.
	mallory, _, mu := newSet(t, 1)
	for _, b := range []*prekey.Bundle{bundleOf(mu, 0, 0), bundleOf(mu, -1, -1)} {
		if err := b.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
			t.Errorf("bundle signed by another device: err = %v", err)
		}
		if err := b.Verify(mallory.Public()); err != nil {
			t.Errorf("bundle under its real signer: %v", err)
		}
	}
	// One forged prekey mixed into an otherwise genuine bundle.
	mixes := []func(b *prekey.Bundle){
		func(b *prekey.Bundle) { b.Signed = *mu.Signed },
		func(b *prekey.Bundle) { ot := mu.OneTime[0]; b.OneTime = &ot },
		func(b *prekey.Bundle) { b.PQ = mu.PQ[0] },
	}
	for i, mix := range mixes {
		b := copyBundle(bundleOf(u, 0, 0))
		mix(b)
		if err := b.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
			t.Errorf("bundle with prekey %d from another device: err = %v", i, err)
		}
	}
}

// TestPrekeyKindConfusionRejected: the kind is part of every signed
// statement, so a signature over one kind of prekey cannot be replayed for
// another (the PQXDH analysis's key-confusion concern).
func TestPrekeyKindConfusionRejected(t *testing.T) {
	signer, _, u := newSet(t, 2)
	cases := map[string]*prekey.Bundle{}

	// A one-time ML-KEM prekey presented as the last-resort key.
	b := bundleOf(u, 0, 0)
	b.PQ.LastResort = true
	cases["one-time ML-KEM as last resort"] = b
	// The last-resort key presented as a one-time ML-KEM prekey.
	b = bundleOf(u, 0, -1)
	b.PQ.LastResort = false
	cases["last resort as one-time ML-KEM"] = b
	// A one-time X25519 prekey presented as the signed prekey.
	b = bundleOf(u, 1, 0)
	b.Signed = u.OneTime[0]
	cases["one-time X25519 as signed"] = b
	// The signed prekey presented as a one-time X25519 prekey.
	b = bundleOf(u, -1, 0)
	ot := *u.Signed
	b.OneTime = &ot
	cases["signed as one-time X25519"] = b
	for name, b := range cases {
		if err := b.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
			t.Errorf("%s: err = %v, want ErrBadSignature", name, err)
		}
		// The confusion must also survive the wire: the encoding carries
		// the last-resort flag, and the parsed bundle fails the same way.
		p, err := prekey.ParseBundle(b.Marshal())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := p.Verify(signer.Public()); !errors.Is(err, prekey.ErrBadSignature) {
			t.Errorf("%s (parsed): err = %v, want ErrBadSignature", name, err)
		}
	}
	if (&prekey.MLKEMPublic{LastResort: true}).Kind() != prekey.KindLastResortMLKEM ||
		(&prekey.MLKEMPublic{}).Kind() != prekey.KindOneTimeMLKEM {
		t.Error("MLKEMPublic.Kind does not follow LastResort")
	}
}

// TestOneTimePrekeyIsSingleUse: a consumed one-time prekey of either kind is
// gone, so a replayed handshake naming it fails.
func TestOneTimePrekeyIsSingleUse(t *testing.T) {
	_, s, u := newSet(t, 3)
	b := bundleOf(u, 0, 0)
	c := claimOf(b)
	k, err := s.Find(c)
	if err != nil {
		t.Fatal(err)
	}
	s.Consume(k)
	if ot, pq := s.Counts(); ot != 2 || pq != 2 {
		t.Errorf("Counts() after Consume = %d, %d; want 2, 2", ot, pq)
	}
	if s.LastResortUses() != 0 {
		t.Errorf("a one-time handshake counted as a last-resort use")
	}
	if _, err := s.Find(c); !errors.Is(err, prekey.ErrUnknownPrekey) {
		t.Errorf("same claim again: err = %v, want ErrUnknownPrekey", err)
	}
	// Each consumed key on its own, with a fresh ephemeral and otherwise
	// valid prekeys.
	if _, err := s.Find(claimOf(bundleOf(u, 0, 1))); !errors.Is(err, prekey.ErrUnknownPrekey) {
		t.Errorf("consumed one-time X25519 prekey: err = %v, want ErrUnknownPrekey", err)
	}
	if _, err := s.Find(claimOf(bundleOf(u, 0, -1))); !errors.Is(err, prekey.ErrUnknownPrekey) {
		t.Errorf("consumed one-time X25519 prekey with the last-resort key: err = %v, want ErrUnknownPrekey", err)
	}
	if _, err := s.Find(claimOf(bundleOf(u, -1, 0))); !errors.Is(err, prekey.ErrUnknownPrekey) {
		t.Errorf("consumed one-time ML-KEM prekey: err = %v, want ErrUnknownPrekey", err)
	}
	if _, err := s.Find(claimOf(bundleOf(u, 1, 1))); err != nil {
		t.Errorf("unconsumed prekeys: %v", err)
	}

	// A one-time X25519 prekey used with the last-resort key is consumed
	// too, and the ML-KEM one-time keys are left alone.
	k, err = s.Find(claimOf(bundleOf(u, 1, -1)))
	if err != nil {
		t.Fatal(err)
	}
	s.Consume(k)
	if ot, pq := s.Counts(); ot != 1 || pq != 2 {
		t.Errorf("Counts() = %d, %d; want 1, 2", ot, pq)
	}
	if _, err := s.Find(claimOf(bundleOf(u, 1, 1))); !errors.Is(err, prekey.ErrUnknownPrekey) {
		t.Errorf("one-time X25519 prekey used with the last-resort key: err = %v, want ErrUnknownPrekey", err)
	}

	// IDs that were never issued.
	c = claimOf(bundleOf(u, 2, 2))
	for name, mut := range map[string]func(*prekey.Claim){
		"signed":   func(c *prekey.Claim) { c.Signed = 9999 },
		"one-time": func(c *prekey.Claim) { id := prekey.ID(9999); c.OneTime = &id },
		"pq":       func(c *prekey.Claim) { c.PQ = 9999 },
		// A one-time X25519 ID named as the ML-KEM prekey and vice versa.
		"one-time as pq": func(c *prekey.Claim) { c.PQ = *c.OneTime },
		"pq as one-time": func(c *prekey.Claim) { id := c.PQ; c.OneTime = &id },
		"signed as pq":   func(c *prekey.Claim) { c.PQ = c.Signed },
	} {
		cc := c
		mut(&cc)
		if _, err := s.Find(cc); !errors.Is(err, prekey.ErrUnknownPrekey) {
			t.Errorf("unknown %s prekey: err = %v, want ErrUnknownPrekey", name, err)
		}
	}
}

// TestLastResortReplayRejected: the last-resort key is reused by design, so
// the device remembers the ephemeral keys of handshakes against it.
func TestLastResortReplayRejected(t *testing.T) {
	signer, s, u := newSet(t, 1)
	b := bundleOf(u, -1, -1)
	c := claimOf(b)
	k, err := s.Find(c)
	if err != nil {
		t.Fatal(err)
	}
	s.Consume(k)
	if n := s.LastResortUses(); n != 1 {
		t.Fatalf("LastResortUses() = %d, want 1", n)
	}
	if _, err := s.Find(c); !errors.Is(err, prekey.ErrReplayedHandshake) {
		t.Fatalf("same ephemeral again: err = %v, want ErrReplayedHandshake", err)
	}
	// The replay is refused whichever signed or one-time X25519 prekey it
	// names.
	c2 := claimOf(bundleOf(u, 0, -1))
	c2.Ephemeral = c.Ephemeral
	if _, err := s.Find(c2); !errors.Is(err, prekey.ErrReplayedHandshake) {
		t.Errorf("same ephemeral with a one-time X25519 prekey: err = %v, want ErrReplayedHandshake", err)
	}
	// A different ephemeral works and is counted.
	c3 := claimOf(b)
	k, err = s.Find(c3)
	if err != nil {
		t.Fatalf("fresh ephemeral: %v", err)
	}
	if n := s.LastResortUses(); n != 1 {
		t.Errorf("Find counted a use: LastResortUses() = %d", n)
	}
	s.Consume(k)
	if n := s.LastResortUses(); n != 2 {
		t.Errorf("LastResortUses() = %d, want 2", n)
	}
	if ot, pq := s.Counts(); ot != 1 || pq != 1 {
		t.Errorf("last-resort handshakes consumed one-time keys: Counts() = %d, %d", ot, pq)
	}
	if _, err := s.Find(c3); !errors.Is(err, prekey.ErrReplayedHandshake) {
		t.Errorf("second ephemeral again: err = %v, want ErrReplayedHandshake", err)
	}
	// The replay record survives the sealed store.
	s2, err := prekey.UnmarshalSet(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Find(c); !errors.Is(err, prekey.ErrReplayedHandshake) {
		t.Errorf("after UnmarshalSet: err = %v, want ErrReplayedHandshake", err)
	}
	// Rotation keeps the old key, with its replay record, for handshakes in
	// flight; the next rotation forgets it.
	old := b.PQ.ID
	nlr := s.RotateLastResort(signer)
	if n := s.LastResortUses(); n != 0 {
		t.Errorf("after RotateLastResort: LastResortUses() = %d, want 0", n)
	}
	if nlr.ID == old || !nlr.LastResort {
		t.Errorf("RotateLastResort returned ID %d (old %d), LastResort %v", nlr.ID, old, nlr.LastResort)
	}
	if _, err := s.Find(c3); !errors.Is(err, prekey.ErrReplayedHandshake) {
		t.Errorf("replay against the previous last-resort key: err = %v, want ErrReplayedHandshake", err)
	}
	inFlight := c3
	inFlight.Ephemeral = bytes.Repeat([]byte{7}, 32)
	k, err = s.Find(inFlight)
	if err != nil {
		t.Errorf("a handshake in flight against the previous last-resort key: %v", err)
	} else {
		s.Consume(k)
		if _, err := s.Find(inFlight); !errors.Is(err, prekey.ErrReplayedHandshake) {
			t.Errorf("its replay: err = %v, want ErrReplayedHandshake", err)
		}
	}
	s2, err = prekey.UnmarshalSet(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Find(inFlight); !errors.Is(err, prekey.ErrReplayedHandshake) {
		t.Errorf("the previous key's record after UnmarshalSet: err = %v, want ErrReplayedHandshake", err)
	}
	c.PQ = nlr.ID
	if _, err := s.Find(c); err != nil {
		t.Errorf("new last-resort key: %v", err)
	}
	s.RotateLastResort(signer)
	if _, err := s.Find(c3); !errors.Is(err, prekey.ErrUnknownPrekey) {
		t.Errorf("the key before the previous one after a second rotation: err = %v, want ErrUnknownPrekey", err)
	}
}

// TestReplenishLimit: a device never holds more than MaxOneTimePrekeys of
// either kind, and a refused request changes nothing.
func TestReplenishLimit(t *testing.T) {
	signer, s, _ := newSet(t, 2)
	for _, n := range []int{-1, prekey.MaxOneTimePrekeys - 1, prekey.MaxOneTimePrekeys, prekey.MaxOneTimePrekeys + 1} {
		if _, err := s.Replenish(signer, n); !errors.Is(err, prekey.ErrTooManyPrekeys) {
			t.Errorf("Replenish(%d) with 2 held: err = %v, want ErrTooManyPrekeys", n, err)
		}
	}
	if ot, pq := s.Counts(); ot != 2 || pq != 2 {
		t.Errorf("refused Replenish changed the set: Counts() = %d, %d", ot, pq)
	}
	if _, _, err := prekey.NewSet(signer, prekey.MaxOneTimePrekeys+1); !errors.Is(err, prekey.ErrTooManyPrekeys) {
		t.Errorf("NewSet(MaxOneTimePrekeys+1): err = %v, want ErrTooManyPrekeys", err)
	}
	u, err := s.Replenish(signer, 0)
	if err != nil || len(u.OneTime) != 0 || len(u.PQ) != 0 {
		t.Errorf("Replenish(0) = %+v, %v", u, err)
	}
	u, err = s.Replenish(signer, 1)
	if err != nil || len(u.OneTime) != 1 || len(u.PQ) != 1 || u.Signed != nil || u.LastResort != nil {
		t.Fatalf("Replenish(1) = %+v, %v", u, err)
	}
	if testing.Short() || raceEnabled {
		t.Skip("filling the set to MaxOneTimePrekeys is slow")
	}
	// Fill up to the limit exactly; one more is refused.
	if _, err := s.Replenish(signer, prekey.MaxOneTimePrekeys-3); err != nil {
		t.Fatalf("Replenish up to the limit: %v", err)
	}
	if ot, pq := s.Counts(); ot != prekey.MaxOneTimePrekeys || pq != prekey.MaxOneTimePrekeys {
		t.Fatalf("Counts() = %d, %d", ot, pq)
	}
	if _, err := s.Replenish(signer, 1); !errors.Is(err, prekey.ErrTooManyPrekeys) {
		t.Errorf("Replenish(1) at the limit: err = %v, want ErrTooManyPrekeys", err)
	}
	// A full set still round-trips through the sealed store.
	enc := s.Marshal()
	s2, err := prekey.UnmarshalSet(enc)
	if err != nil {
		t.Fatalf("UnmarshalSet of a full set: %v", err)
	}
	if !bytes.Equal(s2.Marshal(), enc) {
		t.Error("full set does not re-encode identically")
	}
}

func copyBundle(b *prekey.Bundle) *prekey.Bundle {
	c := *b
	c.Signed.Signature = bytes.Clone(b.Signed.Signature)
	if b.OneTime != nil {
		ot := *b.OneTime
		ot.Signature = bytes.Clone(ot.Signature)
		c.OneTime = &ot
	}
	c.PQ.Signature = bytes.Clone(b.PQ.Signature)
	return &c
}

// TestLastResortRecordIsBounded: the replay record never grows past
// MaxLastResortUses, keeps refusing the most recent handshakes, and a full
// record survives the sealed store.
func TestLastResortRecordIsBounded(t *testing.T) {
	_, s, u := newSet(t, 0)
	c := claimOf(bundleOf(u, -1, -1))
	var last []byte
	for i := range prekey.MaxLastResortUses + 5 {
		e := make([]byte, 32)
		e[0], e[1], e[2] = byte(i), byte(i>>8), 0xaa
		c.Ephemeral = e
		k, err := s.Find(c)
		if err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		s.Consume(k)
		last = e
	}
	if n := s.LastResortUses(); n != prekey.MaxLastResortUses {
		t.Errorf("LastResortUses() = %d, want %d", n, prekey.MaxLastResortUses)
	}
	c.Ephemeral = last
	if _, err := s.Find(c); !errors.Is(err, prekey.ErrReplayedHandshake) {
		t.Errorf("most recent handshake replayed: err = %v", err)
	}
	s2 := roundTrip(t, s)
	if _, err := s2.Find(c); !errors.Is(err, prekey.ErrReplayedHandshake) {
		t.Errorf("most recent handshake replayed after round trip: err = %v", err)
	}
}
