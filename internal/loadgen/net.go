package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/gen/parley/v1/parleyv1connect"
)

// Connections. The engine opens a fixed number of HTTP/2 transports; each
// virtual device uses one of them (device i transport i mod n), so several
// devices multiplex their calls and streams over one TCP connection, as
// they would behind a proxy, or each has its own, as separate phones do.
// Each transport dials from one loopback source address (transport j from
// address j mod len(addrs)): every (source address, source port) pair is
// one connection, so spreading them over 127.0.0.2, 127.0.0.3, ... lifts
// the ~28,000 ephemeral ports of one address as a limit, and gives the
// server's per-IP rate limit one bucket per address.
//
// A transport opens more than one connection to a node when the node's
// limit on concurrent streams per connection (Go's HTTP/2 server: 250 by
// default) is reached.

const (
	dialTimeout = 10 * time.Second
	// pingTimeout: a connection whose peer has not answered a PING for
	// this long is closed, so that a stream to a frozen node ends.
	pingTimeout = 5 * time.Second
	pingIdle    = 10 * time.Second
)

// SourceAddrs returns n loopback addresses from 127.0.0.2 upwards, for
// Config.SourceAddrs.
func SourceAddrs(n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	a := netip.MustParseAddr("127.0.0.2")
	for range n {
		out = append(out, a)
		a = a.Next()
	}
	return out
}

// checkURLs normalises the server URLs and, when source addresses are
// given, checks that every server is on loopback (a loopback source cannot
// reach anything else).
func checkURLs(urls []string, sources []netip.Addr) ([]string, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("loadgen: no server URL")
	}
	out := make([]string, len(urls))
	for i, raw := range urls {
		u, err := url.Parse(strings.TrimRight(raw, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("loadgen: server URL %q: want http://host:port or https://host:port", raw)
		}
		if len(sources) > 0 && !loopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("loadgen: source addresses are loopback addresses; server %q is not on loopback", raw)
		}
		out[i] = u.String()
	}
	for _, s := range sources {
		if !s.IsLoopback() {
			return nil, fmt.Errorf("loadgen: source address %s is not a loopback address", s)
		}
	}
	return out, nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// conn is one HTTP/2 transport and the API clients on it, one set per
// server URL.
type conn struct {
	hc    *http.Client
	tr    *http.Transport
	nodes []nodeClients // by URL index
}

type nodeClients struct {
	auth  parleyv1connect.AuthServiceClient
	dir   parleyv1connect.DirectoryServiceClient
	relay parleyv1connect.RelayServiceClient
}

// newConn builds a transport dialing from src (the zero Addr: the kernel
// chooses), speaking HTTP/2 only: over TLS to https:// URLs, and with
// prior knowledge (h2c) to http:// ones, which parleyd serves on loopback.
// With http1 it speaks HTTP/1.1 only, keeping a few idle connections for
// the calls beside the ones streams hold. dials counts the TCP connections
// it opens.
func newConn(urls []string, src netip.Addr, dials *atomic.Int64, http1 bool) *conn {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				dials.Add(1)
			}
			return c, err
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     5 * time.Minute,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: pingIdle,
			PingTimeout:     pingTimeout,
		},
	}
	tr.Protocols = new(http.Protocols)
	if http1 {
		tr.Protocols.SetHTTP1(true)
		tr.MaxIdleConnsPerHost = http1IdleConns
	} else {
		tr.Protocols.SetHTTP2(true)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	c := &conn{hc: &http.Client{Transport: tr}, tr: tr, nodes: make([]nodeClients, len(urls))}
	for i, u := range urls {
		c.nodes[i] = nodeClients{
			auth:  parleyv1connect.NewAuthServiceClient(c.hc, u),
			dir:   parleyv1connect.NewDirectoryServiceClient(c.hc, u),
			relay: parleyv1connect.NewRelayServiceClient(c.hc, u),
		}
	}
	return c
}

// http1IdleConns is how many idle HTTP/1.1 connections a transport keeps
// per server: a device's send and its acks may be in flight at once.
const http1IdleConns = 4

// newConns builds n transports over the source addresses.
func newConns(n int, urls []string, sources []netip.Addr, dials *atomic.Int64, http1 bool) []*conn {
	cs := make([]*conn, n)
	for j := range cs {
		var src netip.Addr
		if len(sources) > 0 {
			src = sources[j%len(sources)]
		}
		cs[j] = newConn(urls, src, dials, http1)
	}
	return cs
}

func closeConns(cs []*conn) {
	for _, c := range cs {
		c.tr.CloseIdleConnections()
	}
}
