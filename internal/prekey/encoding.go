package prekey

import (
	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Bundle encoding (docs/protocol.md §7.4):
//
//	version (1)
//	signed:   id (4) || X25519 key (32) || signature (3373)
//	flags (1): bit 0 = a one-time X25519 prekey follows; other bits zero
//	one-time: id (4) || X25519 key (32) || signature (3373)      [if flag]
//	pq:       id (4) || last-resort (1: 0 or 1) || ML-KEM-1024 key (1568) || signature (3373)
const (
	bundleType       = "prekey bundle"
	bundleHasOneTime = 0x01
)

func addX25519Public(b *cryptobyte.Builder, p *X25519Public) {
	b.AddUint32(uint32(p.ID))
	b.AddBytes(p.Key.Bytes())
	b.AddBytes(p.Signature)
}

func addMLKEMPublic(b *cryptobyte.Builder, p *MLKEMPublic) {
	b.AddUint32(uint32(p.ID))
	b.AddUint8(boolByte(p.LastResort))
	b.AddBytes(p.Key.Bytes())
	b.AddBytes(p.Signature)
}

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

// Marshal encodes the bundle.
func (b *Bundle) Marshal() []byte {
	var c cryptobyte.Builder
	c.AddUint8(wire.Version)
	addX25519Public(&c, &b.Signed)
	var flags uint8
	if b.OneTime != nil {
		flags |= bundleHasOneTime
	}
	c.AddUint8(flags)
	if b.OneTime != nil {
		addX25519Public(&c, b.OneTime)
	}
	addMLKEMPublic(&c, &b.PQ)
	return c.BytesOrPanic()
}

func readX25519Public(s *cryptobyte.String, typ string, p *X25519Public) error {
	var id uint32
	var key, sig []byte
	if !s.ReadUint32(&id) || !s.ReadBytes(&key, primitives.X25519KeySize) || !s.ReadBytes(&sig, primitives.SignatureSize) {
		return wire.Malformed(typ, "truncated")
	}
	k, err := primitives.NewX25519PublicKey(key)
	if err != nil {
		return wire.Malformed(typ, "invalid X25519 key")
	}
	*p = X25519Public{ID: ID(id), Key: k, Signature: append([]byte(nil), sig...)}
	return nil
}

func readMLKEMPublic(s *cryptobyte.String, typ string, p *MLKEMPublic) error {
	var id uint32
	var lr uint8
	var key, sig []byte
	if !s.ReadUint32(&id) || !s.ReadUint8(&lr) || !s.ReadBytes(&key, primitives.MLKEM1024PublicKeySize) || !s.ReadBytes(&sig, primitives.SignatureSize) {
		return wire.Malformed(typ, "truncated")
	}
	if lr > 1 {
		return wire.Malformed(typ, "last-resort flag is not 0 or 1")
	}
	k, err := primitives.NewMLKEM1024PublicKey(key)
	if err != nil {
		return wire.Malformed(typ, "invalid ML-KEM-1024 key")
	}
	*p = MLKEMPublic{ID: ID(id), Key: k, LastResort: lr == 1, Signature: append([]byte(nil), sig...)}
	return nil
}

// ParseBundle decodes a bundle. It checks structure only; call Verify.
func ParseBundle(data []byte) (*Bundle, error) {
	s := cryptobyte.String(data)
	var v, flags uint8
	if !s.ReadUint8(&v) {
		return nil, wire.Malformed(bundleType, "truncated")
	}
	if err := wire.CheckVersion(bundleType, v); err != nil {
		return nil, err
	}
	b := &Bundle{}
	if err := readX25519Public(&s, bundleType, &b.Signed); err != nil {
		return nil, err
	}
	if !s.ReadUint8(&flags) {
		return nil, wire.Malformed(bundleType, "truncated")
	}
	if flags&^bundleHasOneTime != 0 {
		return nil, wire.Malformed(bundleType, "unknown flags")
	}
	if flags&bundleHasOneTime != 0 {
		b.OneTime = new(X25519Public)
		if err := readX25519Public(&s, bundleType, b.OneTime); err != nil {
			return nil, err
		}
	}
	if err := readMLKEMPublic(&s, bundleType, &b.PQ); err != nil {
		return nil, err
	}
	if !s.Empty() {
		return nil, wire.Malformed(bundleType, "trailing bytes")
	}
	return b, nil
}
