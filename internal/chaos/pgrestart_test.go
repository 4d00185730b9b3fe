package chaos

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyim/parley/internal/loadgen"
	"github.com/parleyim/parley/internal/store/postgres/pgtest"
)

// TestPostgresRestartUnderLoad: two parleyd nodes on a PostgreSQL server
// of the test's own carry load; the database is stopped (fast: open
// transactions roll back, every connection is cut) and started again, and
// later killed (immediate: no shutdown checkpoint, crash recovery from
// the WAL) and started again. Nobody touches the nodes: they recover by
// themselves (their pools reconnect, their streams are re-opened by the
// clients, failed sends are retried by message id), sends are
// acknowledged again after each restart, and every acknowledged message
// reaches every recipient device exactly once after de-duplication.
func TestPostgresRestartUnderLoad(t *testing.T) {
	pg := pgtest.StartServer(t)
	dsn := pg.NewDatabase(t)
	bin := parleyd(t)
	ns := startNATS(t)
	nodes := []*node{
		startNode(t, "node1", bin, "--postgres", dsn, "--nats", ns.ClientURL()),
		startNode(t, "node2", bin, "--postgres", dsn, "--nats", ns.ClientURL()),
	}

	var (
		sent    atomic.Int64
		sending = make(chan struct{})
		once    sync.Once
	)
	const phase = 4 * time.Second // around each restart
	e, err := loadgen.New(loadgen.Config{
		URLs: []string{nodes[0].url, nodes[1].url}, Users: 20, DevicesPerUser: 2, Rate: 150,
		Duration:    2 * time.Minute, // ended by StopSending
		SourceAddrs: loadgen.SourceAddrs(4),
		Progress: func(p loadgen.Progress) {
			sent.Store(p.Sent)
			once.Do(func() { close(sending) })
		},
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
	done := make(chan *loadgen.Report, 1)
	go func() {
		r, err := e.Run(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	<-sending

	for _, mode := range []string{"fast", "immediate"} {
		time.Sleep(phase / 2)
		if err := pg.Stop(mode); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := pg.Start(); err != nil {
			t.Fatal(err)
		}
		restarted, back := sent.Load(), time.Now()
		// Sends are acknowledged again within a few seconds, without help.
		deadline := time.Now().Add(20 * time.Second)
		for sent.Load() < restarted+100 {
			if time.Now().After(deadline) {
				t.Fatalf("no sends acknowledged within 20 s of the database's restart (%s)", mode)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("PostgreSQL stopped (%s) and started again; sends acknowledged again within %v", mode, time.Since(back).Round(100*time.Millisecond))
		time.Sleep(phase / 2)
	}
	e.StopSending()
	r := <-done
	if r == nil {
		t.FailNow()
	}
	checkNothingLost(t, r)
	// The nodes say what happened: the database is unavailable (retry),
	// not an internal error.
	if r.Errors["send: unavailable"] == 0 {
		t.Errorf("no send was refused as unavailable while the database was down: %v", r.Errors)
	}
	for k := range r.Errors {
		if strings.HasSuffix(k, ": internal") {
			t.Errorf("the nodes answered Internal while the database restarted: %v", r.Errors)
			for _, n := range nodes {
				t.Logf("%s:\n%s", n.name, n.logLines("internal error"))
			}
			break
		}
	}
	for _, n := range nodes {
		if !n.healthy() {
			t.Errorf("%s is not healthy after the run:\n%s", n.name, n.logTail())
		}
	}
}
