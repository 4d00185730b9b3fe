package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

// RunMailboxes runs the conformance suite of store.Mailboxes (docs/server.md
// §5.6). newStore has the shape Run takes, so an engine passes the same
// constructor to both; the stores it opens must implement store.Mailboxes.
//
// Choices the documentation leaves open that every engine must agree on
// ("suite:"):
//
//   - suite: a frame may be empty, and Frames returns it as an empty,
//     non-nil slice.
//   - suite: Frames with limit <= 0 returns no frames, but still
//     ErrNotFound for an unknown mailbox.
//   - suite: ErrMailboxExists leaves the stored mailbox unchanged, whatever
//     offer the refused call carried.
//   - suite: a mailbox deleted and created again at the same address has
//     none of the old frames.
func RunMailboxes(t *testing.T, newStore func(t *testing.T) (open func() store.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *mharness)
	}{
		{"CreateMailbox", testCreateMailbox},
		{"MailboxNotFound", testMailboxNotFound},
		{"AppendAndFrames", testAppendAndFrames},
		{"AppendOrder", testAppendOrder},
		{"AppendLimit", testAppendLimit},
		{"AppendExtends", testAppendExtends},
		{"DeleteMailbox", testDeleteMailbox},
		{"ExpireMailboxes", testExpireMailboxes},
		{"ConcurrentAppendsOneWins", testConcurrentAppendsOneWins},
		{"ConcurrentReadersSeeEveryFrame", testConcurrentReadersSeeEveryFrame},
		{"MailboxDurability", testMailboxDurability},
		{"MailboxCancelledContext", testMailboxCancelledContext},
		{"MailboxClosed", testMailboxClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{t: t, open: newStore(t), ctx: t.Context(), closed: map[store.Store]bool{}}
			h.s = h.openStore()
			if _, ok := h.s.(store.Mailboxes); !ok {
				t.Fatalf("%T does not implement store.Mailboxes", h.s)
			}
			tc.fn(t, &mharness{h})
		})
	}
}

// mharness is the suite's harness, seen through store.Mailboxes.
type mharness struct{ *harness }

func (h *mharness) m() store.Mailboxes { return h.s.(store.Mailboxes) }

func newAddress() store.MailboxAddress {
	var a store.MailboxAddress
	primitives.Random(a[:])
	return a
}

// offerBytes stands in for an offer: the store never parses it.
func offerBytes(a store.MailboxAddress) []byte { return fmt.Appendf(nil, "offer-%x", a[:]) }

// frameBytes is frame i of mailbox a, n bytes long (at least a few), so a
// mix-up between mailboxes or indexes shows.
func frameBytes(a store.MailboxAddress, i uint32, n int) []byte {
	b := fmt.Appendf(nil, "%x/%d/", a[:4], i)
	for len(b) < n {
		b = append(b, byte(i))
	}
	return b
}

// create makes a mailbox created at base that expires ten minutes later
// (the server's default for a mailbox without frames).
func (h *mharness) create() store.MailboxAddress {
	h.t.Helper()
	a := newAddress()
	if err := h.m().CreateMailbox(h.ctx, a, offerBytes(a), base, base.Add(10*time.Minute)); err != nil {
		h.t.Fatalf("CreateMailbox: %v", err)
	}
	return a
}

// append appends a frame without a size limit and without extending the
// mailbox's life (the zero time is before any Expires).
func (h *mharness) append(a store.MailboxAddress, i uint32, frame []byte) {
	h.t.Helper()
	if err := h.m().AppendFrame(h.ctx, a, i, frame, 0, time.Time{}); err != nil {
		h.t.Fatalf("AppendFrame(%d): %v", i, err)
	}
}

func (h *mharness) mailbox(a store.MailboxAddress) *store.Mailbox {
	h.t.Helper()
	m, err := h.m().Mailbox(h.ctx, a)
	if err != nil {
		h.t.Fatalf("Mailbox: %v", err)
	}
	return m
}

