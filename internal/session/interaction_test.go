package session

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/ratchet"
	"github.com/parleyim/parley/internal/wire"
)

type flight struct {
	env  *wire.Envelope
	text string
	dup  bool // a copy of a message already delivered
}

// TestRandomizedConversation drives two devices through thousands of random
// steps at the session layer: sends in both directions, reordered and
// duplicated delivery, restarts from persisted records and prekey sets,
// resets, and the simultaneous initiations that resets provoke. Every
// message decrypts exactly once to its plaintext, duplicates are reported
// as such, and at the end the two devices converge on one session.
var seedFlag = flag.Uint64("seed", 0, "seed for TestRandomizedConversation (0: random)")

func TestRandomizedConversation(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	// Keys decide which device wins a tie, so they come from the seed too:
	// a failing seed replays exactly.
	defer primitives.UnsafeDeterministicEntropy(fmt.Sprint("session interaction ", seed))()
	p := newPair(t)
	toA, toB := []flight{}, []flight{}
	sent := 0
	// After a reset, a device's next message says so inside the encrypted
	// content (as the client's content.TypeSessionReset does), and the
	// receiver promotes the session it arrived on.
	noticeDue := map[bool]bool{}

	send := func(fromA bool) {
		r, peer, self := p.rb, p.a, p.b
		if fromA {
			r, peer, self = p.ra, p.b, p.a
		}
		if !r.HasSession() {
			if err := r.Initiate(self.keys, peer.pub(), peer.bundle(), t0); err != nil {
				t.Fatal(err)
			}
		}
		sent++
		text := fmt.Sprintf("%s %d", self.name, sent)
		if noticeDue[fromA] {
			text = "reset " + text
			noticeDue[fromA] = false
		}
		env, err := r.Encrypt([]byte(text), t0)
		if err != nil {
			t.Fatal(err)
		}
		if fromA {
			toB = append(toB, flight{env: env, text: text})
		} else {
			toA = append(toA, flight{env: env, text: text})
		}
	}
	deliver := func(toAlice bool) {
		q := &toB
		if toAlice {
			q = &toA
		}
		if len(*q) == 0 {
			return
		}
		i := rng.IntN(len(*q))
		f := (*q)[i]
		*q = append((*q)[:i], (*q)[i+1:]...)
		self, peer, r := p.b, p.a, p.rb
		if toAlice {
			self, peer, r = p.a, p.b, p.ra
		}
		got, err := r.Decrypt(f.env, self.keys, self.prekeys, peer.pub(), t0)
		switch {
		case f.dup:
			if !errors.Is(err, ratchet.ErrDuplicate) {
				t.Fatalf("duplicate of %q: %v, want ErrDuplicate", f.text, err)
			}
		case err != nil:
			t.Fatalf("%s could not decrypt %q: %v", self.name, f.text, err)
		case string(got) != f.text:
			t.Fatalf("%s decrypted %q, want %q", self.name, got, f.text)
		default:
			if strings.HasPrefix(f.text, "reset ") {
				r.PromoteLast(self.keys, peer.pub())
			}
			if rng.IntN(10) == 0 {
				*q = append(*q, flight{env: f.env, text: f.text, dup: true})
			}
		}
	}
	restart := func(d *device, r **Record) {
		rec, err := Unmarshal((*r).Marshal())
		if err != nil {
			t.Fatal(err)
		}
		set, err := prekey.UnmarshalSet(d.prekeys.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		*r, d.prekeys = rec, set
	}

	const steps = 3000
	for range steps {
		switch x := rng.IntN(100); {
		case x < 25:
			send(true)
		case x < 50:
			send(false)
		case x < 70:
			deliver(true)
		case x < 90:
			deliver(false)
		case x < 94:
			restart(p.a, &p.ra)
		case x < 98:
			restart(p.b, &p.rb)
		default:
			// Reset only with nothing in flight: a message sent on a
			// session that later falls out of the archive is, by design,
			// undecryptable (§6.1), which this test does not model. Both
			// devices may reset before either notice arrives.
			if len(toA) == 0 && len(toB) == 0 {
				fromA := rng.IntN(2) == 0
				if fromA {
					p.ra.Reset()
				} else {
					p.rb.Reset()
				}
				noticeDue[fromA] = true
			}
		}
	}
	for len(toA) > 0 || len(toB) > 0 {
		deliver(true)
		deliver(false)
	}
	// Converge: a few round trips must leave both on one confirmed session.
	for range 3 {
		send(true)
		deliver(false)
		send(false)
		deliver(true)
	}
	if !p.ra.HasSession() || !p.rb.HasSession() || p.ra.active.base != p.rb.active.base {
		t.Fatal("the devices did not converge on one session")
	}
	if !p.ra.Confirmed() || !p.rb.Confirmed() {
		t.Fatal("the converged session is not confirmed on both sides")
	}
}
