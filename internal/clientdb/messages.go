package clientdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/parleyim/parley/internal/wire"
)

// DeliveryState is where a message stands. Outgoing messages go Pending →
// Sent → Delivered (or Failed); incoming ones are Received, then Read.
type DeliveryState uint8

const (
	StatePending   DeliveryState = 1 // outgoing, not yet accepted by the server
	StateSent      DeliveryState = 2 // outgoing, accepted by the server
	StateDelivered DeliveryState = 3 // outgoing, a recipient device confirmed it
	StateFailed    DeliveryState = 4 // outgoing, given up on
	StateReceived  DeliveryState = 5 // incoming, stored
	StateRead      DeliveryState = 6 // incoming, shown to the user
	// StateSystem marks a line the client wrote itself into a
	// conversation, not a message anyone sent: an event such as "bob added
	// a device". Sender is the account the event concerns, Body its text.
	// Added after schema version 1 without a migration: the state is a
	// plain integer column, and older code refuses the row as corrupt
	// rather than misreading it.
	StateSystem DeliveryState = 7
)

func (s DeliveryState) valid() bool { return s >= StatePending && s <= StateSystem }

func (s DeliveryState) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateSent:
		return "sent"
	case StateDelivered:
		return "delivered"
	case StateFailed:
		return "failed"
	case StateReceived:
		return "received"
	case StateRead:
		return "read"
	case StateSystem:
		return "system"
	}
	return "DeliveryState(" + strconv.Itoa(int(s)) + ")"
}

// Message is one message of a conversation, in either direction.
type Message struct {
	ID           [16]byte // chosen by the sender
	Conversation string   // the other user of a one-to-one conversation
	Sender       string   // the sending user (this user for outgoing messages)
	SenderDevice [16]byte
	Outgoing     bool
	Sent         time.Time // the sender's claim
	Received     time.Time // this device's clock
	Body         []byte    // at most wire.MaxPlaintextSize bytes
	State        DeliveryState
}

// MaxHistory caps the limit of one History call.
const MaxHistory = 1000

const (
	tableMessages = "messages"
	colMeta       = "meta"
	colBody       = "body"
	metaFixedLen  = 16 + 16 // message ID || sender device ID, then sender
)

// Clear columns of a message and what they bind. The body is bound to
// everything but the state, so a state change does not reseal the body;
// meta is bound to everything, state included, and is resealed when the
// state changes (SetMessageState), so no clear column can be edited
// undetected.
type messageRow struct {
	dedup, conversation []byte
	outgoing            bool
	sent, received      int64
	state               DeliveryState
}

func (r *messageRow) bodyBind() [][]byte {
	return [][]byte{r.dedup, r.conversation, boolByte(r.outgoing), u64(uint64(r.sent)), u64(uint64(r.received))}
}

func (r *messageRow) metaBind() [][]byte {
	return append(r.bodyBind(), []byte{byte(r.state)})
}

func encodeMeta(m *Message) []byte {
	b := make([]byte, 0, metaFixedLen+len(m.Sender))
	b = append(b, m.ID[:]...)
	b = append(b, m.SenderDevice[:]...)
	return append(b, m.Sender...)
}