func (h *mharness) frames(a store.MailboxAddress, from uint32, limit int) [][]byte {
	h.t.Helper()
	fs, err := h.m().Frames(h.ctx, a, from, limit)
	if err != nil {
		h.t.Fatalf("Frames(%d, %d): %v", from, limit, err)
	}
	return fs
}

func sameFrames(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func wantIndexError(t *testing.T, what string, err error, index, next uint32, conflict bool) {
	t.Helper()
	var ie *store.FrameIndexError
	if !errors.As(err, &ie) {
		t.Fatalf("%s: got %v, want *FrameIndexError", what, err)
	}
	if ie.Index != index || ie.Next != next || ie.Conflict != conflict {
		t.Errorf("%s: got %+v, want index %d, next %d, conflict %v", what, *ie, index, next, conflict)
	}
}

func testCreateMailbox(t *testing.T, h *mharness) {
	a := h.create()
	m := h.mailbox(a)
	if m.Address != a || !bytes.Equal(m.Offer, offerBytes(a)) || m.Frames != 0 || m.Bytes != 0 ||
		!m.Created.Equal(base) || !m.Expires.Equal(base.Add(10*time.Minute)) {
		t.Errorf("Mailbox = %+v, want the offer, no frames, created %v, expiring 10 minutes later", m, base)
	}
	// A second offer at the same address is refused and changes nothing
	// (suite:), even with other bytes and times.
	err := h.m().CreateMailbox(h.ctx, a, []byte("another offer"), base.Add(time.Hour), base.Add(2*time.Hour))
	wantErr(t, "CreateMailbox at a taken address", err, store.ErrMailboxExists)
	if m2 := h.mailbox(a); !bytes.Equal(m2.Offer, m.Offer) || !m2.Created.Equal(m.Created) || !m2.Expires.Equal(m.Expires) {
		t.Errorf("a refused CreateMailbox changed the mailbox: %+v", m2)
	}
	// Mailboxes are independent.
	b := h.create()
	h.append(b, 0, frameBytes(b, 0, 10))
	if m := h.mailbox(a); m.Frames != 0 {
		t.Errorf("a frame appended to another mailbox shows in this one: %+v", m)
	}
}

func testMailboxNotFound(t *testing.T, h *mharness) {
	h.create() // an unrelated mailbox
	a := newAddress()
	_, err := h.m().Mailbox(h.ctx, a)
	wantErr(t, "Mailbox of an unknown address", err, store.ErrNotFound)
	_, err = h.m().Frames(h.ctx, a, 0, 10)
	wantErr(t, "Frames of an unknown address", err, store.ErrNotFound)
	_, err = h.m().Frames(h.ctx, a, 0, 0)
	wantErr(t, "Frames of an unknown address with limit 0", err, store.ErrNotFound)
	err = h.m().AppendFrame(h.ctx, a, 0, []byte("x"), 0, base)
	wantErr(t, "AppendFrame to an unknown address", err, store.ErrNotFound)
	if err := h.m().DeleteMailbox(h.ctx, a); err != nil {
		t.Errorf("DeleteMailbox of an unknown address: %v, want nil (idempotent)", err)
	}
}

func testAppendAndFrames(t *testing.T, h *mharness) {
	a := h.create()
	var want [][]byte
	total := int64(0)
	for i := range uint32(6) {
		f := frameBytes(a, i, 100*int(i)+20)
		if i == 3 {
			f = []byte{} // suite: an empty frame is kept as one
		}
		h.append(a, i, f)
		want = append(want, f)
		total += int64(len(f))
	}
	if m := h.mailbox(a); m.Frames != 6 || m.Bytes != total {
		t.Errorf("Mailbox = %d frames of %d bytes, want 6 of %d", m.Frames, m.Bytes, total)
	}
	if got := h.frames(a, 0, 100); !sameFrames(got, want) {
		t.Errorf("Frames(0, 100) = %q, want %q", got, want)
	}
	if got := h.frames(a, 0, 100); got[3] == nil {
		t.Error("Frames returned the empty frame as nil, want an empty slice")
	}
	if got := h.frames(a, 2, 2); !sameFrames(got, want[2:4]) {
		t.Errorf("Frames(2, 2) = %q, want frames 2 and 3", got)
	}
	if got := h.frames(a, 5, 10); !sameFrames(got, want[5:]) {
		t.Errorf("Frames(5, 10) = %q, want the last frame", got)
	}
	for _, from := range []uint32{6, 7, 1<<32 - 1} {
		if got := h.frames(a, from, 10); len(got) != 0 {
			t.Errorf("Frames(%d, 10) = %d frames, want none", from, len(got))
		}
	}
	if got := h.frames(a, 0, 0); len(got) != 0 {
		t.Errorf("Frames(0, 0) = %d frames, want none", len(got))
	}
	// An empty mailbox has no frames and is not an error.
	b := h.create()
	if got := h.frames(b, 0, 10); len(got) != 0 {
		t.Errorf("Frames of an empty mailbox = %d frames", len(got))
	}
}

func testAppendOrder(t *testing.T, h *mharness) {
	a := h.create()
	m := h.m()
	wantIndexError(t, "frame 1 first", m.AppendFrame(h.ctx, a, 1, []byte("one"), 0, base), 1, 0, false)
	h.append(a, 0, []byte("zero"))
	// A retry of the last frame with identical bytes is a no-op.
	if err := m.AppendFrame(h.ctx, a, 0, []byte("zero"), 0, base); err != nil {
		t.Fatalf("retry of frame 0: %v, want nil", err)
	}
	if mb := h.mailbox(a); mb.Frames != 1 || mb.Bytes != 4 {
		t.Errorf("after a retried frame: %d frames of %d bytes, want 1 of 4", mb.Frames, mb.Bytes)
	}
	wantIndexError(t, "frame 0 again with other bytes", m.AppendFrame(h.ctx, a, 0, []byte("ZERO"), 0, base), 0, 1, true)
	wantIndexError(t, "frame 2 after frame 0", m.AppendFrame(h.ctx, a, 2, []byte("two"), 0, base), 2, 1, false)
	h.append(a, 1, []byte("one"))
	h.append(a, 2, []byte("two"))
	// Only the last frame may be retried: an older one is a duplicate.
	wantIndexError(t, "frame 0 after frame 2", m.AppendFrame(h.ctx, a, 0, []byte("zero"), 0, base), 0, 3, false)
	wantIndexError(t, "frame 1 after frame 2", m.AppendFrame(h.ctx, a, 1, []byte("one"), 0, base), 1, 3, false)
	wantIndexError(t, "the largest index", m.AppendFrame(h.ctx, a, 1<<32-1, []byte("x"), 0, base), 1<<32-1, 3, false)
	if got := h.frames(a, 0, 10); !sameFrames(got, [][]byte{[]byte("zero"), []byte("one"), []byte("two")}) {
		t.Errorf("Frames = %q, want zero, one, two", got)
	}
}

func testAppendLimit(t *testing.T, h *mharness) {
	a := h.create()
	m := h.m()
	const limit = 100
	if err := m.AppendFrame(h.ctx, a, 0, make([]byte, 60), limit, base); err != nil {
		t.Fatalf("AppendFrame within the limit: %v", err)
	}
	err := m.AppendFrame(h.ctx, a, 1, make([]byte, 41), limit, base)
	var fe *store.MailboxFullError
	if !errors.As(err, &fe) || fe.Limit != limit {
		t.Fatalf("AppendFrame over the limit: %v, want *MailboxFullError with limit %d", err, limit)
	}
	if mb := h.mailbox(a); mb.Frames != 1 || mb.Bytes != 60 {
		t.Errorf("a refused frame was counted: %d frames of %d bytes", mb.Frames, mb.Bytes)
	}
	// Exactly at the limit is allowed.
	if err := m.AppendFrame(h.ctx, a, 1, make([]byte, 40), limit, base); err != nil {
		t.Fatalf("AppendFrame up to the limit exactly: %v", err)
	}
	// A frame larger than the limit on its own is refused too.
	b := h.create()
	if err := m.AppendFrame(h.ctx, b, 0, make([]byte, limit+1), limit, base); !errors.As(err, &fe) {
		t.Errorf("a first frame over the limit: %v, want *MailboxFullError", err)
	}
	// maxBytes <= 0 is no limit.
	if err := m.AppendFrame(h.ctx, b, 0, make([]byte, 1000), 0, base); err != nil {
		t.Errorf("AppendFrame without a limit: %v", err)
	}
}

func testAppendExtends(t *testing.T, h *mharness) {
	a := h.create()
	m := h.m()
	created := h.mailbox(a).Expires
	later := base.Add(time.Hour)
	if err := m.AppendFrame(h.ctx, a, 0, []byte("0"), 0, later); err != nil {
		t.Fatal(err)
	}
	if got := h.mailbox(a).Expires; !got.Equal(later) {
		t.Errorf("Expires after an append extending to %v = %v", later, got)
	}
	// Never brought forward.
	if err := m.AppendFrame(h.ctx, a, 1, []byte("1"), 0, created); err != nil {
		t.Fatal(err)
	}
	if got := h.mailbox(a).Expires; !got.Equal(later) {
		t.Errorf("Expires after an append with an earlier extendTo = %v, want it kept at %v", got, later)
	}
	if got := h.mailbox(a).Created; !got.Equal(base) {
		t.Errorf("Created changed to %v by appends", got)
	}
}

func testDeleteMailbox(t *testing.T, h *mharness) {
	a, b := h.create(), h.create()
	h.append(a, 0, frameBytes(a, 0, 50))
	h.append(a, 1, frameBytes(a, 1, 50))
	h.append(b, 0, frameBytes(b, 0, 50))
	m := h.m()
	if err := m.DeleteMailbox(h.ctx, a); err != nil {
		t.Fatalf("DeleteMailbox: %v", err)
	}
	_, err := m.Mailbox(h.ctx, a)
	wantErr(t, "Mailbox after DeleteMailbox", err, store.ErrNotFound)
	_, err = m.Frames(h.ctx, a, 0, 10)
	wantErr(t, "Frames after DeleteMailbox", err, store.ErrNotFound)
	wantErr(t, "AppendFrame after DeleteMailbox", m.AppendFrame(h.ctx, a, 2, []byte("x"), 0, base), store.ErrNotFound)
	if err := m.DeleteMailbox(h.ctx, a); err != nil {
		t.Errorf("second DeleteMailbox: %v, want nil", err)
	}
	if got := h.frames(b, 0, 10); len(got) != 1 {
		t.Errorf("deleting one mailbox touched another: %d frames left", len(got))
	}
	// suite: created again, the address starts empty.
	if err := m.CreateMailbox(h.ctx, a, offerBytes(a), base, base.Add(time.Minute)); err != nil {
		t.Fatalf("CreateMailbox after DeleteMailbox: %v", err)
	}
	if mb := h.mailbox(a); mb.Frames != 0 || mb.Bytes != 0 {
		t.Errorf("recreated mailbox = %+v, want no frames", mb)
	}
	if got := h.frames(a, 0, 10); len(got) != 0 {
		t.Errorf("recreated mailbox has %d old frames", len(got))
	}
	h.append(a, 0, []byte("new"))
}

func testExpireMailboxes(t *testing.T, h *mharness) {
	m := h.m()
	mk := func(expires time.Time) store.MailboxAddress {
		a := newAddress()
		if err := m.CreateMailbox(h.ctx, a, offerBytes(a), base.Add(-time.Hour), expires); err != nil {
			t.Fatalf("CreateMailbox: %v", err)
		}
		return a
	}
	past, now, future := mk(base.Add(-time.Minute)), mk(base), mk(base.Add(time.Minute))
	h.append(past, 0, []byte("frame of an expired mailbox"))
	n, err := m.ExpireMailboxes(h.ctx, base)
	if err != nil || n != 1 {
		t.Fatalf("ExpireMailboxes(base) = %d, %v; want 1 (only Expires before now)", n, err)
	}
	_, err = m.Mailbox(h.ctx, past)
	wantErr(t, "Mailbox after it expired", err, store.ErrNotFound)
	_, err = m.Frames(h.ctx, past, 0, 10)
	wantErr(t, "Frames after the mailbox expired", err, store.ErrNotFound)
	h.mailbox(now)
	h.mailbox(future)
	if n, err := m.ExpireMailboxes(h.ctx, base); err != nil || n != 0 {
		t.Errorf("second ExpireMailboxes(base) = %d, %v; want 0", n, err)
	}
	if n, err := m.ExpireMailboxes(h.ctx, base.Add(time.Microsecond)); err != nil || n != 1 {
		t.Errorf("ExpireMailboxes a microsecond later = %d, %v; want 1", n, err)
	}
	h.mailbox(future)
	// An append extends the life of a mailbox.
	h.append(future, 0, []byte("x"))
	if err := m.AppendFrame(h.ctx, future, 1, []byte("y"), 0, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := m.ExpireMailboxes(h.ctx, base.Add(30*time.Minute)); err != nil || n != 0 {
		t.Errorf("ExpireMailboxes before the extended expiry = %d, %v; want 0", n, err)
	}
	// Many at once (more than one transaction's worth in some engines),
	// created concurrently so group commit serves them.
	const many = 250
	var wg sync.WaitGroup
	for range many {
		wg.Go(func() { mk(base.Add(time.Hour)) })
	}
	wg.Wait()
	if n, err := m.ExpireMailboxes(h.ctx, base.Add(2*time.Hour)); err != nil || n != many+1 {
		t.Errorf("ExpireMailboxes of %d = %d, %v", many+1, n, err)
	}
}

// testConcurrentAppendsOneWins has writers race for every index with
// different frames: exactly one wins each, the others learn the index is
// taken, and the mailbox holds the winners in order. Run it with -race.
func testConcurrentAppendsOneWins(t *testing.T, h *mharness) {
	const (
		writers = 8
		frames  = 20
	)
	a := h.create()
	m := h.m()
	winners := make([][]byte, frames)
	for i := range uint32(frames) {
		var (
			wg   sync.WaitGroup
			wins atomic.Int32
		)
		for w := range writers {
			wg.Go(func() {
				f := fmt.Appendf(nil, "frame %d by writer %d", i, w)
				err := m.AppendFrame(h.ctx, a, i, f, 0, base)
				var ie *store.FrameIndexError
				switch {
				case err == nil:
					wins.Add(1)
					winners[i] = f
				case errors.As(err, &ie):
					if ie.Next != i+1 {
						t.Errorf("losing writer told next index %d, want %d", ie.Next, i+1)
					}
				default:
					t.Errorf("AppendFrame(%d): %v", i, err)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("index %d: %d appends succeeded, want exactly 1", i, n)
		}
	}
	if got := h.frames(a, 0, frames); !sameFrames(got, winners) {
		t.Errorf("Frames = %q, want the winners %q", got, winners)
	}
	if mb := h.mailbox(a); mb.Frames != frames {
		t.Errorf("Mailbox.Frames = %d, want %d", mb.Frames, frames)
	}
}

// testConcurrentReadersSeeEveryFrame has readers poll while a writer
// appends, each reading from its own cursor as a ReceiveFrames stream does:
// every reader must see every frame exactly once, in order.
func testConcurrentReadersSeeEveryFrame(t *testing.T, h *mharness) {
	const (
		readers = 4
		frames  = 60
	)
	a := h.create()
	m := h.m()
	var (
		wg   sync.WaitGroup
		done atomic.Bool
	)
	got := make([][][]byte, readers)
	for r := range readers {
		wg.Go(func() {
			deadline := time.Now().Add(time.Minute)
			for time.Now().Before(deadline) {
				finished := done.Load()
				fs, err := m.Frames(h.ctx, a, uint32(len(got[r])), 7)
				if err != nil {
					t.Errorf("Frames: %v", err)
					return
				}
				got[r] = append(got[r], fs...)
				if len(fs) == 0 {
					if finished {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
			t.Errorf("reader %d did not finish", r)
		})
	}
	var want [][]byte
	for i := range uint32(frames) {
		f := frameBytes(a, i, 64)
		want = append(want, f)
		if err := m.AppendFrame(h.ctx, a, i, f, 0, base); err != nil {
			t.Fatalf("AppendFrame: %v", err)
		}
	}
	done.Store(true)
	wg.Wait()
	for r := range readers {
		if !sameFrames(got[r], want) {
			t.Errorf("reader %d saw %d frames, not the %d appended in order", r, len(got[r]), frames)
		}
	}
}

func testMailboxDurability(t *testing.T, h *mharness) {
	a, b := h.create(), h.create()
	var want [][]byte
	for i := range uint32(5) {
		f := frameBytes(a, i, 1000)
		h.append(a, i, f)
		want = append(want, f)
	}
	if err := h.m().AppendFrame(h.ctx, b, 0, []byte("b0"), 0, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	h.reopen()
	ma := h.mailbox(a)
	if !bytes.Equal(ma.Offer, offerBytes(a)) || ma.Frames != 5 || ma.Bytes != 5000 ||
		!ma.Created.Equal(base) || !ma.Expires.Equal(base.Add(10*time.Minute)) {
		t.Errorf("mailbox after reopen = %+v", ma)
	}
	if got := h.frames(a, 0, 10); !sameFrames(got, want) {
		t.Errorf("frames after reopen = %d, want the 5 appended", len(got))
	}
	if mb := h.mailbox(b); mb.Frames != 1 || !mb.Expires.Equal(base.Add(time.Hour)) {
		t.Errorf("second mailbox after reopen = %+v, want 1 frame, extended expiry", mb)
	}
	// The order is kept across the restart too.
	wantIndexError(t, "AppendFrame at an old index after reopen", h.m().AppendFrame(h.ctx, a, 3, want[3], 0, base), 3, 5, false)
	h.append(a, 5, []byte("after reopen"))
}

func testMailboxCancelledContext(t *testing.T, h *mharness) {
	a := h.create()
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	m := h.m()
	wantErr(t, "CreateMailbox with a cancelled context",
		m.CreateMailbox(ctx, newAddress(), []byte("o"), base, base.Add(time.Minute)), context.Canceled)
	wantErr(t, "AppendFrame with a cancelled context", m.AppendFrame(ctx, a, 0, []byte("f"), 0, base), context.Canceled)
	_, err := m.Mailbox(ctx, a)
	wantErr(t, "Mailbox with a cancelled context", err, context.Canceled)
	_, err = m.Frames(ctx, a, 0, 10)
	wantErr(t, "Frames with a cancelled context", err, context.Canceled)
	if mb := h.mailbox(a); mb.Frames != 0 {
		t.Errorf("a cancelled AppendFrame stored a frame")
	}
}

func testMailboxClosed(t *testing.T, h *mharness) {
	a := h.create()
	m := h.m()
	h.close()
	ctx := h.ctx
	calls := map[string]func() error{
		"CreateMailbox": func() error { return m.CreateMailbox(ctx, newAddress(), []byte("o"), base, base) },
		"Mailbox":       func() error { _, err := m.Mailbox(ctx, a); return err },
		"AppendFrame":   func() error { return m.AppendFrame(ctx, a, 0, []byte("f"), 0, base) },
		"Frames":        func() error { _, err := m.Frames(ctx, a, 0, 10); return err },
		"DeleteMailbox": func() error { return m.DeleteMailbox(ctx, a) },
		"ExpireMailboxes": func() error {
			_, err := m.ExpireMailboxes(ctx, base)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
