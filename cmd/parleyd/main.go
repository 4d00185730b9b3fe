// Command parleyd is the Parley server (docs/server.md).
//
//	parleyd [flags]            run the server
//	parleyd invite [flags]     create an invite token (for --registration invite)
//
// Every flag has a PARLEYD_* environment equivalent (flag --max-queue is
// PARLEYD_MAX_QUEUE); a flag on the command line wins. With no flags at all
// parleyd serves plain HTTP on 127.0.0.1:8080 from an embedded SQLite
// database in ./parleyd-data.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/time/rate"

	"github.com/nats-io/nats.go"

	"github.com/parleyim/parley/internal/bus"
	"github.com/parleyim/parley/internal/bus/mem"
	natsbus "github.com/parleyim/parley/internal/bus/nats"
	"github.com/parleyim/parley/internal/server"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/store/postgres"
	"github.com/parleyim/parley/internal/store/sqlite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// exit codes
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "invite" {
		return runInvite(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	} else if err != nil {
		return exitUsage
	}
	if err := serve(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "parleyd: error: %v\n", err)
		var h *hinted
		if errors.As(err, &h) {
			fmt.Fprintf(stderr, "parleyd: hint: %s\n", h.hint)
		}
		return exitError
	}
	return exitOK
}

// hinted is an error with advice for the operator.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

type config struct {
	data         string
	listen       string
	tlsCert      string
	tlsKey       string
	acmeDomain   string
	acmeEmail    string
	logLevel     string
	registration string
	server       server.Config
	debugListen  string // net/http/pprof, loopback only; empty: off
	readyFile    string // test hook: write the listen URL here once serving
	postgres     string // DSN; empty for SQLite in data
	nats         string // URL; empty for the in-process bus
}

// envFlags makes every flag's default come from its PARLEYD_* variable.
func envFlags(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "PARLEYD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := f.Value.Set(v); serr != nil && err == nil {
				err = fmt.Errorf("%s=%q: %v", name, v, serr)
			}
			f.DefValue = v
		}
	})
	return err
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{server: server.DefaultConfig()}
	sc := &cfg.server
	fs := flag.NewFlagSet("parleyd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.data, "data", "parleyd-data", "directory of the server's database (created if missing)")
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address to listen on; plain HTTP only on a loopback address")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fs.StringVar(&cfg.acmeDomain, "acme-domain", "", "obtain a certificate for this domain from Let's Encrypt (listen on :443)")
	fs.StringVar(&cfg.acmeEmail, "acme-email", "", "contact address for the ACME account")
	fs.StringVar(&cfg.postgres, "postgres", "", "PostgreSQL DSN; keeps state there instead of SQLite in --data (for several nodes)")
	fs.StringVar(&cfg.nats, "nats", "", "NATS server URL(s); wakes delivery streams across several nodes")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.registration, "registration", "open", "who may register: open, invite or closed")
	fs.DurationVar(&sc.MessageTTL, "message-ttl", sc.MessageTTL, "how long an undelivered envelope is kept")
	fs.IntVar(&sc.MaxQueue, "max-queue", sc.MaxQueue, "envelopes per device queue")
	fs.IntVar(&sc.MaxEnvelopeSize, "max-envelope-size", sc.MaxEnvelopeSize, "bytes per envelope")
	fs.IntVar(&sc.MaxPrekeysPerUpload, "max-prekeys-per-upload", sc.MaxPrekeysPerUpload, "one-time prekeys of each kind per upload")
	fs.DurationVar(&sc.TokenTTL, "token-ttl", sc.TokenTTL, "lifetime of an authentication token")
	fs.Int64Var(&sc.MaxBackupSize, "max-backup-size", sc.MaxBackupSize, "bytes of one encrypted backup")
	fs.IntVar(&sc.BackupGenerations, "backup-generations", sc.BackupGenerations, "backup generations kept per recovery key")
	deviceRate := fs.Float64("device-rate", float64(sc.DeviceRate), "requests per second per device (sustained)")
	fs.IntVar(&sc.DeviceBurst, "device-burst", sc.DeviceBurst, "requests per device in a burst")
	ipRate := fs.Float64("ip-rate", float64(sc.IPRate), "requests per second per client IP address (sustained)")
	fs.IntVar(&sc.IPBurst, "ip-burst", sc.IPBurst, "requests per client IP address in a burst")
	fs.StringVar(&sc.KTOrigin, "kt-origin", "", "key-transparency checkpoint origin, e.g. chat.example.com/kt (default: <acme-domain>/kt, else "+server.DefaultKTOrigin+"); never change it once clients use the server")
	fs.DurationVar(&sc.KTEpochInterval, "kt-epoch-interval", sc.KTEpochInterval, "how often the key-transparency sequencer makes an epoch of the pending device lists")
	fs.DurationVar(&sc.KTMaxEpochAge, "kt-max-epoch-age", sc.KTMaxEpochAge, "publish an empty epoch when the newest is this old (at most 12h)")
	witnesses := &witnessFlag{}
	fs.Var(witnesses, "kt-witness", "a witness as \"VKEY URL\" (its cosignature/v1 note verifier key and tlog-witness URL prefix); repeat for several, or separate with ';' in PARLEYD_KT_WITNESS")
	fs.IntVar(&sc.KTWitnessThreshold, "kt-witness-threshold", sc.KTWitnessThreshold, "how many witnesses must cosign a checkpoint before it is served (-1: all)")
	fs.DurationVar(&sc.KTWitnessTimeout, "kt-witness-timeout", sc.KTWitnessTimeout, "how long one checkpoint submission to one witness may take")
	ktRate := fs.Float64("kt-ip-rate", float64(sc.KTIPRate), "key-transparency requests per second per client IP address (sustained)")
	fs.IntVar(&sc.KTIPBurst, "kt-ip-burst", sc.KTIPBurst, "key-transparency requests per client IP address in a burst")
	fs.IntVar(&sc.KTVRFCacheEntries, "kt-vrf-cache", sc.KTVRFCacheEntries, "VRF proofs of key-transparency searches kept for reuse, about 300 bytes each (0: none)")
	fs.DurationVar(&sc.NodeCacheTTL, "node-cache-ttl", sc.NodeCacheTTL, "how long a node trusts a device or device list it read before reading it again; other nodes see a removed device at most this late (0: read on every call)")
	fs.StringVar(&cfg.debugListen, "debug-listen", "", "serve Go profiles (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060; off when empty")
	fs.StringVar(&cfg.readyFile, "ready-file", "", "write the server URL to this file once listening (for scripts)")
	if err := envFlags(fs); err != nil {
		fmt.Fprintf(stderr, "parleyd: error: %v\n", err)
		return nil, err
	}
	witnesses.fromEnv = len(witnesses.ws) > 0
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "parleyd: error: unexpected argument %q\n", fs.Arg(0))
		return nil, errors.New("usage")
	}
	sc.DeviceRate, sc.IPRate, sc.KTIPRate = rate.Limit(*deviceRate), rate.Limit(*ipRate), rate.Limit(*ktRate)
	sc.KTWitnesses = witnesses.ws
	if sc.KTOrigin == "" {
		sc.KTOrigin = server.DefaultKTOrigin
		if cfg.acmeDomain != "" {
			sc.KTOrigin = cfg.acmeDomain + "/kt"
		}
	}
	mode, err := server.ParseRegistrationMode(cfg.registration)
	if err != nil {
		fmt.Fprintf(stderr, "parleyd: error: %v\n", err)
		return nil, err
	}
	sc.Registration = mode
	return cfg, nil
}

