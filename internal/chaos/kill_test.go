package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/loadgen"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
)

// The chaos test's shape: killRounds rounds of killPeriod, each killing one
// node (in turn) with SIGKILL half-way through and starting it again
// killDowntime later.
const (
	killNodes    = 3
	killRounds   = 5
	killPeriod   = 3 * time.Second
	killDowntime = 500 * time.Millisecond
)

// TestKillNodesUnderLoad: three parleyd processes on one PostgreSQL
// database and one NATS server carry load from accounts of two devices
// each (every send fans out to three devices), spread over all three
// nodes. Round after round one node is killed with SIGKILL — between a
// write and its answer, with streams open — and started again; devices on
// it reconnect to the others, and sends that failed are retried there by
// message id. At the end every device's queue is read to the end: every
// message whose send was acknowledged reached every recipient device,
// exactly once after de-duplication.
func TestKillNodesUnderLoad(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	bin := parleyd(t)
	ns := startNATS(t)
	nodes := make([]*node, killNodes)
	urls := make([]string, killNodes)
	for i := range nodes {
		nodes[i] = startNode(t, fmt.Sprint("node", i+1), bin, "--postgres", dsn, "--nats", ns.ClientURL())
		urls[i] = nodes[i].url
	}

	sending := make(chan struct{})
	var once sync.Once
	e, err := loadgen.New(loadgen.Config{
		URLs: urls, Users: 30, DevicesPerUser: 2, Rate: 150,
		Duration:    2 * time.Minute, // ended by StopSending
		SourceAddrs: loadgen.SourceAddrs(8),
		Progress:    func(loadgen.Progress) { once.Do(func() { close(sending) }) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   *loadgen.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := e.Run(ctx)
		done <- result{r, err}
	}()

	select {
	case <-sending:
	case res := <-done:
		t.Fatalf("the run ended before sending: %v", res.err)
	}
	for round := range killRounds {
		victim := nodes[round%killNodes]
		time.Sleep(killPeriod/2 - killDowntime/2)
		victim.kill()
		time.Sleep(killDowntime)
		if err := victim.start(); err != nil {
			t.Fatalf("round %d: %v", round+1, err)
		}
		t.Logf("round %d: killed and restarted %s", round+1, victim.name)
		time.Sleep(killPeriod/2 - killDowntime/2)
	}
	e.StopSending()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	r := res.r
	checkNothingLost(t, r)
	if r.Sent < 500 {
		t.Errorf("only %d messages sent", r.Sent)
	}
	// The kills must have hit the load: streams on a killed node end
	// (connect reports a cut stream as internal, "incomplete envelope", or
	// as canceled, "connection reset by peer").
	var cut int64
	for k, v := range r.Errors {
		if strings.HasPrefix(k, "receive: ") {
			cut += v
		}
	}
	if cut == 0 {
		t.Errorf("no delivery stream was cut by a kill: %v", r.Errors)
	}
	for _, n := range nodes {
		if !n.healthy() {
			t.Errorf("%s is not healthy after the run:\n%s", n.name, n.logTail())
		}
	}
}
