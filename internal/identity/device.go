package identity

import (
	"encoding/hex"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Encoding sizes (§3.2).
const (
	// DeviceIDSize is the size of a DeviceID.
	DeviceIDSize = 16
	// devicePublicRawSize is a device's public keys without a version byte,
	// as they appear inside a device list: signing key then X25519 key.
	devicePublicRawSize = primitives.SigningPublicKeySize + primitives.X25519KeySize
	// DevicePublicSize is the size of DevicePublic.Marshal's output.
	DevicePublicSize = 1 + devicePublicRawSize
	// DeviceKeysSize is the size of DeviceKeys.Marshal's output.
	DeviceKeysSize = 1 + primitives.SigningSeedSize + primitives.X25519KeySize
)

// DeviceKeys are one device's private identity keys: a hybrid signing key
// (it signs the device's prekeys and authenticates it to the server) and an
// X25519 identity key (the long-term DH key of the handshake).
type DeviceKeys struct {
	Signing *primitives.SigningKey
	DH      *primitives.X25519PrivateKey
}

// DevicePublic is the public half of DeviceKeys.
type DevicePublic struct {
	Signing *primitives.SigningPublicKey
	DH      *primitives.X25519PublicKey
}

// DeviceID names a device: the first 16 bytes of its fingerprint. 128 bits
// suffice because a device must also appear in its account's signed list,
// so a colliding ID buys an attacker nothing without the account key; it is
// an index, not the root of trust (the full keys are compared).
type DeviceID [DeviceIDSize]byte

// GenerateDeviceKeys returns fresh keys for a new device.
func GenerateDeviceKeys() *DeviceKeys {
	return &DeviceKeys{Signing: primitives.GenerateSigningKey(), DH: primitives.GenerateX25519()}
}

// Public returns the device's public keys.
func (k *DeviceKeys) Public() *DevicePublic {
	return &DevicePublic{Signing: k.Signing.Public(), DH: k.DH.Public()}
}

// Marshal encodes the private keys for the client's sealed store:
//
//	version (1) || signing seed (64) || X25519 private key (32)
//
// The output is secret.
func (k *DeviceKeys) Marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	b.AddBytes(k.Signing.Seed())
	b.AddBytes(k.DH.Bytes())
	return b.BytesOrPanic()
}

// UnmarshalDeviceKeys decodes the output of DeviceKeys.Marshal.
func UnmarshalDeviceKeys(data []byte) (*DeviceKeys, error) {
	const typ = "device keys"
	s := cryptobyte.String(data)
	var v uint8
	var seed, dh []byte
	if !s.ReadUint8(&v) {
		return nil, wire.Malformed(typ, "truncated")
	}
	if err := wire.CheckVersion(typ, v); err != nil {
		return nil, err
	}
	if !s.ReadBytes(&seed, primitives.SigningSeedSize) || !s.ReadBytes(&dh, primitives.X25519KeySize) {
		return nil, wire.Malformed(typ, "truncated")
	}
	if !s.Empty() {
		return nil, wire.Malformed(typ, "trailing bytes")
	}
	sk, err := primitives.NewSigningKey(seed)
	if err != nil {
		return nil, wire.Malformed(typ, "invalid signing key")
	}
	xk, err := primitives.NewX25519PrivateKey(dh)
	if err != nil {
		return nil, wire.Malformed(typ, "invalid X25519 key")
	}
	return &DeviceKeys{Signing: sk, DH: xk}, nil
}

// Marshal encodes the public keys:
//
//	version (1) || signing public key (1984) || X25519 public key (32)
func (d *DevicePublic) Marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	d.addRaw(&b)
	return b.BytesOrPanic()
}

// addRaw appends the unversioned form used inside device lists.
func (d *DevicePublic) addRaw(b *cryptobyte.Builder) {
	b.AddBytes(d.Signing.Bytes())
	b.AddBytes(d.DH.Bytes())
}

// ParseDevicePublic decodes the output of DevicePublic.Marshal.
func ParseDevicePublic(data []byte) (*DevicePublic, error) {
	const typ = "device public key"
	s := cryptobyte.String(data)
	var v uint8
	if !s.ReadUint8(&v) {
		return nil, wire.Malformed(typ, "truncated")
	}
	if err := wire.CheckVersion(typ, v); err != nil {
		return nil, err
	}
	d, err := readDevicePublicRaw(&s, typ)
	if err != nil {
		return nil, err
	}
	if !s.Empty() {
		return nil, wire.Malformed(typ, "trailing bytes")
	}
	return d, nil
}

func readDevicePublicRaw(s *cryptobyte.String, typ string) (*DevicePublic, error) {
	var sig, dh []byte
	if !s.ReadBytes(&sig, primitives.SigningPublicKeySize) || !s.ReadBytes(&dh, primitives.X25519KeySize) {
		return nil, wire.Malformed(typ, "truncated")
	}
	sk, err := primitives.NewSigningPublicKey(sig)
	if err != nil {
		return nil, wire.Malformed(typ, "invalid signing key")
	}
	xk, err := primitives.NewX25519PublicKey(dh)
	if err != nil {
		return nil, wire.Malformed(typ, "invalid X25519 key")
	}
	return &DevicePublic{Signing: sk, DH: xk}, nil
}

// Fingerprint returns Hash(LabelDeviceFingerprint, signing key, X25519 key).
func (d *DevicePublic) Fingerprint() [32]byte {
	return primitives.Hash(primitives.LabelDeviceFingerprint, d.Signing.Bytes(), d.DH.Bytes())
}

// ID returns the device's ID: the first 16 bytes of its fingerprint.
func (d *DevicePublic) ID() DeviceID {
	fp := d.Fingerprint()
	return DeviceID(fp[:DeviceIDSize])
}

// Equal reports whether d and o hold the same two keys.
func (d *DevicePublic) Equal(o *DevicePublic) bool {
	if d == nil || o == nil {
		return false
	}
	// Evaluate both so the time does not say which key differs.
	s, x := d.Signing.Equal(o.Signing), d.DH.Equal(o.DH)
	return s && x
}

// String returns the ID in lower-case hex.
func (id DeviceID) String() string { return hex.EncodeToString(id[:]) }

// ParseDeviceID parses the output of DeviceID.String: exactly 32 lower-case
// hex digits.
func ParseDeviceID(s string) (DeviceID, error) {
	var id DeviceID
	if len(s) != 2*DeviceIDSize {
		return id, wire.Malformed("device ID", "want 32 hex digits")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id, wire.Malformed("device ID", "not lower-case hex")
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, wire.Malformed("device ID", "not lower-case hex")
	}
	return id, nil
}
