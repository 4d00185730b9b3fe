package server

import (
	"context"
	"errors"
	"net"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/provision"
	"github.com/parleyim/parley/internal/store"
)

// The provisioning mailbox relay (docs/server.md §5.6, docs/protocol.md
// §9.7). A new device N uploads its offer (PutOffer) and reads frames
// (ReceiveFrames); an approving device E fetches the offer (GetOffer) and
// appends the transfer (PutFrame); N deletes the mailbox when it is done
// (CloseMailbox). The server never parses a frame and never trusts itself
// with anything: E checks the offer against the address the person typed,
// N checks every frame.
//
// Who may call what: N has no account and so no token; the 128-bit address
// is its capability, which is enough because everything it can read is
// sealed to its own HPKE key and everything it can do (upload an offer,
// read, delete) concerns only that mailbox. E is an authenticated device of
// some account: the write side of a mailbox and the offer fetch (the step
// a guesser would use) need a token.

var (
	errNoMailbox = errors.New("no mailbox at this address: unknown, closed or expired; start linking again on the new device")
	// errMailboxesUnavailable is the answer of every provisioning call when
	// the server's store does not implement store.Mailboxes.
	errMailboxesUnavailable = errors.New("device linking is not available on this server: its store keeps no provisioning mailboxes")
)

const (
	// framePage is how many frames a ReceiveFrames stream reads at once: a
	// frame is up to provision.MaxFrameSize (about 1 MiB), so this bounds
	// a stream's memory to a few MiB.
	framePage = 4
	// ipLimitMailbox names the per-IP mailbox limit in RateLimited details.
	ipLimitMailbox = "mailbox"
)

// provisioning is the server's mailbox state, made by New.
type provisioning struct {
	// mb is the store seen as store.Mailboxes, or nil when it is not one:
	// then every provisioning call is Unimplemented.
	mb store.Mailboxes
	// limits is the per-IP limit on creating mailboxes and on looking up
	// addresses that hold none (MailboxIPRate, MailboxIPBurst).
	limits *limiterSet
}

func newProvisioning(cfg Config, st store.Store) provisioning {
	mb, _ := st.(store.Mailboxes)
	return provisioning{mb: mb, limits: newLimiterSet(cfg.MailboxIPRate, cfg.MailboxIPBurst)}
}

type provisioningService struct{ s *Server }

// wakeKey is the bus key that wakes the readers of a mailbox: the address
// itself, so mailbox wake-ups share the bus (and, with NATS, reach every
// node). Addresses and device ids are both 128-bit hash outputs, so they
// meet only by a second preimage; and a collision would cost one spurious
// wake-up, never a message. It is not part of the protocol.
func wakeKey(a store.MailboxAddress) store.DeviceID { return store.DeviceID(a) }

// sweptKey is notified after an expiry sweep deleted mailboxes: every
// waiting ReceiveFrames re-reads its mailbox, so that a stream of an
// expired mailbox ends at the sweep, on whichever node it runs. All ones is
// not a hash output anyone can aim at.
var sweptKey = store.DeviceID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func mailboxAddress(b []byte) (store.MailboxAddress, error) {
	if len(b) != provision.AddressSize {
		return store.MailboxAddress{}, badRequest("mailbox address must be %d bytes, got %d", provision.AddressSize, len(b))
	}
	return store.MailboxAddress(b), nil
}

// peerHost is the client IP address of a peer "host:port".
func peerHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// mailboxes returns the store's mailboxes, or errMailboxesUnavailable.
func (p *provisioningService) mailboxes() (store.Mailboxes, error) {
	if p.s.prov.mb == nil {
		return nil, errMailboxesUnavailable
	}
	return p.s.prov.mb, nil
}

// charge takes one token of peer's mailbox limit, or says when to retry.
func (p *provisioningService) charge(peer string) error {
	if d := p.s.prov.limits.wait(peerHost(peer), p.s.now()); d > 0 {
		p.s.metrics.limited.WithLabelValues(ipLimitMailbox).Inc()
		return &rateLimited{limit: ipLimitMailbox, after: d}
	}
	return nil
}

