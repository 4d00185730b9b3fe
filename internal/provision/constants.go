package provision

import (
	"strconv"
	"time"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Specification constants (§9): changing one changes the format.
const (
	// AddressSize is the size of a mailbox address:
	// H("Parley-v1 Provisioning Address", offer)[:16].
	AddressSize = 16
	// HPKEPublicKeySize is the size of the offer's ephemeral HPKE public key
	// (MLKEM768-X25519).
	HPKEPublicKeySize = primitives.HPKEPublicKeySize
	// EncapsulatedKeySize is the size of the HPKE encapsulated key that the
	// account frame carries.
	EncapsulatedKeySize = primitives.HPKEEncapsulatedKeySize
	// frameHeaderSize is version (1) || type (1) || seq (4) || length (3),
	// without the account frame's encapsulated key.
	frameHeaderSize = 1 + 1 + 4 + 3
	// codeLen is the number of base32 characters of a code: 128 address
	// bits and a 12-bit CRC make 140 bits, 28 characters of 5 bits.
	codeLen = 28
	// codeGroup is the number of characters between dashes.
	codeGroup = 4
)

// FrameType says what a transfer frame carries.
type FrameType uint8

// Frame types, in the order a transfer sends them.
const (
	FrameAccount  FrameType = 1 // first, exactly once; carries the HPKE encapsulated key
	FrameContacts FrameType = 2 // 0..n batches, before any history
	FrameHistory  FrameType = 3 // 0..n batches
	FrameEnd      FrameType = 4 // last, exactly once
)

func (t FrameType) String() string {
	switch t {
	case FrameAccount:
		return "account"
	case FrameContacts:
		return "contacts"
	case FrameHistory:
		return "history"
	case FrameEnd:
		return "end"
	}
	return "FrameType(" + strconv.Itoa(int(t)) + ")"
}

// Implementation limits: the layout has room for more, but encoders and
// decoders refuse anything beyond them.
const (
	// MaxOfferAge is how old an offer E accepts by default: long enough to
	// walk from one device to the other, short enough that an offer (and
	// its mailbox) does not linger. The server's mailbox TTL should match.
	MaxOfferAge = 10 * time.Minute
	// MaxClockSkew is how far in the future of E's clock an offer's
	// creation time may lie.
	MaxClockSkew = 2 * time.Minute

	// MaxNameSize bounds usernames (the account's, a contact's, a
	// message's conversation and sender), as device lists do.
	MaxNameSize = identity.MaxAccountNameSize
	// MaxServerURLSize bounds the server URL in the account frame.
	MaxServerURLSize = 2048
	// MaxSettings bounds the number of settings in the account frame.
	MaxSettings = 64
	// MaxSettingNameSize bounds a setting's name.
	MaxSettingNameSize = 64
	// MaxSettingValueSize bounds a setting's value.
	MaxSettingValueSize = 4096

	// MaxContactsBatch bounds the contacts in one frame.
	MaxContactsBatch = 256
	// MaxHistoryBatch bounds the messages in one frame. Together with
	// MaxPayloadSize (whichever is reached first) it keeps every frame
	// small enough to relay, store and decrypt in one piece, and gives
	// progress bars a step every few hundred messages.
	MaxHistoryBatch = 512
	// MaxPayloadSize bounds the plaintext of any frame (1 MiB). One history
	// message holds at most wire.MaxPlaintextSize (256 KiB) of body, so
	// every valid message fits a batch of its own.
	MaxPayloadSize = 1 << 20
	// MaxFrameSize bounds an encoded frame: what the server's mailbox must
	// accept per frame.
	MaxFrameSize = frameHeaderSize + EncapsulatedKeySize + MaxPayloadSize + primitives.HPKEOverhead

	// MaxContacts bounds the contacts one transfer carries.
	MaxContacts = 1 << 16
	// MaxHistoryMessages bounds the history messages one transfer carries.
	MaxHistoryMessages = 1 << 24

	// maxBody is the largest message body, as for sending.
	maxBody = wire.MaxPlaintextSize
)