func putMessage(ctx context.Context, q querier, k *keys, m *Message) (bool, error) {
	switch {
	case m == nil:
		return false, errors.New("clientdb: nil message")
	case m.Conversation == "" || m.Sender == "":
		return false, errors.New("clientdb: message without conversation or sender")
	case !m.State.valid():
		return false, fmt.Errorf("clientdb: invalid delivery state %v", m.State)
	}
	if err := checkTime("sent time", m.Sent); err != nil {
		return false, err
	}
	if err := checkTime("received time", m.Received); err != nil {
		return false, err
	}
	// The body is padded as on the wire (docs/protocol.md §7.3) before
	// sealing, so the file shows a thief no more of its length than the
	// server saw.
	padded, err := wire.Pad(nil, m.Body)
	if err != nil {
		return false, fmt.Errorf("clientdb: %w", err)
	}
	r := &messageRow{
		dedup:        k.message(m.Sender, m.ID),
		conversation: k.username(m.Conversation),
		outgoing:     m.Outgoing,
		sent:         unixNano(m.Sent),
		received:     unixNano(m.Received),
		state:        m.State,
	}
	res, err := q.ExecContext(ctx, `INSERT INTO messages (dedup_hash, conversation, outgoing, sent, received, state, meta, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_hash) DO NOTHING`,
		r.dedup, r.conversation, boolInt(r.outgoing), r.sent, r.received, int64(r.state),
		k.seal(encodeMeta(m), tableMessages, colMeta, r.metaBind()...),
		k.seal(padded, tableMessages, colBody, r.bodyBind()...))
	if err != nil {
		return false, sqlError("store message", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, sqlError("store message", err)
	}
	return n == 1, nil
}

// scanRow reads the clear columns shared by the readers.
func scanRow(outgoing, state int64) (bool, DeliveryState, error) {
	if (outgoing != 0 && outgoing != 1) || state < 0 || state > math.MaxUint8 || !DeliveryState(state).valid() {
		return false, 0, fmt.Errorf("%w: messages clear columns", ErrCorrupt)
	}
	return outgoing == 1, DeliveryState(state), nil
}

func setMessageState(ctx context.Context, q querier, k *keys, sender string, id [16]byte, state DeliveryState) error {
	if !state.valid() {
		return fmt.Errorf("clientdb: invalid delivery state %v", state)
	}
	r := &messageRow{dedup: k.message(sender, id)}
	var seq, outgoing, st int64
	var meta []byte
	err := q.QueryRowContext(ctx, "SELECT seq, conversation, outgoing, sent, received, state, meta FROM messages WHERE dedup_hash = ?", r.dedup).
		Scan(&seq, &r.conversation, &outgoing, &r.sent, &r.received, &st, &meta)
	if err != nil {
		return notFound("message", err)
	}
	if r.outgoing, r.state, err = scanRow(outgoing, st); err != nil {
		return err
	}
	// Open before resealing: resealing a tampered row under the new state
	// would launder it.
	plain, err := k.open(meta, tableMessages, colMeta, r.metaBind()...)
	if err != nil {
		return err
	}
	r.state = state
	_, err = q.ExecContext(ctx, "UPDATE messages SET state = ?, meta = ? WHERE seq = ?",
		int64(state), k.seal(plain, tableMessages, colMeta, r.metaBind()...), seq)
	if err != nil {
		return sqlError("store message state", err)
	}
	return nil
}

func history(ctx context.Context, q querier, k *keys, conversation string, limit int, before time.Time) ([]Message, error) {
	if limit <= 0 {
		return nil, errors.New("clientdb: history limit must be positive")
	}
	limit = min(limit, MaxHistory)
	upper := int64(math.MaxInt64)
	if !before.IsZero() {
		if err := checkTime("history bound", before); err != nil {
			return nil, err
		}
		upper = before.UnixNano()
	}
	conv := k.username(conversation)
	rows, err := q.QueryContext(ctx, `SELECT seq, dedup_hash, outgoing, sent, received, state, meta, body FROM messages
		WHERE conversation = ? AND sent < ? ORDER BY sent DESC, seq DESC LIMIT ?`, conv, upper, limit)
	if err != nil {
		return nil, sqlError("read history", err)
	}
	out, _, err := scanMessages(rows, k, conversation, conv)
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// exportMessages returns up to limit messages of a conversation stored
// after the row afterSeq, in storage order, and the seq of the last one:
// paging by seq, unlike history's paging by sent time, never skips messages
// that share a timestamp.
func exportMessages(ctx context.Context, q querier, k *keys, conversation string, afterSeq int64, limit int) ([]Message, int64, error) {
	if limit <= 0 {
		return nil, 0, errors.New("clientdb: export limit must be positive")
	}
	limit = min(limit, MaxHistory)
	conv := k.username(conversation)
	rows, err := q.QueryContext(ctx, `SELECT seq, dedup_hash, outgoing, sent, received, state, meta, body FROM messages
		WHERE conversation = ? AND seq > ? ORDER BY seq LIMIT ?`, conv, afterSeq, limit)
	if err != nil {
		return nil, 0, sqlError("read messages", err)
	}
	return scanMessages(rows, k, conversation, conv)
}

// scanMessages decodes and opens the rows of a messages query and returns
// them with the largest seq seen.
func scanMessages(rows *sql.Rows, k *keys, conversation string, conv []byte) ([]Message, int64, error) {
	defer rows.Close()
	var out []Message
	var lastSeq int64
	for rows.Next() {
		r := &messageRow{conversation: conv}
		var seq, outgoing, st int64
		var meta, body []byte
		if err := rows.Scan(&seq, &r.dedup, &outgoing, &r.sent, &r.received, &st, &meta, &body); err != nil {
			return nil, 0, sqlError("read messages", err)
		}
		lastSeq = max(lastSeq, seq)
		var err error
		if r.outgoing, r.state, err = scanRow(outgoing, st); err != nil {
			return nil, 0, err
		}
		plainMeta, err := k.open(meta, tableMessages, colMeta, r.metaBind()...)
		if err != nil {
			return nil, 0, err
		}
		if len(plainMeta) <= metaFixedLen {
			return nil, 0, fmt.Errorf("%w: messages.meta too short", ErrCorrupt)
		}
		paddedBody, err := k.open(body, tableMessages, colBody, r.bodyBind()...)
		if err != nil {
			return nil, 0, err
		}
		plainBody, err := wire.Unpad(paddedBody)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: messages.body padding", ErrCorrupt)
		}
		m := Message{
			Conversation: conversation,
			Sender:       string(plainMeta[metaFixedLen:]),
			Outgoing:     r.outgoing,
			Sent:         fromUnixNano(r.sent),
			Received:     fromUnixNano(r.received),
			Body:         plainBody,
			State:        r.state,
		}
		copy(m.ID[:], plainMeta[:16])
		copy(m.SenderDevice[:], plainMeta[16:metaFixedLen])
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, sqlError("read messages", err)
	}
	return out, lastSeq, nil
}
