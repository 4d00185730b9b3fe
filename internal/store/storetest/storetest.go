// Package storetest is the conformance suite for internal/store engines
// (docs/server.md §3, DESIGN §6: one suite runs against every engine).
//
// An engine's test file is one call:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) func() store.Store {
//			path := filepath.Join(t.TempDir(), "parley.db")
//			return func() store.Store {
//				s, err := sqlite.Open(path)
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			}
//		})
//	}
//
// The suite checks what store.Store documents, plus a few choices the
// documentation leaves open that every engine must agree on so the server
// behaves the same on each; those are marked "suite:" below:
//
//   - suite: times round-trip to the microsecond (PostgreSQL's precision).
//   - suite: ClaimBundle hands out one-time prekeys uploaded in ascending
//     id order in that order (lowest id first and first-in-first-out both
//     satisfy it).
//   - suite: ClaimBundle is ErrNotFound when either the signed or the
//     last-resort prekey is missing, and then takes nothing.
//   - suite: a retried send whose envelopes are all still queued succeeds
//     even when the queue is at its limit (it stores nothing new).
//   - suite: an envelope is visible to Fetch only once every envelope of
//     the same device with a lower Seq is, so a device that fetches "after
//     its last Seq" misses nothing (an engine whose sequence numbers can
//     commit out of order, such as a PostgreSQL sequence, fails
//     TestConcurrentMix).
//   - suite: Enqueue or any read with an already cancelled context fails
//     with the context's error.
//   - suite: a successful Enqueue writes Seq 0 and Prev 0 into every
//     envelope it did not store (a duplicate), whatever the caller left
//     there, so a retried slice never reports its first call's values.
//
// Subtests run one after another, never in parallel: the goroutine-leak
// check counts the goroutines of the whole process.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

// Run runs the conformance suite. newStore is called once per subtest; it
// prepares a fresh, empty location (a file in t.TempDir(), a new
// PostgreSQL database) and returns a function that opens the store there.
// open is called again after Close to check that the data survived, so it
// must reopen the same location. open reports its own failures through
// the t it was made with. Run closes every store it opens.
func Run(t *testing.T, newStore func(t *testing.T) (open func() store.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"CreateAccount", testCreateAccount},
		{"CreateAccountDuplicateUsername", testCreateAccountDuplicateUsername},
		{"CreateAccountDuplicateDevice", testCreateAccountDuplicateDevice},
		{"CreateAccountInvites", testCreateAccountInvites},
		{"CreateAccountConcurrent", testCreateAccountConcurrent},
		{"NotFound", testNotFound},
		{"DeviceListVersions", testDeviceListVersions},
		{"DeviceListConflict", testDeviceListConflict},
		{"DeviceListConcurrentUpdates", testDeviceListConcurrentUpdates},
		{"DeviceListRemovesDevices", testDeviceListRemovesDevices},
		{"DeviceListAddsTakenDevice", testDeviceListAddsTakenDevice},
		{"DeviceIDs", testDeviceIDs},
		{"TouchDevice", testTouchDevice},
		{"PrekeysReplace", testPrekeysReplace},
		{"PrekeysOneTimeIdempotent", testPrekeysOneTimeIdempotent},
		{"ClaimBundleOrderAndCounts", testClaimBundleOrderAndCounts},
		{"ClaimBundleFallbacks", testClaimBundleFallbacks},
		{"ClaimBundleMissingKeys", testClaimBundleMissingKeys},
		{"ClaimBundleConcurrent", testClaimBundleConcurrent},
		{"EnqueueSeq", testEnqueueSeq},
		{"EnqueueSeqNotReusedAfterAck", testEnqueueSeqNotReusedAfterAck},
		{"Fetch", testFetch},
		{"EnqueueIdempotent", testEnqueueIdempotent},
		{"EnqueueIdempotentConcurrent", testEnqueueIdempotentConcurrent},
		{"EnqueueUnknownDevice", testEnqueueUnknownDevice},
		{"EnqueueQueueFull", testEnqueueQueueFull},
		{"EnqueueBatchIsolation", testEnqueueBatchIsolation},
		{"EnqueueReportsSeqAndPrev", testEnqueueReportsSeqAndPrev},
		{"EnqueuePrevFailedSends", testEnqueuePrevFailedSends},
		{"EnqueuePrevConcurrent", testEnqueuePrevConcurrent},
		{"Ack", testAck},
		{"Expire", testExpire},
		{"Secret", testSecret},
		{"SecretConcurrent", testSecretConcurrent},
		{"DeleteAccount", testDeleteAccount},
		{"CancelledContext", testCancelledContext},
		{"Closed", testClosed},
		{"Durability", testDurability},
		{"ConcurrentMix", testConcurrentMix},
		{"NoGoroutineLeak", testNoGoroutineLeak},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, open: newStore(t), ctx: t.Context(), closed: map[store.Store]bool{}}
			h.s = h.openStore()
			tc.fn(t, h)
		})
	}
}

// harness is one subtest's store.
type harness struct {
	t      *testing.T
	open   func() store.Store
	s      store.Store
	ctx    context.Context
	closed map[store.Store]bool
}

// openStore opens the store and closes it when the test ends, unless the
// test closed it (the suite never closes a store twice).
func (h *harness) openStore() store.Store {
	h.t.Helper()
	s := h.open()
	if s == nil {
		h.t.Fatal("open returned a nil store")
	}
	h.t.Cleanup(func() {
		if !h.closed[s] {
			s.Close()
		}
	})
	return s
}

// close closes the current store.
func (h *harness) close() {
	h.t.Helper()
	h.closed[h.s] = true
	if err := h.s.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
}

