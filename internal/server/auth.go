package server

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"connectrpc.com/connect"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/store"
)

// Authentication (docs/server.md §4). Both the challenge and the token are
// self-addressed: the server MACs them under a key in the store and keeps
// no per-challenge or per-token state, so any node sharing the store
// accepts them.
//
//	challenge = 0x01 || device id (16) || issued, unix s (8) || nonce (16) || MAC (32)
//	token     = base64url(0x01 || device id (16) || expires, unix s (8) || MAC (32))
//
// The device answers a challenge with its hybrid signature over it under
// LabelSigAuthChallenge; the signing key comes from its account's device
// list as the server stored it. A token is valid until it expires and only
// while the device is in its account's current list.
const (
	authVersion   = 1
	challengeSize = 1 + 16 + 8 + 16 + 32
	tokenSize     = 1 + 16 + 8 + 32
)

func (s *Server) newChallenge(id store.DeviceID) []byte {
	b := make([]byte, 0, challengeSize)
	b = append(b, authVersion)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(s.now().Unix()))
	var nonce [16]byte
	primitives.Random(nonce[:])
	b = append(b, nonce[:]...)
	mac := primitives.MAC(s.tokenKey, primitives.LabelAuthChallenge, b)
	return append(b, mac[:]...)
}

func (s *Server) checkChallenge(id store.DeviceID, c []byte) error {
	if len(c) != challengeSize || c[0] != authVersion || [16]byte(c[1:17]) != id {
		return errBadChallenge
	}
	mac := primitives.MAC(s.tokenKey, primitives.LabelAuthChallenge, c[:challengeSize-32])
	if !primitives.Equal(mac[:], c[challengeSize-32:]) {
		return errBadChallenge
	}
	issued := time.Unix(int64(binary.BigEndian.Uint64(c[17:25])), 0)
	if age := s.now().Sub(issued); age < -time.Minute || age > s.cfg.ChallengeTTL {
		return errBadChallenge
	}
	return nil
}

func (s *Server) newToken(id store.DeviceID) (string, time.Time) {
	exp := s.now().Add(s.cfg.TokenTTL).Truncate(time.Second)
	b := make([]byte, 0, tokenSize)
	b = append(b, authVersion)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(exp.Unix()))
	mac := primitives.MAC(s.tokenKey, primitives.LabelAuthToken, b)
	b = append(b, mac[:]...)
	return base64.RawURLEncoding.EncodeToString(b), exp
}

// authenticate resolves a bearer token to a current device: its id and
// account, without its keys (nodecache.go).
func (s *Server) authenticate(ctx context.Context, header string) (*store.Device, error) {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return nil, errUnauthenticated
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != tokenSize || b[0] != authVersion {
		return nil, errUnauthenticated
	}
	mac := primitives.MAC(s.tokenKey, primitives.LabelAuthToken, b[:tokenSize-32])
	if !primitives.Equal(mac[:], b[tokenSize-32:]) {
		return nil, errUnauthenticated
	}
	if exp := time.Unix(int64(binary.BigEndian.Uint64(b[17:25])), 0); !s.now().Before(exp) {
		return nil, errUnauthenticated
	}
	id := store.DeviceID(b[1:17])
	now := time.Now()
	if name, ok := s.cache.accountOf.get(id, now); ok {
		return &store.Device{ID: id, Username: name}, nil
	}
	d, err := s.store.Device(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Removed since the token was issued.
		return nil, errUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	s.cache.accountOf.put(id, d.Username, now)
	return &store.Device{ID: id, Username: d.Username}, nil
}

type authService struct{ s *Server }

func deviceID(b []byte) (store.DeviceID, error) {
	if len(b) != 16 {
		return store.DeviceID{}, badRequest("device id must be 16 bytes, got %d", len(b))
	}
	return store.DeviceID(b), nil
}

func (a *authService) Challenge(ctx context.Context, req *connect.Request[parleyv1.ChallengeRequest]) (*connect.Response[parleyv1.ChallengeResponse], error) {
	id, err := deviceID(req.Msg.DeviceId)
	if err != nil {
		return nil, err
	}
	// Issued whether or not the device exists, so that the answer does
	// not reveal which device ids are registered.
	return connect.NewResponse(&parleyv1.ChallengeResponse{Challenge: a.s.newChallenge(id)}), nil
}

func (a *authService) Authenticate(ctx context.Context, req *connect.Request[parleyv1.AuthenticateRequest]) (*connect.Response[parleyv1.AuthenticateResponse], error) {
	id, err := deviceID(req.Msg.DeviceId)
	if err != nil {
		return nil, err
	}
	if err := a.s.checkChallenge(id, req.Msg.Challenge); err != nil {
		return nil, err
	}
	d, err := a.s.store.Device(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnauthenticated
	} else if err != nil {
		return nil, err
	}
	pub, err := identity.ParseDevicePublic(d.Public)
	if err != nil {
		return nil, err
	}
	if err := pub.Signing.Verify(primitives.LabelSigAuthChallenge, req.Msg.Challenge, req.Msg.Signature); err != nil {
		return nil, errUnauthenticated
	}
	tok, exp := a.s.newToken(id)
	return connect.NewResponse(&parleyv1.AuthenticateResponse{Token: tok, ExpiresUnix: exp.Unix()}), nil
}
