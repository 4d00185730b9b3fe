package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MailboxAddress is a provisioning mailbox's 16-byte address: the hash of
// the new device's offer (docs/protocol.md §9.2). Knowing it is the
// capability to read the mailbox.
type MailboxAddress [16]byte

// Mailbox is a provisioning mailbox as stored (docs/server.md §5.6): the
// new device's offer and an append-only list of transfer frames, all
// opaque to the store.
type Mailbox struct {
	Address MailboxAddress
	Offer   []byte
	// Frames is the number of frames appended so far: the index the next
	// frame must have.
	Frames uint32
	// Bytes is the total size of the frames (the offer not included).
	Bytes   int64
	Created time.Time
	// Expires is when the mailbox may be deleted. The store does not hide
	// an expired mailbox: the server compares Expires with its clock, and
	// ExpireMailboxes deletes it.
	Expires time.Time
}

// Mailboxes stores provisioning mailboxes. It is a seam of its own, beside
// Store, so that an engine can be written without it: the server serves
// the ProvisioningService only if its store implements Mailboxes. Every
// method is safe for concurrent use. A method that returns without error
// has made its change durable unless its documentation says otherwise.
type Mailboxes interface {
	// CreateMailbox stores a new mailbox with its offer and no frames.
	// ErrMailboxExists if one is stored at address already (even an
	// expired one that ExpireMailboxes has not deleted yet).
	CreateMailbox(ctx context.Context, address MailboxAddress, offer []byte, created, expires time.Time) error
	// Mailbox returns a mailbox, expired or not, or ErrNotFound.
	Mailbox(ctx context.Context, address MailboxAddress) (*Mailbox, error)
	// AppendFrame stores frame at index, which must equal the mailbox's
	// frame count, and moves Expires to extendTo if that is later (it
	// never brings it forward). A retry of the last frame (index = count
	// − 1, identical bytes) changes nothing and succeeds, so a writer whose
	// answer was lost can simply retry. Any other index, or the last index
	// with different bytes, fails with *FrameIndexError; a frame that would
	// take the frames' total size over maxBytes (if maxBytes > 0) fails
	// with *MailboxFullError; an unknown mailbox is ErrNotFound. Concurrent
	// appends at the same index: exactly one succeeds.
	AppendFrame(ctx context.Context, address MailboxAddress, index uint32, frame []byte, maxBytes int64, extendTo time.Time) error
	// Frames returns up to limit frames of a mailbox in index order,
	// starting at index from (none if from is at or past the count).
	// ErrNotFound if the mailbox does not exist.
	Frames(ctx context.Context, address MailboxAddress, from uint32, limit int) ([][]byte, error)
	// DeleteMailbox deletes a mailbox and its frames. Deleting a mailbox
	// that does not exist succeeds (it is idempotent). Not necessarily
	// durable: a deletion lost in a power failure leaves the mailbox to
	// ExpireMailboxes.
	DeleteMailbox(ctx context.Context, address MailboxAddress) error
	// ExpireMailboxes deletes every mailbox whose Expires is before now,
	// with its frames, and returns how many mailboxes. Not necessarily
	// durable, like DeleteMailbox.
	ExpireMailboxes(ctx context.Context, now time.Time) (int, error)
}

// ErrMailboxExists reports a mailbox already stored at an address.
var ErrMailboxExists = errors.New("store: mailbox exists")

// FrameIndexError reports a frame appended at the wrong index: anything but
// the mailbox's frame count (Next), or the last index again with different
// bytes (Conflict).
type FrameIndexError struct {
	Index uint32 // the index the frame was offered at
	Next  uint32 // the index the next frame must have
	// Conflict is set when Index = Next − 1 but the stored frame differs:
	// another writer's frame is there.
	Conflict bool
}

func (e *FrameIndexError) Error() string {
	if e.Conflict {
		return fmt.Sprintf("store: mailbox frame %d is already stored with different content; the next index is %d", e.Index, e.Next)
	}
	return fmt.Sprintf("store: mailbox frame at index %d, but the next index is %d", e.Index, e.Next)
}

// MailboxFullError reports a frame that would take a mailbox's frames over
// their total size limit.
type MailboxFullError struct {
	Limit int64 // bytes
}

func (e *MailboxFullError) Error() string {
	return fmt.Sprintf("store: mailbox would exceed its limit of %d bytes", e.Limit)
}