// witnessFlag collects --kt-witness values. Values from PARLEYD_KT_WITNESS
// are replaced, not extended, by witnesses given on the command line.
type witnessFlag struct {
	ws      []server.Witness
	fromEnv bool
}

func (w *witnessFlag) String() string {
	var parts []string
	for _, x := range w.ws {
		parts = append(parts, x.VKey+" "+x.URL)
	}
	return strings.Join(parts, ";")
}

func (w *witnessFlag) Set(v string) error {
	if w.fromEnv {
		w.ws, w.fromEnv = nil, false
	}
	for part := range strings.SplitSeq(v, ";") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return fmt.Errorf("want \"VKEY URL\", got %q", part)
		}
		w.ws = append(w.ws, server.Witness{VKey: f[0], URL: f[1]})
	}
	return nil
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func serve(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	log, err := newLogger(cfg.logLevel, stderr)
	if err != nil {
		return err
	}
	cfg.server.Logger = log

	var tlsConfig *tls.Config
	switch {
	case cfg.acmeDomain != "":
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			HostPolicy: autocert.HostWhitelist(cfg.acmeDomain),
			Cache:      autocert.DirCache(filepath.Join(cfg.data, "acme")),
			Email:      cfg.acmeEmail,
		}
		tlsConfig = m.TLSConfig()
		if cfg.listen == "127.0.0.1:8080" {
			cfg.listen = ":443"
		}
	case cfg.tlsCert != "" || cfg.tlsKey != "":
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			return &hinted{fmt.Errorf("loading the TLS certificate: %w", err), "pass both --tls-cert and --tls-key, PEM encoded"}
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	case !isLoopback(cfg.listen):
		return &hinted{fmt.Errorf("refusing plain HTTP on %s, which is not a loopback address", cfg.listen),
			"give --tls-cert and --tls-key, or --acme-domain, or listen on 127.0.0.1"}
	}

	if cfg.debugListen != "" && !isLoopback(cfg.debugListen) {
		return &hinted{fmt.Errorf("refusing to serve profiles on %s, which is not a loopback address", cfg.debugListen),
			"profiles show the server's internals: give --debug-listen a loopback address such as 127.0.0.1:6060 and reach it over SSH"}
	}

	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	st, where, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	b, err := openBus(cfg)
	if err != nil {
		st.Close()
		return err
	}
	srv, err := server.New(cfg.server, st, b)
	if err != nil {
		st.Close()
		b.Close()
		return err
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		st.Close()
		b.Close()
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
		hs.TLSConfig = tlsConfig
	} else {
		// HTTP/2 without TLS, on loopback only, so that delivery streams
		// multiplex as they do in production.
		hs.Protocols = new(http.Protocols)
		hs.Protocols.SetHTTP1(true)
		hs.Protocols.SetUnencryptedHTTP2(true)
	}
	url := fmt.Sprintf("%s://%s", scheme, ln.Addr())
	fmt.Fprintf(stdout, "parleyd: listening on %s\nparleyd: data in %s\nparleyd: registration is %s\n", url, where, cfg.server.Registration)
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte(url), 0o600); err != nil {
			return err
		}
	}

	if cfg.debugListen != "" {
		stopDebug, err := serveProfiles(cfg.debugListen, stdout, log)
		if err != nil {
			ln.Close()
			st.Close()
			b.Close()
			return err
		}
		defer stopDebug()
	}

	expiryCtx, stopExpiry := context.WithCancel(context.Background())
	go srv.RunExpiry(expiryCtx, time.Minute)
	// Every node runs the key-transparency loop; one at a time sequences.
	ktCtx, stopKT := context.WithCancel(context.Background())
	ktDone := make(chan struct{})
	go func() {
		defer close(ktDone)
		srv.RunTransparency(ktCtx)
	}()

	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-errc:
	}

	// Graceful shutdown: end delivery streams (clients reconnect), let
	// in-flight calls finish, then close the store, which commits what is
	// queued for it.
	stopExpiry()
	stopKT()
	<-ktDone
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("ending streams", "err", err)
	}
	if err := hs.Shutdown(shutCtx); err != nil {
		log.Warn("draining requests", "err", err)
	}
	if err := st.Close(); err != nil && serveErr == nil {
		serveErr = err
	}
	_ = b.Close()
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return serveErr
}

