package ratchet

import (
	"errors"
	"strconv"
)

// Errors returned by Encrypt and Decrypt. Decoding errors match
// wire.ErrMalformed (or wire.ErrUnsupportedVersion) instead.
var (
	// ErrDecrypt is the one opaque failure for a message that does not
	// authenticate, whatever the reason (wrong key, tampered header or
	// ciphertext, low-order ratchet key), so that a forger learns nothing
	// from which step failed.
	ErrDecrypt = errors.New("ratchet: message authentication failed")

	// ErrDuplicate reports a message whose key was already used or deleted:
	// a replay, a duplicate delivery, or a message older than the stored
	// skipped keys reach.
	ErrDuplicate = errors.New("ratchet: message already received or too old")

	// ErrTooFarAhead reports a message that would make this party skip more
	// than MaxSkip message keys in one chain.
	ErrTooFarAhead = errors.New("ratchet: message is more than " + strconv.Itoa(MaxSkip) + " messages ahead in its chain (MaxSkip)")

	// ErrPQUnknownKey reports a header carrying an ML-KEM ciphertext whose
	// key id is not this party's pending PQ ratchet key.
	ErrPQUnknownKey = errors.New("ratchet: PQ ciphertext for a key this party does not hold")

	// ErrNoSendingChain reports Encrypt on a responder that has not yet
	// received the initiator's first message (Double Ratchet spec §3.3: Bob
	// has no sending chain until his first DH ratchet step).
	ErrNoSendingChain = errors.New("ratchet: cannot send before the first message from the peer has been received")

	// ErrMessageTooLarge reports a plaintext over MaxPlaintextSize.
	ErrMessageTooLarge = errors.New("ratchet: plaintext is larger than " + strconv.Itoa(MaxPlaintextSize) + " bytes")

	// ErrChainExhausted reports a chain that reached 2^32-1 messages; the
	// counter cannot grow further without wrapping.
	ErrChainExhausted = errors.New("ratchet: message counter exhausted; the peer must reply before more can be sent")
)

var errADTooLong = errors.New("ratchet: session associated data is longer than 65535 bytes")
