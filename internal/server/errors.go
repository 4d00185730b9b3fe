package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	parleyv1 "github.com/parleyim/parley/gen/parley/v1"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/store"
	"github.com/parleyim/parley/internal/username"
	"github.com/parleyim/parley/internal/wire"
)

// Errors the server itself raises. Each maps to one Connect code in
// toConnect; docs/server.md §6 is the table clients rely on.
var (
	errUnauthenticated  = errors.New("missing or invalid token; authenticate again")
	errBadChallenge     = errors.New("challenge is invalid or expired; request a new one")
	errRegistrationOff  = errors.New("registration is closed on this server")
	errInviteRequired   = errors.New("registration needs an invite on this server")
	errShuttingDown     = errors.New("server is shutting down; reconnect shortly")
	errStreamDisplaced  = errors.New("a newer delivery stream for this device replaced this one")
	errNotYourAccount   = errors.New("a device may change only its own account")
	errDeviceRemoved    = errors.New("this device was removed from its account")
	errTooManyEnvelopes = errors.New("too many envelopes in one send")
)

// invalidArgument is a request the client built wrong.
type invalidArgument struct{ msg string }

func (e *invalidArgument) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &invalidArgument{msg: fmt.Sprintf(format, args...)}
}

// rateLimited is a refused call with its retry delay.
type rateLimited struct {
	limit string
	after time.Duration
}

func (e *rateLimited) Error() string {
	return fmt.Sprintf("rate limit (%s) exceeded; retry after %s", e.limit, e.after.Round(time.Millisecond))
}

// mismatch is a send whose envelopes do not match the device lists.
type mismatch struct {
	missing, extra, stale []store.DeviceID
}

func (e *mismatch) Error() string {
	return fmt.Sprintf("envelopes do not match the current devices (%d missing, %d extra, %d stale); refresh the device lists and retry",
		len(e.missing), len(e.extra), len(e.stale))
}

func ids(in []store.DeviceID) [][]byte {
	out := make([][]byte, len(in))
	for i := range in {
		out[i] = append([]byte(nil), in[i][:]...)
	}
	return out
}

// toConnect maps an error to the Connect error clients see. Errors it does
// not know are internal: logged in full, reported without detail.
func (s *Server) toConnect(ctx context.Context, procedure string, err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	var (
		inv *invalidArgument
		rl  *rateLimited
		mm  *mismatch
		qf  *store.QueueFullError
		ud  *store.UnknownDeviceError
		fi  *store.FrameIndexError
		mf  *store.MailboxFullError
		bt  *store.BackupTooLargeError
		bc  *store.BackupChunkCountError

		behind *ktBehind
	)
	switch {
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	case errors.As(err, &inv),
		errors.Is(err, wire.ErrMalformed),
		errors.Is(err, wire.ErrUnsupportedVersion),
		errors.Is(err, username.ErrInvalid),
		errors.Is(err, identity.ErrSecurity),
		errors.Is(err, prekey.ErrBadSignature),
		errors.Is(err, errTooManyEnvelopes):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, errUnauthenticated), errors.Is(err, errBadChallenge):
		return connect.NewError(connect.CodeUnauthenticated, err)
	case errors.Is(err, errRegistrationOff), errors.Is(err, errInviteRequired),
		errors.Is(err, store.ErrInviteInvalid), errors.Is(err, errNotYourAccount), errors.Is(err, errDeviceRemoved),
		errors.Is(err, errAccountDeleted):
		return connect.NewError(connect.CodePermissionDenied, err)
	case errors.Is(err, errDeviceCurrent):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, errNoMailbox):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, store.ErrMailboxExists):
		return connect.NewError(connect.CodeAlreadyExists,
			errors.New("a mailbox for this offer exists already (a retried upload of the same offer succeeded before)"))
	case errors.As(err, &fi):
		if fi.Conflict {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
				"frame %d is already in the mailbox with different content (another device is sending to it); the mailbox expects index %d", fi.Index, fi.Next))
		}
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"frame at index %d is out of order; the mailbox expects index %d", fi.Index, fi.Next))
	case errors.As(err, &mf):
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"the mailbox is full: its frames may total at most %d bytes (MaxMailboxBytes); the transfer is too large for this server", mf.Limit))
	case errors.As(err, &bt):
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"the backup is too large: a backup may total at most %d bytes on this server (MaxBackupSize)", bt.Limit))
	case errors.As(err, &bc):
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"the backup upload holds %d chunks, not the %d the commit names; upload the missing chunks and commit again", bc.Stored, bc.Want))
	case errors.Is(err, store.ErrBackupForbidden):
		return connect.NewError(connect.CodePermissionDenied, errors.New(
			"the backups under this locator were stored with another write token; this recovery key's backups cannot be replaced or deleted by this request"))
	case errors.Is(err, errNoBackup):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, errBackupsUnavailable):
		return connect.NewError(connect.CodeUnimplemented, err)
	case errors.Is(err, errMailboxesUnavailable):
		return connect.NewError(connect.CodeUnimplemented, err)
	case errors.Is(err, store.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, store.ErrUsernameInLog):
		return connect.NewError(connect.CodeAlreadyExists, errors.New(
			"this username belonged to a deleted account and stays reserved: its device lists are in the key-transparency log for good; choose another"))
	case errors.Is(err, errKTUnavailable), errors.As(err, &behind):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, errKTOff):
		return connect.NewError(connect.CodeUnimplemented, err)
	case errors.Is(err, store.ErrAccountExists):
		return connect.NewError(connect.CodeAlreadyExists, errors.New("this username is taken; choose another"))
	case errors.Is(err, store.ErrDeviceExists):
		return connect.NewError(connect.CodeAlreadyExists, errors.New("this device is already registered"))
	case errors.Is(err, store.ErrVersionConflict):
		return connect.NewError(connect.CodeAborted, err)
	case errors.Is(err, errShuttingDown), errors.Is(err, store.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, errStreamDisplaced):
		return connect.NewError(connect.CodeAborted, err)
	case errors.As(err, &rl):
		return withRetry(connect.NewError(connect.CodeResourceExhausted, err), rl.limit, rl.after)
	case errors.As(err, &qf):
		return withRetry(connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("the recipient's queue is full (%d envelopes); retry later", qf.Limit)), "queue", time.Minute)
	case errors.As(err, &mm):
		return withDetail(connect.NewError(connect.CodeFailedPrecondition, err),
			&parleyv1.MismatchedDevices{Missing: ids(mm.missing), Extra: ids(mm.extra), Stale: ids(mm.stale)})
	case errors.As(err, &ud):
		// A device was removed between the check and the insert.
		return withDetail(connect.NewError(connect.CodeFailedPrecondition,
			errors.New("a recipient device was removed; refresh the device lists and retry")),
			&parleyv1.MismatchedDevices{Stale: ids(ud.Devices)})
	}
	s.log.ErrorContext(ctx, "internal error", "procedure", procedure, "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal server error"))
}

func withRetry(ce *connect.Error, limit string, after time.Duration) *connect.Error {
	ce.Meta().Set("Retry-After", strconv.Itoa(int((after+time.Second-1)/time.Second)))
	return withDetail(ce, &parleyv1.RateLimited{Limit: limit, RetryAfterMs: after.Milliseconds()})
}

func withDetail(ce *connect.Error, msg proto.Message) *connect.Error {
	if d, err := connect.NewErrorDetail(msg); err == nil {
		ce.AddDetail(d)
	}
	return ce
}
