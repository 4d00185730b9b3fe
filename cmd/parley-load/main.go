// Command parley-load drives parleyd with virtual devices and reports what
// it measured (docs/performance.md, "Load"):
//
//	parley-load run [flags] URL...    register devices, send, receive, ack; report
//	parley-load idle [flags] URL      hold idle delivery streams; report memory per stream
//
// It is wiring only: the work is in internal/loadgen.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/parleyim/parley/internal/ackbatch"
	"github.com/parleyim/parley/internal/loadgen"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the run failed, or lost acknowledged messages
	exitUsage = 2
)

const exitCodesHelp = `
Exit codes:
  0  the run completed and nothing acknowledged was lost
  1  error, or acknowledged messages were lost
  2  usage error (bad flags or arguments)
`

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "parley-load: error: %s\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "parley-load: hint: see '%s --help'\n", cmd.CommandPath())
		return exitUsage
	}
	return exitError
}

type app struct {
	stdout, stderr io.Writer
	json           bool
	progress       bool
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "parley-load",
		Short: "Load and measure parleyd",
		Long: `parley-load drives parleyd with virtual devices — real keys, registration,
authentication, sends, delivery streams and acks; envelopes of random bytes
in place of ciphertext — and reports throughput, end-to-end latency, errors
and the server's memory.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &usageError{fmt.Errorf("unknown command %q", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Usage()
			return &usageError{errors.New("no command given")}
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.SetUsageTemplate(root.UsageTemplate() + exitCodesHelp)
	pf := root.PersistentFlags()
	pf.BoolVar(&a.json, "json", false, "print the report as JSON")
	pf.BoolVar(&a.progress, "progress", false, "show progress on standard error even when it is not a terminal")
	root.AddCommand(a.runCommand(), a.idleCommand())
	return root
}

func (a *app) runCommand() *cobra.Command {
	var (
		cfg     loadgen.Config
		sources int
	)
	cmd := &cobra.Command{
		Use:   "run [flags] URL...",
		Short: "Register virtual devices, send and receive for a while, report",
		Long: `run registers --users accounts of --devices-per-user devices each, spread
round-robin over the server URLs, opens every device's delivery stream, and
for --duration sends messages to random other accounts, at --rate sends per
second in total or, with --rate 0, as fast as the servers answer. Every
envelope carries its message id and send time, so receivers de-duplicate and
measure latency from the start of the send to its first delivery. After the
send phase it waits for deliveries, then reads every queue to the end and
reports anything acknowledged that never arrived as lost.

The servers' rate limits count per device and per client IP address; with
--source-addrs N the devices' connections come from 127.0.0.2 ... so that
each address has its own per-IP budget (servers on loopback only).`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &usageError{errors.New("give at least one server URL")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.URLs = args
			if sources > 0 {
				cfg.SourceAddrs = loadgen.SourceAddrs(sources)
			}
			p := a.newProgress()
			cfg.Progress = func(pr loadgen.Progress) { p.show(pr.String()) }
			e, err := loadgen.New(cfg)
			if err != nil {
				return &usageError{errors.New(strings.TrimPrefix(err.Error(), "loadgen: "))}
			}
			defer e.Close()
			p.show(fmt.Sprintf("registering %d devices", cfg.Users*max(cfg.DevicesPerUser, 1)))
			r, err := e.Run(cmd.Context())
			p.done()
			if err != nil {
				return err
			}
			if err := a.print(r, r.WriteText); err != nil {
				return err
			}
			if r.Lost > 0 {
				return fmt.Errorf("%d acknowledged envelopes never reached their device", r.Lost)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Users, "users", 100, "virtual accounts")
	f.IntVar(&cfg.DevicesPerUser, "devices-per-user", 1, "devices of each account (a send goes to all of the recipient's and the sender's other ones)")
	f.Float64Var(&cfg.Rate, "rate", 0, "sends per second in total; 0 sends as fast as the servers answer, one send in flight per device")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of the send phase")
	f.IntVar(&cfg.EnvelopeSize, "size", loadgen.DefaultEnvelopeSize, "bytes per envelope, as stored by the server")
	f.IntVar(&cfg.Conns, "conns", 0, "HTTP/2 connections the devices share (default one per device)")
	f.BoolVar(&cfg.HTTP1, "http1", false, "speak HTTP/1.1 instead of HTTP/2: each device's stream holds one connection, its calls use another")
	f.IntVar(&sources, "source-addrs", 0, "dial from this many loopback addresses, 127.0.0.2 upwards (servers on loopback only)")
	f.IntVar(&cfg.AckBatch, "ack-batch", ackbatch.DefaultMax, "acknowledge after this many envelopes")
	f.DurationVar(&cfg.AckDelay, "ack-delay", ackbatch.DefaultDelay, "or this long after the oldest envelope not yet acknowledged")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", 30*time.Second, "how long to wait after the send phase for deliveries")
	f.IntVar(&cfg.SetupConcurrency, "setup-concurrency", 16, "accounts registered at once")
	return cmd
}

func (a *app) idleCommand() *cobra.Command {
	var (
		cfg     loadgen.IdleConfig
		sources int
	)
	cmd := &cobra.Command{
		Use:   "idle [flags] URL",
		Short: "Hold idle delivery streams open and report the server's memory per stream",
		Long: `idle registers --streams devices on one server, samples its memory, opens
every device's delivery stream (each reads its empty queue and then waits),
holds them for --hold, samples again, and reports the difference per stream
the server counts open: resident memory, Go heap in use, goroutines.

Streams are multiplexed over HTTP/2 connections (the server allows 250
concurrent streams per connection by default; the transports open as many
connections as that needs), dialled from --source-addrs loopback addresses.

Go's heap keeps garbage until its next collection; with --settle D each
sample first waits up to D for the server to finish one (an idle Go process
collects at least every two minutes, so --settle 150s always succeeds).`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{errors.New("give one server URL")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.URL = args[0]
			if sources > 0 {
				cfg.SourceAddrs = loadgen.SourceAddrs(sources)
			}
			p := a.newProgress()
			cfg.Progress = p.show
			r, err := loadgen.Idle(cmd.Context(), cfg)
			p.done()
			if err != nil {
				return err
			}
			return a.print(r, r.WriteText)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Streams, "streams", 1000, "idle delivery streams (one device each)")
	f.IntVar(&cfg.Conns, "conns", 0, "HTTP/2 transports (default one per source address)")
	f.IntVar(&sources, "source-addrs", 16, "dial from this many loopback addresses, 127.0.0.2 upwards (0: let the kernel choose)")
	f.IntVar(&cfg.SetupConcurrency, "setup-concurrency", 32, "registrations at once")
	f.IntVar(&cfg.OpenConcurrency, "open-concurrency", 256, "stream openings at once")
	f.DurationVar(&cfg.Hold, "hold", 5*time.Second, "how long to hold the streams before the second sample")
	f.DurationVar(&cfg.Settle, "settle", 0, "before each sample, wait up to this long for the server to finish a garbage collection")
	return cmd
}

// print writes v as JSON with --json, else as text.
func (a *app) print(v any, text func(io.Writer) error) error {
	if a.json {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return text(a.stdout)
}

// progressLine draws one line of progress on standard error: redrawn in
// place on a terminal, one line a second with --progress otherwise, and
// nothing at all in a script that did not ask for it.
type progressLine struct {
	mu       sync.Mutex
	w        io.Writer
	on, tty  bool
	drawn    bool
	lastSize int
}

func (a *app) newProgress() *progressLine {
	p := &progressLine{w: a.stderr, on: a.progress}
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.on, p.tty = true, true
	}
	return p
}

func (p *progressLine) show(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on {
		return
	}
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := max(p.lastSize-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.drawn, p.lastSize = true, len(line)
}

// done ends a line left open on a terminal.
func (p *progressLine) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
