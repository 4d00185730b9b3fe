// Package prekey implements Parley's signed prekeys and prekey bundles as
// specified in docs/protocol.md §3.5: a signed X25519 prekey, one-time X25519
// prekeys, one-time ML-KEM-1024 prekeys and a last-resort ML-KEM-1024
// prekey, each signed by the device's hybrid signing key.
//
// A bundle carries no identity keys: the device's signing and X25519
// identity keys come only from the account's verified device list, and
// Bundle.Verify checks every prekey signature against the signing key from
// that list.
package prekey

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/parleyim/parley/internal/primitives"
)

// ID names a prekey within one device. IDs are never reused by a device.
type ID uint32

// Kind is the type of a prekey. It is part of every signed statement, so a
// signature over one kind of key can never be presented as another (the
// key-confusion issue found in PQXDH's analysis, §3.5).
type Kind byte

const (
	KindSignedX25519    Kind = 1
	KindOneTimeX25519   Kind = 2
	KindOneTimeMLKEM    Kind = 3
	KindLastResortMLKEM Kind = 4
)

func (k Kind) String() string {
	switch k {
	case KindSignedX25519:
		return "signed X25519 prekey"
	case KindOneTimeX25519:
		return "one-time X25519 prekey"
	case KindOneTimeMLKEM:
		return "one-time ML-KEM-1024 prekey"
	case KindLastResortMLKEM:
		return "last-resort ML-KEM-1024 prekey"
	default:
		return fmt.Sprintf("Kind(%d)", byte(k))
	}
}

var (
	// ErrBadSignature reports a prekey whose signature does not verify
	// under the device's signing key: the bundle was forged or swapped.
	ErrBadSignature = errors.New("prekey: signature does not verify under the device's signing key")
	// ErrUnknownPrekey reports a handshake naming a prekey this device does
	// not hold: never issued, or a one-time prekey already used.
	ErrUnknownPrekey = errors.New("prekey: unknown or already used prekey")
	// ErrReplayedHandshake reports a handshake that reuses the last-resort
	// prekey with an ephemeral key already seen.
	ErrReplayedHandshake = errors.New("prekey: handshake replayed against the last-resort prekey")
)

// statement is what a device signs for one prekey:
// kind (1) || id (4) || public key bytes.
func statement(kind Kind, id ID, pub []byte) []byte {
	b := make([]byte, 5, 5+len(pub))
	b[0] = byte(kind)
	binary.BigEndian.PutUint32(b[1:], uint32(id))
	return append(b, pub...)
}

func sign(k *primitives.SigningKey, kind Kind, id ID, pub []byte) []byte {
	return k.Sign(primitives.LabelSigPrekey, statement(kind, id, pub))
}

func verify(p *primitives.SigningPublicKey, kind Kind, id ID, pub, sig []byte) error {
	if err := p.Verify(primitives.LabelSigPrekey, statement(kind, id, pub), sig); err != nil {
		return fmt.Errorf("%w (%s %d)", ErrBadSignature, kind, id)
	}
	return nil
}

// X25519Public is the public half of a signed or one-time X25519 prekey.
type X25519Public struct {
	ID        ID
	Key       *primitives.X25519PublicKey
	Signature []byte
}

// MLKEMPublic is the public half of an ML-KEM-1024 prekey.
type MLKEMPublic struct {
	ID         ID
	Key        *primitives.MLKEM1024PublicKey
	LastResort bool
	Signature  []byte
}

// Kind returns KindOneTimeMLKEM or KindLastResortMLKEM.
func (p *MLKEMPublic) Kind() Kind {
	if p.LastResort {
		return KindLastResortMLKEM
	}
	return KindOneTimeMLKEM
}

// Bundle is what a server hands out to start a session with one device: its
// current signed prekey, one one-time X25519 prekey if any remain, and one
// ML-KEM-1024 prekey (one-time if any remain, else the last-resort key).
type Bundle struct {
	Signed  X25519Public
	OneTime *X25519Public // nil when the device's one-time prekeys ran out
	PQ      MLKEMPublic
}

// Verify checks every signature in the bundle under the device's signing
// key, which the caller takes from the account's verified device list.
func (b *Bundle) Verify(device *primitives.SigningPublicKey) error {
	if err := verify(device, KindSignedX25519, b.Signed.ID, b.Signed.Key.Bytes(), b.Signed.Signature); err != nil {
		return err
	}
	if b.OneTime != nil {
		if err := verify(device, KindOneTimeX25519, b.OneTime.ID, b.OneTime.Key.Bytes(), b.OneTime.Signature); err != nil {
			return err
		}
	}
	return verify(device, b.PQ.Kind(), b.PQ.ID, b.PQ.Key.Bytes(), b.PQ.Signature)
}
