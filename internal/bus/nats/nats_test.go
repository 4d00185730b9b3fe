package nats_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/bus/bustest"
	busnats "github.com/parleyim/parley/internal/bus/nats"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

const (
	// nodes is how many parleyd nodes a test models: three, so that a
	// claim race has more than one loser and the suite's pairs include
	// two remote buses.
	nodes = 3
	// timeout bounds the wait for something that must happen; quiet is
	// how long a test waits before deciding something did not (as in
	// bustest).
	timeout = 5 * time.Second
	quiet   = 100 * time.Millisecond
)

// serverURL is the NATS server TestMain starts for the whole package. The
// conformance suite's goroutine-leak check counts every goroutine of the
// process, so the server must be running before it and stay up after.
var serverURL string

func TestMain(m *testing.M) {
	s, err := startServer(-1)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverURL = s.ClientURL()
	code := m.Run()
	s.Shutdown()
	s.WaitForShutdown()
	os.Exit(code)
}

// startServer starts a NATS server on loopback, on port or, if port is -1,
// a random one. No JetStream: the bus uses core pub/sub only.
func startServer(port int) (*natsserver.Server, error) {
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(timeout) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server on port %d not ready within %v", port, timeout)
	}
	return s, nil
}

// connect returns a bus on its own connection to url, standing for one
// parleyd node, closed when the test ends.
func connect(t testing.TB, url string) *busnats.Bus {
	t.Helper()
	b, err := busnats.Connect(url, nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// cluster returns n buses on separate connections to the shared server.
func cluster(t testing.TB, n int) []*busnats.Bus {
	t.Helper()
	buses := make([]*busnats.Bus, n)
	for i := range buses {
		buses[i] = connect(t, serverURL)
	}
	return buses
}

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) []bus.Bus {
		var buses []bus.Bus
		for _, b := range cluster(t, nodes) {
			buses = append(buses, b)
		}
		return buses
	})
}

func newDeviceID() store.DeviceID {
	var id store.DeviceID
	primitives.Random(id[:])
	return id
}

// waitFor fails t unless ch receives within timeout.
func waitFor[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("%s: nothing received within %v", what, timeout)
	}
}

// received reports whether ch has a value ready, taking it.
func received[T any](ch <-chan T) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestNotifyCrossesNodes: a send handled on one node wakes the stream on
// another promptly (on loopback, well under the bound), every time.
func TestNotifyCrossesNodes(t *testing.T) {
	const (
		rounds = 200
		bound  = time.Second
	)
	buses := cluster(t, 2)
	var took []time.Duration
	for range rounds {
		id := newDeviceID()
		wake, cancel := buses[1].Subscribe(id)
		start := time.Now()
		if err := buses[0].Notify(t.Context(), id, 0); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wake:
			took = append(took, time.Since(start))
		case <-time.After(bound):
			t.Fatalf("notification not delivered across nodes within %v", bound)
		}
		cancel()
	}
	slices.Sort(took)
	t.Logf("notify → wake across nodes: median %v, p99 %v, max %v", took[len(took)/2], took[len(took)*99/100], took[len(took)-1])
}