// live returns a mailbox that exists and has not expired (it lives while
// now ≤ Expires, as envelopes do), or errNoMailbox. A miss costs the peer
// a token of its mailbox limit, which bounds how fast one address can
// probe for mailboxes (on top of the 2^128 guesses it would need).
func (p *provisioningService) live(ctx context.Context, mb store.Mailboxes, a store.MailboxAddress, peer string) (*store.Mailbox, error) {
	m, err := mb.Mailbox(ctx, a)
	if err == nil && p.s.now().After(m.Expires) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		if err := p.charge(peer); err != nil {
			return nil, err
		}
		return nil, errNoMailbox
	}
	return m, err
}

// noMailbox turns the store's ErrNotFound (the mailbox went away during the
// call) into errNoMailbox.
func noMailbox(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNoMailbox
	}
	return err
}

// PutOffer creates the mailbox of a new device's offer. Unauthenticated,
// limited per IP. The offer must parse (provision.ParseOffer, strictly);
// the server does not check its age — E does (VerifyOffer) — nor anything
// else about it, which E checks against the address.
func (p *provisioningService) PutOffer(ctx context.Context, req *connect.Request[parleyv1.PutOfferRequest]) (*connect.Response[parleyv1.PutOfferResponse], error) {
	s := p.s
	mb, err := p.mailboxes()
	if err != nil {
		return nil, err
	}
	if err := p.charge(req.Peer().Addr); err != nil {
		return nil, err
	}
	o, err := provision.ParseOffer(req.Msg.Offer)
	if err != nil {
		return nil, err
	}
	a := store.MailboxAddress(o.Address())
	now := s.now()
	expires := now.Add(s.cfg.MailboxTTL)
	// The address is the offer's hash, so ErrMailboxExists means this very
	// offer is stored: an upload retried after a lost answer gets
	// AlreadyExists, which the new device may take as success.
	if err := mb.CreateMailbox(ctx, a, req.Msg.Offer, now, expires); err != nil {
		return nil, err
	}
	return connect.NewResponse(&parleyv1.PutOfferResponse{Address: a[:], ExpiresUnix: expires.Unix()}), nil
}

// GetOffer returns the offer in a mailbox, for the approving device.
// Authenticated: a device of any account.
func (p *provisioningService) GetOffer(ctx context.Context, req *connect.Request[parleyv1.GetOfferRequest]) (*connect.Response[parleyv1.GetOfferResponse], error) {
	mb, err := p.mailboxes()
	if err != nil {
		return nil, err
	}
	a, err := mailboxAddress(req.Msg.Address)
	if err != nil {
		return nil, err
	}
	m, err := p.live(ctx, mb, a, req.Peer().Addr)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&parleyv1.GetOfferResponse{Offer: m.Offer}), nil
}

// PutFrame appends the next frame. Authenticated. The frame is opaque (it
// is sealed to the new device, which checks it); the server enforces only
// its size, the index order and the mailbox's total size. Each frame moves
// the mailbox's expiry to MailboxIdleTTL from now.
func (p *provisioningService) PutFrame(ctx context.Context, req *connect.Request[parleyv1.PutFrameRequest]) (*connect.Response[parleyv1.PutFrameResponse], error) {
	s, m := p.s, req.Msg
	mb, err := p.mailboxes()
	if err != nil {
		return nil, err
	}
	a, err := mailboxAddress(m.Address)
	if err != nil {
		return nil, err
	}
	switch {
	case len(m.Frame) == 0:
		return nil, badRequest("empty frame")
	case len(m.Frame) > provision.MaxFrameSize:
		return nil, badRequest("frame of %d bytes exceeds the limit of %d bytes (provision.MaxFrameSize)", len(m.Frame), provision.MaxFrameSize)
	}
	if _, err := p.live(ctx, mb, a, req.Peer().Addr); err != nil {
		return nil, err
	}
	if err := mb.AppendFrame(ctx, a, m.Index, m.Frame, s.cfg.MaxMailboxBytes, s.now().Add(s.cfg.MailboxIdleTTL)); err != nil {
		return nil, noMailbox(err)
	}
	// A lost notification costs only latency: the mailbox is the truth.
	_ = s.bus.Notify(ctx, wakeKey(a), 0)
	return connect.NewResponse(&parleyv1.PutFrameResponse{}), nil
}