// reopen closes the store and opens it again at the same location.
func (h *harness) reopen() {
	h.t.Helper()
	h.close()
	h.s = h.openStore()
}

// base is a fixed time with microsecond precision (see "suite:" in the
// package documentation).
var base = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func newDeviceID() store.DeviceID {
	var id store.DeviceID
	primitives.Random(id[:])
	return id
}

func newMessageID() store.MessageID {
	var id store.MessageID
	primitives.Random(id[:])
	return id
}

// fixture is an account as the suite registers it.
type fixture struct {
	store.NewAccount
	ids []store.DeviceID
}

// prekeys is a device's initial upload: signed id 1, last resort id 2,
// one-time X25519 ids 1..oneTime, one-time ML-KEM ids 1..pq. Bodies name
// the device, kind and id so a mix-up shows.
func prekeys(id store.DeviceID, oneTime, pq int) store.PrekeyUpload {
	u := store.PrekeyUpload{
		Signed:     &store.Prekey{ID: 1, Body: body(id, "signed", 1)},
		LastResort: &store.Prekey{ID: 2, Body: body(id, "last-resort", 2)},
	}
	for i := 1; i <= oneTime; i++ {
		u.OneTime = append(u.OneTime, store.Prekey{ID: uint32(i), Body: body(id, "one-time", uint32(i))})
	}
	for i := 1; i <= pq; i++ {
		u.PQ = append(u.PQ, store.Prekey{ID: uint32(i), Body: body(id, "pq", uint32(i))})
	}
	return u
}

func body(id store.DeviceID, kind string, n uint32) []byte {
	return fmt.Appendf(nil, "%x/%s/%d", id[:4], kind, n)
}

func device(username string, id store.DeviceID) store.Device {
	return store.Device{
		ID:       id,
		Username: username,
		Public:   append([]byte("public-"), id[:]...),
		Added:    base,
		LastSeen: base,
	}
}

// newAccount builds a registration of username with n devices, each with
// 5 one-time X25519 and 3 one-time ML-KEM prekeys.
func newAccount(t testing.TB, username string, n int) fixture {
	f := fixture{NewAccount: store.NewAccount{
		Account: store.Account{Username: username, AccountKey: []byte("account-key-" + username), Created: base},
		List:    store.DeviceList{Username: username, Version: 1, Signed: []byte("list-1-" + username)},
		Prekeys: map[store.DeviceID]store.PrekeyUpload{},
	}}
	for range n {
		id := newDeviceID()
		f.ids = append(f.ids, id)
		f.Devices = append(f.Devices, device(username, id))
		f.Prekeys[id] = prekeys(id, 5, 3)
	}
	return f
}

// register creates an account with n devices and returns it.
func (h *harness) register(username string, n int) fixture {
	h.t.Helper()
	f := newAccount(h.t, username, n)
	if err := h.s.CreateAccount(h.ctx, f.NewAccount); err != nil {
		h.t.Fatalf("CreateAccount(%q): %v", username, err)
	}
	return f
}

// envelope builds an envelope for dev that expires in an hour.
func envelope(dev store.DeviceID, text string) store.Envelope {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return store.Envelope{
		Device:         dev,
		MessageID:      newMessageID(),
		SenderUsername: "sender",
		SenderDevice:   store.DeviceID{0x5e},
		Body:           []byte(text),
		Created:        now,
		Expires:        now.Add(time.Hour),
	}
}

func (h *harness) enqueue(envs ...store.Envelope) {
	h.t.Helper()
	if err := h.s.Enqueue(h.ctx, store.Send{Envelopes: envs, MaxQueue: 1 << 20}); err != nil {
		h.t.Fatalf("Enqueue: %v", err)
	}
}

// fetchAll returns a device's whole queue.
func (h *harness) fetchAll(dev store.DeviceID) []store.Envelope {
	h.t.Helper()
	envs, err := h.s.Fetch(h.ctx, dev, 0, 1000)
	if err != nil {
		h.t.Fatalf("Fetch: %v", err)
	}
	return envs
}

func (h *harness) queueLength(dev store.DeviceID) int {
	h.t.Helper()
	n, err := h.s.QueueLength(h.ctx, dev)
	if err != nil {
		h.t.Fatalf("QueueLength: %v", err)
	}
	return n
}

func (h *harness) counts(dev store.DeviceID) (int, int) {
	h.t.Helper()
	a, b, err := h.s.PrekeyCounts(h.ctx, dev)
	if err != nil {
		h.t.Fatalf("PrekeyCounts: %v", err)
	}
	return a, b
}

func (h *harness) claim(dev store.DeviceID) *store.Bundle {
	h.t.Helper()
	b, err := h.s.ClaimBundle(h.ctx, dev)
	if err != nil {
		h.t.Fatalf("ClaimBundle: %v", err)
	}
	return b
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func equalPrekey(a, b store.Prekey) bool { return a.ID == b.ID && bytes.Equal(a.Body, b.Body) }

// sameEnvelope compares everything but Seq and Prev, which the store
// assigns.
func sameEnvelope(a, b store.Envelope) bool {
	return a.Device == b.Device && a.MessageID == b.MessageID && a.SenderUsername == b.SenderUsername &&
		a.SenderDevice == b.SenderDevice && bytes.Equal(a.Body, b.Body) &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires)
}

func messageIDs(envs []store.Envelope) []store.MessageID {
	var ids []store.MessageID
	for _, e := range envs {
		ids = append(ids, e.MessageID)
	}
	return ids
}

func sortedIDs(ids []store.DeviceID) []store.DeviceID {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b store.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}
