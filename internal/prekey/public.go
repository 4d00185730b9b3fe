package prekey

import (
	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Single public prekeys, as a device uploads them and the server stores
// them (docs/protocol.md §7.4):
//
//	X25519 prekey: version (1) || kind (1) || id (4) || key (32) || signature (3373)
//	ML-KEM prekey: version (1) || kind (1) || id (4) || key (1568) || signature (3373)
//
// The kind byte is the signed kind (§3.5); a parser is told which kinds it
// accepts.
const publicPrekeyType = "public prekey"

// Marshal encodes a signed (kind KindSignedX25519) or one-time
// (KindOneTimeX25519) X25519 prekey.
func (p *X25519Public) Marshal(kind Kind) []byte {
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	b.AddUint8(byte(kind))
	addX25519Public(&b, p)
	return b.BytesOrPanic()
}

// ParseX25519Public decodes an X25519 prekey of the given kind. It checks
// structure only; VerifyX25519 checks the signature.
func ParseX25519Public(data []byte, kind Kind) (*X25519Public, error) {
	s := cryptobyte.String(data)
	if err := readPublicPrefix(&s, kind); err != nil {
		return nil, err
	}
	p := new(X25519Public)
	if err := readX25519Public(&s, publicPrekeyType, p); err != nil {
		return nil, err
	}
	if !s.Empty() {
		return nil, wire.Malformed(publicPrekeyType, "trailing bytes")
	}
	return p, nil
}

// Marshal encodes an ML-KEM-1024 prekey; its kind follows LastResort.
func (p *MLKEMPublic) Marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	b.AddUint8(byte(p.Kind()))
	addMLKEMPublic(&b, p)
	return b.BytesOrPanic()
}

// ParseMLKEMPublic decodes an ML-KEM-1024 prekey of the given kind
// (KindOneTimeMLKEM or KindLastResortMLKEM).
func ParseMLKEMPublic(data []byte, kind Kind) (*MLKEMPublic, error) {
	s := cryptobyte.String(data)
	if err := readPublicPrefix(&s, kind); err != nil {
		return nil, err
	}
	p := new(MLKEMPublic)
	if err := readMLKEMPublic(&s, publicPrekeyType, p); err != nil {
		return nil, err
	}
	if p.Kind() != kind {
		return nil, wire.Malformed(publicPrekeyType, "last-resort flag does not match the kind")
	}
	if !s.Empty() {
		return nil, wire.Malformed(publicPrekeyType, "trailing bytes")
	}
	return p, nil
}

func readPublicPrefix(s *cryptobyte.String, kind Kind) error {
	var v, k uint8
	if !s.ReadUint8(&v) {
		return wire.Malformed(publicPrekeyType, "truncated")
	}
	if err := wire.CheckVersion(publicPrekeyType, v); err != nil {
		return err
	}
	if !s.ReadUint8(&k) {
		return wire.Malformed(publicPrekeyType, "truncated")
	}
	if Kind(k) != kind {
		return wire.Malformed(publicPrekeyType, "unexpected kind "+Kind(k).String())
	}
	return nil
}

// Verify checks the prekey's signature, as a prekey of the given kind,
// under the device's signing key.
func (p *X25519Public) Verify(device *primitives.SigningPublicKey, kind Kind) error {
	return verify(device, kind, p.ID, p.Key.Bytes(), p.Signature)
}

// Verify checks the prekey's signature under the device's signing key.
func (p *MLKEMPublic) Verify(device *primitives.SigningPublicKey) error {
	return verify(device, p.Kind(), p.ID, p.Key.Bytes(), p.Signature)
}