// openStore opens PostgreSQL when a DSN is set, else SQLite in the data
// directory, and says where the data is (never the DSN: it may hold a
// password).
func openStore(ctx context.Context, cfg *config) (store.Store, string, error) {
	if cfg.postgres != "" {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		st, err := postgres.Open(octx, cfg.postgres)
		if err != nil {
			return nil, "", &hinted{err, "check --postgres (PARLEYD_POSTGRES) and that the database accepts connections"}
		}
		return st, "PostgreSQL (--postgres)", nil
	}
	path := filepath.Join(cfg.data, "parleyd.db")
	st, err := sqlite.Open(path)
	if err != nil {
		return nil, "", err
	}
	abs, _ := filepath.Abs(path)
	return st, abs + " (SQLite)", nil
}

// openBus connects to NATS when a URL is set (several nodes), else uses the
// in-process bus.
func openBus(cfg *config) (bus.Bus, error) {
	if cfg.nats == "" {
		return mem.New(), nil
	}
	b, err := natsbus.Connect(cfg.nats, nats.Name("parleyd"))
	if err != nil {
		return nil, &hinted{err, "check --nats (PARLEYD_NATS) and that the NATS server is running"}
	}
	return b, nil
}

func runInvite(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("parleyd invite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "parleyd-data", "directory of the server's database")
	expires := fs.Duration("expires", 7*24*time.Hour, "how long the invite is valid")
	if err := envFlags(fs); err != nil {
		fmt.Fprintf(stderr, "parleyd: error: %v\n", err)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		fmt.Fprintf(stderr, "parleyd: error: %v\n", err)
		return exitError
	}
	st, err := sqlite.Open(filepath.Join(*data, "parleyd.db"))
	if err != nil {
		fmt.Fprintf(stderr, "parleyd: error: %v\n", err)
		return exitError
	}
	defer st.Close()
	token := server.NewInviteToken()
	if err := st.CreateInvite(ctx, server.InviteHash(token), time.Now().Add(*expires)); err != nil {
		fmt.Fprintf(stderr, "parleyd: error: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, token)
	return exitOK
}

// serveProfiles serves net/http/pprof's handlers on addr (a loopback
// address, checked by the caller) until the returned function is called.
func serveProfiles(addr string, stdout io.Writer, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "parleyd: profiles on http://%s/debug/pprof/\n", ln.Addr())
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("profile server", "err", err)
		}
	}()
	return func() { _ = hs.Close() }, nil
}
