package bustest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/store"
)

// claim calls b.Claim and fails t on error.
func claim(t *testing.T, b bus.Bus, id store.DeviceID) (<-chan struct{}, func()) {
	t.Helper()
	displaced, cancel, err := b.Claim(t.Context(), id)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if displaced == nil || cancel == nil {
		t.Fatal("Claim returned a nil channel or cancel func without an error")
	}
	return displaced, cancel
}

// testClaimDisplacesPrevious: when a device reconnects, its old stream is
// told to close and the new one is not, wherever either of them runs.
func testClaimDisplacesPrevious(t *testing.T, h *harness) {
	h.pairs(func(i, j int, a, b bus.Bus) {
		where := fmt.Sprintf("claims on bus %d then bus %d", i, j)
		id := newDeviceID()
		first, cancelFirst := claim(t, a, id)
		defer cancelFirst()
		second, cancelSecond := claim(t, b, id)
		defer cancelSecond()
		waitFor(t, first, where+": the first holder")
		staysQuiet(t, where+": the second holder", second)

		third, cancelThird := claim(t, a, id)
		defer cancelThird()
		waitFor(t, second, where+", then bus "+fmt.Sprint(i)+": the second holder")
		// The first holder was displaced once already; it is no longer
		// the holder and must not be told again.
		staysQuiet(t, where+": the first holder again, and the third holder", first, third)

		cancelFirst()
		cancelSecond()
		cancelThird()
		cancelThird()
	})
}

// testClaimCancelReleases: a stream that ends on its own releases its
// claim without telling anyone to close, and the next claim displaces no
// one.
func testClaimCancelReleases(t *testing.T, h *harness) {
	h.pairs(func(i, j int, a, b bus.Bus) {
		where := fmt.Sprintf("claim on bus %d cancelled, then claim on bus %d", i, j)
		id := newDeviceID()
		first, cancelFirst := claim(t, a, id)
		cancelFirst()
		cancelFirst()
		second, cancelSecond := claim(t, b, id)
		defer cancelSecond()
		staysQuiet(t, where, first, second)
	})
}

// testClaimStaleCancel: a displaced stream that cancels its claim late,
// while closing, must not release the claim of the stream that replaced
// it; otherwise a third stream could take over without displacing it.
func testClaimStaleCancel(t *testing.T, h *harness) {
	id := newDeviceID()
	first, cancelFirst := claim(t, h.first(), id)
	second, cancelSecond := claim(t, h.last(), id)
	defer cancelSecond()
	waitFor(t, first, "the first holder")
	cancelFirst() // late: the second claim already replaced it

	third, cancelThird := claim(t, h.first(), id)
	defer cancelThird()
	waitFor(t, second, "the second holder, after the first holder's late cancel")
	staysQuiet(t, "the third holder", third)
}

// testClaimDevicesIndependent: a claim for one device displaces no stream
// of another device.
func testClaimDevicesIndependent(t *testing.T, h *harness) {
	x, y := newDeviceID(), newDeviceID()
	dx, cancelX := claim(t, h.first(), x)
	defer cancelX()
	dy, cancelY := claim(t, h.last(), y)
	defer cancelY()
	staysQuiet(t, "holders of two different devices", dx, dy)
}

// testClaimCancelledContext: a Claim made for a caller that has already
// gone fails and leaves the live stream alone.
func testClaimCancelledContext(t *testing.T, h *harness) {
	id := newDeviceID()
	holder, cancelHolder := claim(t, h.first(), id)
	defer cancelHolder()

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for i, b := range h.buses {
		displaced, release, err := b.Claim(ctx, id)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("bus %d: Claim with a cancelled context: err = %v, want context.Canceled", i, err)
		}
		if err == nil {
			release()
			_ = displaced
		}
	}
	staysQuiet(t, "the holder, after Claims with a cancelled context", holder)

	// The holder still holds: a real claim displaces it.
	_, cancelNext := claim(t, h.last(), id)
	defer cancelNext()
	waitFor(t, holder, "the holder, after a valid Claim")
}