// CloseMailbox deletes a mailbox and its frames. Unauthenticated (the
// address is the capability) and idempotent: closing a mailbox that is
// gone succeeds, so the answer says nothing about whether it existed.
// Streams of the mailbox end with NotFound.
func (p *provisioningService) CloseMailbox(ctx context.Context, req *connect.Request[parleyv1.CloseMailboxRequest]) (*connect.Response[parleyv1.CloseMailboxResponse], error) {
	mb, err := p.mailboxes()
	if err != nil {
		return nil, err
	}
	a, err := mailboxAddress(req.Msg.Address)
	if err != nil {
		return nil, err
	}
	if err := mb.DeleteMailbox(ctx, a); err != nil {
		return nil, err
	}
	_ = p.s.bus.Notify(ctx, wakeKey(a), 0)
	return connect.NewResponse(&parleyv1.CloseMailboxResponse{}), nil
}

// ReceiveFrames streams a mailbox's frames from index From in order, then
// waits for more. Unauthenticated: the new device has no token, and the
// frames are sealed to it. It ends with NotFound when the mailbox is
// closed or expires, with Unavailable when the server shuts down.
//
// Frames are read by index, not consumed: a reader that reconnects asks
// for frames from the next index it needs, so Receiver.Open never sees a
// frame twice, and any number of readers may follow one mailbox.
func (p *provisioningService) ReceiveFrames(ctx context.Context, req *connect.Request[parleyv1.ReceiveFramesRequest], stream *connect.ServerStream[parleyv1.ReceiveFramesResponse]) error {
	s := p.s
	mb, err := p.mailboxes()
	if err != nil {
		return err
	}
	a, err := mailboxAddress(req.Msg.Address)
	if err != nil {
		return err
	}
	s.streams.Add(1)
	defer s.streams.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.streamsCtx, cancel)
	defer stop()

	// Subscribe before the first read, so that a frame appended between
	// the read and the wait still wakes us.
	wake, unsubscribe := s.bus.Subscribe(wakeKey(a))
	defer unsubscribe()
	swept, unsubscribeSwept := s.bus.Subscribe(sweptKey)
	defer unsubscribeSwept()

	if _, err := p.live(ctx, mb, a, req.Peer().Addr); err != nil {
		return p.streamEnd(err)
	}
	// Send the response headers now: the new device typically opens the
	// stream before any frame exists, and its call must not wait for one.
	if err := stream.Send(nil); err != nil {
		return p.streamEnd(err)
	}
	next := req.Msg.From
	for {
		// Read the mailbox first: it may have expired while we waited, and
		// its Expires (extended by each frame) bounds the wait below.
		m, err := mb.Mailbox(ctx, a)
		if err == nil && s.now().After(m.Expires) {
			err = errNoMailbox
		}
		if err != nil {
			return p.streamEnd(noMailbox(err))
		}
		for {
			frames, err := mb.Frames(ctx, a, next, framePage)
			if err != nil {
				return p.streamEnd(noMailbox(err))
			}
			for _, f := range frames {
				if err := stream.Send(&parleyv1.ReceiveFramesResponse{Index: next, Frame: f}); err != nil {
					return p.streamEnd(err)
				}
				next++
			}
			if len(frames) < framePage {
				break
			}
		}
		// Wake for a new frame or a close (wake), an expiry sweep (swept),
		// or the mailbox's own expiry if no sweep runs before it.
		timer := time.NewTimer(m.Expires.Sub(s.now()) + time.Millisecond)
		select {
		case <-wake:
		case <-swept:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return p.streamEnd(ctx.Err())
		}
		timer.Stop()
	}
}

// streamEnd reports why a frame stream ended: shutdown is Unavailable
// (reconnect shortly, from the next index), anything else as it is.
func (p *provisioningService) streamEnd(err error) error {
	if p.s.streamsCtx.Err() != nil {
		return errShuttingDown
	}
	return err
}

// expireMailboxes deletes expired mailboxes (RunExpiry calls it each tick)
// and, if it deleted any, wakes the waiting frame streams so that those of
// the deleted mailboxes end now.
func (s *Server) expireMailboxes(ctx context.Context) {
	if s.prov.mb == nil {
		return
	}
	n, err := s.prov.mb.ExpireMailboxes(ctx, s.now())
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("expiring provisioning mailboxes", "err", err)
	}
	if n > 0 {
		s.log.Info("expired provisioning mailboxes", "count", n)
		_ = s.bus.Notify(ctx, sweptKey, 0)
	}
}