// TestClaimRace: every node claims the same device at the same moment, for
// many devices at once. Whatever order the claims reach each node in,
// exactly one claim per device must survive (never two, which would leave
// two live streams; never none, which would end every stream for nothing),
// and a later claim must still displace the survivor.
func TestClaimRace(t *testing.T) {
	const (
		rounds  = 10
		devices = 100
	)
	buses := cluster(t, nodes)
	for round := range rounds {
		type claim struct {
			displaced <-chan struct{}
			cancel    func()
		}
		ids := make([]store.DeviceID, devices)
		claims := make([][nodes]claim, devices)
		for d := range ids {
			ids[d] = newDeviceID()
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for d := range ids {
			for n, b := range buses {
				wg.Go(func() {
					<-start
					displaced, cancel, err := b.Claim(t.Context(), ids[d])
					if err != nil {
						t.Errorf("Claim: %v", err)
						return
					}
					claims[d][n] = claim{displaced, cancel}
				})
			}
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}

		// Wait until every device is down to one holder, then a while
		// longer to catch a late displacement of the survivor.
		survivors := make([]int, devices) // index into claims[d], or -1
		deadline := time.Now().Add(timeout)
		for d := range ids {
			for n := range buses {
				c := claims[d][n]
				defer c.cancel()
			}
			left := nodes
			gone := [nodes]bool{}
			for left > 1 && time.Now().Before(deadline) {
				for n := range buses {
					if !gone[n] && received(claims[d][n].displaced) {
						gone[n] = true
						left--
					}
				}
				if left > 1 {
					time.Sleep(time.Millisecond)
				}
			}
			if left > 1 {
				t.Fatalf("round %d, device %d: %d claims still undisplaced after %v", round, d, left, timeout)
			}
			survivors[d] = slices.Index(gone[:], false)
		}
		time.Sleep(quiet)
		for d := range ids {
			s := survivors[d]
			if s < 0 {
				t.Fatalf("round %d, device %d: every claim was displaced", round, d)
			}
			if received(claims[d][s].displaced) {
				t.Fatalf("round %d, device %d: every claim was displaced (the survivor, on bus %d, late)", round, d, s)
			}
		}

		// The survivor still holds: a fresh claim, here on whichever node
		// did not win, displaces it.
		for d, id := range ids {
			s := survivors[d]
			_, cancel, err := buses[(s+1)%nodes].Claim(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			defer cancel()
			waitFor(t, claims[d][s].displaced, fmt.Sprintf("round %d, device %d: the race's survivor, after a fresh claim", round, d))
		}
	}
}

// TestMalformedClaimIgnored: a claim message a bus cannot parse (another
// version, truncated, a subject that is not a device id) displaces no one.
func TestMalformedClaimIgnored(t *testing.T) {
	b := connect(t, serverURL)
	id := newDeviceID()
	displaced, cancel, err := b.Claim(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()

	nc, err := nats.Connect(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	hexID := fmt.Sprintf("%x", id[:])
	far := make([]byte, 33)
	far[0] = 1
	for i := 9; i < 17; i++ {
		far[i] = 0xff // the far future: would displace the holder if parsed
	}
	for _, m := range []struct {
		subject, why string
		data         []byte
	}{
		{"parley.claim." + hexID, "empty", nil},
		{"parley.claim." + hexID, "truncated", far[:32]},
		{"parley.claim." + hexID, "too long", append(slices.Clone(far), 0)},
		{"parley.claim." + hexID, "another version", append([]byte{2}, far[1:]...)},
		{"parley.claim." + fmt.Sprintf("%X", id[:]), "upper-case id", far},
		{"parley.claim." + hexID[:30], "short id", far},
	} {
		if err := nc.Publish(m.subject, m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(quiet)
	if received(displaced) {
		t.Fatal("a malformed claim displaced the holder")
	}

	// The well-formed message does, which shows the ones above arrived
	// and were rejected rather than lost.
	if err := nc.Publish("parley.claim."+hexID, far); err != nil {
		t.Fatal(err)
	}
	waitFor(t, displaced, "the holder, after a well-formed far-future claim")
}

// TestOlderClaimIsAnswered: a claim older than the one a bus holds means
// its sender did not know ours (it missed our announcement, during an
// outage say); the bus announces its claim again, unchanged, so that the
// sender's holder is displaced, and keeps holding.
func TestOlderClaimIsAnswered(t *testing.T) {
	b := connect(t, serverURL)
	id := newDeviceID()
	displaced, cancel, err := b.Claim(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	time.Sleep(quiet) // the announcement is delivered before we listen

	nc, err := nats.Connect(serverURL, nats.NoEcho())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject := fmt.Sprintf("parley.claim.%x", id[:])
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	older := make([]byte, 33)
	older[0] = 1    // version
	older[1] = 0xaa // an origin that is not the bus's
	older[16] = 1   // time 1 ns after the epoch
	var answers [2][]byte
	for i := range answers {
		if err := nc.Publish(subject, older); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(timeout)
		if err != nil {
			t.Fatalf("answer %d to an older claim: %v", i, err)
		}
		answers[i] = m.Data
	}
	if len(answers[0]) != 33 || answers[0][0] != 1 {
		t.Fatalf("answer %x: not a version 1 claim", answers[0])
	}
	if string(answers[0]) != string(answers[1]) {
		t.Errorf("answers %x and %x differ: want the held claim announced unchanged", answers[0], answers[1])
	}
	if received(displaced) {
		t.Error("an older claim displaced the holder")
	}
}

// TestSharedConnection: buses from New share the caller's connection,
// which echoes their messages back to them; each still hears the other,
// and Close leaves the connection open.
func TestSharedConnection(t *testing.T) {
	nc, err := nats.Connect(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var buses [2]*busnats.Bus
	for i := range buses {
		if buses[i], err = busnats.New(nc); err != nil {
			t.Fatal(err)
		}
		defer buses[i].Close()
	}

	id := newDeviceID()
	wake0, cancel0 := buses[0].Subscribe(id)
	defer cancel0()
	wake1, cancel1 := buses[1].Subscribe(id)
	defer cancel1()
	if err := buses[0].Notify(t.Context(), id, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, wake0, "the notifier's own subscriber")
	waitFor(t, wake1, "the other bus's subscriber")
	time.Sleep(quiet)
	if received(wake0) {
		t.Error("the notifier's own subscriber woken twice: its echo was not ignored")
	}

	first, cancelFirst, err := buses[0].Claim(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer cancelFirst()
	second, cancelSecond, err := buses[1].Claim(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer cancelSecond()
	waitFor(t, first, "the first holder")
	time.Sleep(quiet)
	if received(second) {
		t.Error("the second holder was displaced, by an echo or an answer")
	}

	for _, b := range buses {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if !nc.IsConnected() {
		t.Fatal("Close of a bus from New closed the caller's connection")
	}
}

// TestClosedConnection: New refuses a closed connection, and a bus whose
// borrowed connection was closed under it fails Notify and Claim with the
// NATS error rather than bus.ErrClosed (the bus itself is not closed).
func TestClosedConnection(t *testing.T) {
	nc, err := nats.Connect(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := busnats.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	nc.Close()

	if _, err := busnats.New(nc); err == nil || !strings.HasPrefix(err.Error(), "bus/nats: ") {
		t.Errorf("New on a closed connection: err = %v, want a bus/nats error", err)
	}
	id := newDeviceID()
	if err := b.Notify(t.Context(), id, 0); !errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, bus.ErrClosed) {
		t.Errorf("Notify on a closed connection: err = %v, want nats.ErrConnectionClosed", err)
	}
	if _, _, err := b.Claim(t.Context(), id); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("Claim on a closed connection: err = %v, want nats.ErrConnectionClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Notify(t.Context(), id, 0); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Notify after Close: err = %v, want bus.ErrClosed", err)
	}
}

// TestReconnect restarts the NATS server under two nodes. nats.go
// reconnects and sends its subscriptions again; what was published while
// a node was away is lost, so after the reconnect every subscriber is
// woken (to read what was queued meanwhile), notifications flow again,
// and a claim made during the outage displaces the one it replaced.
func TestReconnect(t *testing.T) {
	s, err := startServer(-1)
	if err != nil {
		t.Fatal(err)
	}
	port := s.Addr().(*net.TCPAddr).Port
	url := s.ClientURL()
	defer func() { s.Shutdown() }()

	// Own connections, to watch them reconnect.
	var conns [2]*nats.Conn
	var buses [2]*busnats.Bus
	for i := range buses {
		nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		conns[i] = nc
		if buses[i], err = busnats.New(nc); err != nil {
			t.Fatal(err)
		}
		defer buses[i].Close()
	}

	waiting := newDeviceID()
	wake, cancelWake := buses[1].Subscribe(waiting)
	defer cancelWake()
	device := newDeviceID()
	old, cancelOld, err := buses[0].Claim(t.Context(), device)
	if err != nil {
		t.Fatal(err)
	}
	defer cancelOld()
	time.Sleep(quiet) // let the claim reach the other node before the outage

	s.Shutdown()
	s.WaitForShutdown()
	for i, nc := range conns {
		for nc.IsConnected() {
			time.Sleep(time.Millisecond)
		}
		t.Logf("node %d: %v", i, nc.Status())
	}
	// The device reconnects to the other node during the outage. The
	// claim is buffered by nats.go until the connection is back, and may
	// reach the server before or after node 0 has subscribed again.
	replacement, cancelReplacement, err := buses[1].Claim(t.Context(), device)
	if err != nil {
		t.Fatalf("Claim during the outage: %v", err)
	}
	defer cancelReplacement()

	if s, err = startServer(port); err != nil {
		t.Fatal(err)
	}
	waitFor(t, wake, "a subscriber, after its node reconnected")
	waitFor(t, old, "the claim replaced during the outage")
	for i, nc := range conns {
		if nc.Reconnects == 0 {
			t.Errorf("node %d: no reconnect recorded", i)
		}
	}

	// Notifications flow again, in both directions, to subscriptions old
	// and new.
	fresh := newDeviceID()
	wakeFresh, cancelFresh := buses[0].Subscribe(fresh)
	defer cancelFresh()
	time.Sleep(quiet)
	received(wake)
	if err := buses[0].Notify(t.Context(), waiting, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, wake, "a subscription made before the outage, after a Notify on the other node")
	if err := buses[1].Notify(t.Context(), fresh, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, wakeFresh, "a subscription made after the outage, after a Notify on the other node")

	time.Sleep(quiet)
	if received(replacement) {
		t.Error("the claim made during the outage was displaced")
	}
}

// BenchmarkNotifyWake is the cross-node latency of a notification: Notify
// on one connection, then wait until the subscriber on another connection
// is woken (a publish, the server's routing, the subscription's dispatch,
// the hub's fan-out). Allocations are the whole process's, nats.go's
// reading side included.
func BenchmarkNotifyWake(b *testing.B) {
	buses := cluster(b, 2)
	id := newDeviceID()
	wake, cancel := buses[1].Subscribe(id)
	defer cancel()
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := buses[0].Notify(ctx, id, 0); err != nil {
			b.Fatal(err)
		}
		<-wake
	}
}

// BenchmarkNotify is the sender's side alone: what one Notify costs the
// relay's Send, subscribers on another node never reading.
func BenchmarkNotify(b *testing.B) {
	buses := cluster(b, 2)
	id := newDeviceID()
	_, cancel := buses[1].Subscribe(id)
	defer cancel()
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if err := buses[0].Notify(ctx, id, 0); err != nil {
			b.Fatal(err)
		}
	}
}
