package provision

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Offer is what a new device publishes to be linked (§9.1): a fresh HPKE
// public key, its device keys and name, and when it was made. It is public:
// the server stores it in the mailbox at its Address. An Offer is
// immutable; get one from NewOffer, ParseOffer or VerifyOffer.
type Offer struct {
	key     *primitives.HPKEPublicKey
	device  *identity.DevicePublic
	name    string
	created time.Time
	// The new device's signed and last-resort prekeys, if the offer
	// carries them: E publishes them with the device list that adds the
	// device, so that the device can be reached the moment it is added.
	signed     *prekey.X25519Public
	lastResort *prekey.MLKEMPublic
	raw        []byte
}

// OfferSecret is the new device's private half of an offer: the HPKE
// private key the transfer is sealed to. It has no encoding on purpose: it
// lives only in the new device's memory for the few minutes of linking, so
// a restarted link starts over with a new offer.
type OfferSecret struct {
	key   *primitives.HPKEPrivateKey
	offer *Offer
}

// Offer returns the offer this secret belongs to.
func (s *OfferSecret) Offer() *Offer { return s.offer }

const offerType = "provisioning offer"

// NewOffer makes an offer for the new device dev, named name (as it will
// appear in the device list), at time now.
func NewOffer(dev *identity.DevicePublic, name string, now time.Time) (*Offer, *OfferSecret, error) {
	if dev == nil || dev.Signing == nil || dev.DH == nil {
		return nil, nil, errors.New("provision: NewOffer: device without keys")
	}
	if err := checkDeviceName(name); err != "" {
		return nil, nil, fmt.Errorf("provision: NewOffer: device name %s", err)
	}
	if now.Unix() < 0 {
		return nil, nil, errors.New("provision: NewOffer: time before 1970")
	}
	return newOffer(dev, name, now, nil, nil)
}

// NewOfferWithPrekeys is NewOffer for an offer that also carries the new
// device's signed and last-resort prekeys (signed by the device's key,
// checked here), which the approving device publishes together with the
// device list that adds the device: from that moment others can start
// sessions with it, even if it never completes the link.
func NewOfferWithPrekeys(dev *identity.DevicePublic, name string, now time.Time, signed *prekey.X25519Public, lastResort *prekey.MLKEMPublic) (*Offer, *OfferSecret, error) {
	if signed == nil || lastResort == nil || !lastResort.LastResort {
		return nil, nil, errors.New("provision: NewOfferWithPrekeys: need a signed and a last-resort prekey")
	}
	if dev == nil || dev.Signing == nil {
		return nil, nil, errors.New("provision: NewOfferWithPrekeys: device without keys")
	}
	if err := checkPrekeys(dev, signed, lastResort); err != nil {
		return nil, nil, err
	}
	return newOffer(dev, name, now, signed, lastResort)
}

func checkPrekeys(dev *identity.DevicePublic, signed *prekey.X25519Public, lastResort *prekey.MLKEMPublic) error {
	if err := signed.Verify(dev.Signing, prekey.KindSignedX25519); err != nil {
		return &securityError{"provision: the offer's signed prekey is not signed by the new device"}
	}
	if err := lastResort.Verify(dev.Signing); err != nil {
		return &securityError{"provision: the offer's last-resort prekey is not signed by the new device"}
	}
	return nil
}

func newOffer(dev *identity.DevicePublic, name string, now time.Time, signed *prekey.X25519Public, lastResort *prekey.MLKEMPublic) (*Offer, *OfferSecret, error) {
	k := primitives.GenerateHPKE()
	o := &Offer{key: k.Public(), device: dev, name: name, created: time.Unix(now.Unix(), 0), signed: signed, lastResort: lastResort}
	o.raw = o.encode()
	return o, &OfferSecret{key: k, offer: o}, nil
}

// Prekeys returns the new device's signed and last-resort prekeys, or nils
// if the offer carries none. ParseOffer has checked their signatures.
func (o *Offer) Prekeys() (*prekey.X25519Public, *prekey.MLKEMPublic) { return o.signed, o.lastResort }

// checkDeviceName applies the device list's rules for a device name
// (§3.3), so that the list that adds the device can carry it.
func checkDeviceName(name string) string {
	switch {
	case len(name) > identity.MaxDeviceNameSize:
		return "longer than " + strconv.Itoa(identity.MaxDeviceNameSize) + " bytes"
	case !utf8.ValidString(name):
		return "not UTF-8"
	}
	return ""
}

// encode builds the offer encoding:
//
//	version (1) || HPKE public key (1216) || u16 length || DevicePublic
//	|| u8 length || device name || created (u64, Unix seconds)
//	|| flags (1: bit 0 = prekeys follow; other bits zero)
//	[|| u16 length || signed prekey || u16 length || last-resort prekey]
//
// with the prekeys in their single-prekey encodings (docs/protocol.md §7.4).
func (o *Offer) encode() []byte {
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	b.AddBytes(o.key.Bytes())
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(o.device.Marshal()) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(o.name)) })
	b.AddUint64(uint64(o.created.Unix()))
	if o.signed == nil {
		b.AddUint8(0)
	} else {
		b.AddUint8(offerHasPrekeys)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(o.signed.Marshal(prekey.KindSignedX25519)) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(o.lastResort.Marshal()) })
	}
	return b.BytesOrPanic()
}

const offerHasPrekeys = 0x01

// Marshal returns the offer's encoding.
func (o *Offer) Marshal() []byte { return append([]byte(nil), o.raw...) }

// ParseOffer decodes an offer. It checks the structure and the keys, not the
// address or the age: E calls VerifyOffer.
func ParseOffer(data []byte) (*Offer, error) {
	s := cryptobyte.String(data)
	var v uint8
	if !s.ReadUint8(&v) {
		return nil, wire.Malformed(offerType, "truncated")
	}
	if err := wire.CheckVersion(offerType, v); err != nil {
		return nil, err
	}
	var key, name []byte
	var dev cryptobyte.String
	var created uint64
	var flags uint8
	if !s.ReadBytes(&key, HPKEPublicKeySize) || !s.ReadUint16LengthPrefixed(&dev) ||
		!s.ReadUint8LengthPrefixed((*cryptobyte.String)(&name)) || !s.ReadUint64(&created) || !s.ReadUint8(&flags) {
		return nil, wire.Malformed(offerType, "truncated")
	}
	if flags&^offerHasPrekeys != 0 {
		return nil, wire.Malformed(offerType, "unknown flags")
	}
	var signedEnc, lastResortEnc cryptobyte.String
	if flags&offerHasPrekeys != 0 && (!s.ReadUint16LengthPrefixed(&signedEnc) || !s.ReadUint16LengthPrefixed(&lastResortEnc)) {
		return nil, wire.Malformed(offerType, "truncated")
	}
	if !s.Empty() {
		return nil, wire.Malformed(offerType, "trailing bytes")
	}
	k, err := primitives.NewHPKEPublicKey(key)
	if err != nil {
		return nil, wire.Malformed(offerType, "invalid HPKE public key")
	}
	d, err := identity.ParseDevicePublic(dev)
	if err != nil {
		return nil, fmt.Errorf("%w (in a %s)", err, offerType)
	}
	if reason := checkDeviceName(string(name)); reason != "" {
		return nil, wire.Malformed(offerType, "device name "+reason)
	}
	if created > math.MaxInt64 {
		return nil, wire.Malformed(offerType, "creation time out of range")
	}
	o := &Offer{
		key: k, device: d, name: string(name), created: time.Unix(int64(created), 0),
		raw: append([]byte(nil), data...),
	}
	if flags&offerHasPrekeys != 0 {
		if o.signed, err = prekey.ParseX25519Public(signedEnc, prekey.KindSignedX25519); err != nil {
			return nil, fmt.Errorf("%w (in a %s)", err, offerType)
		}
		if o.lastResort, err = prekey.ParseMLKEMPublic(lastResortEnc, prekey.KindLastResortMLKEM); err != nil {
			return nil, fmt.Errorf("%w (in a %s)", err, offerType)
		}
		if err := checkPrekeys(d, o.signed, o.lastResort); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Device returns the new device's public keys.
func (o *Offer) Device() *identity.DevicePublic { return o.device }

// Name returns the new device's name.
func (o *Offer) Name() string { return o.name }

// Created returns when the offer was made (whole seconds).
func (o *Offer) Created() time.Time { return o.created }

// Address returns the mailbox address: H("Parley-v1 Provisioning Address",
// offer)[:16]. It commits to the offer, so E, which learns the address from
// the person and the offer from the server, detects a substituted offer;
// and it hashes a fresh key, so nobody can guess it.
func (o *Offer) Address() [AddressSize]byte { return address(o.raw) }

func address(offer []byte) [AddressSize]byte {
	h := primitives.Hash(primitives.LabelProvisioningAddress, offer)
	return [AddressSize]byte(h[:AddressSize])
}

// Confirmation returns the string both devices show, four groups of four
// decimal digits: H("Parley-v1 Provisioning Confirmation", address,
// offer), its first 8 bytes as a big-endian integer modulo 10^16.
//
// It is the person's check that E is about to hand the account to the
// device they are holding, and not to an offer someone else made and talked
// them into typing the code of. It does not authenticate E to N: the server
// knows the offer and so the string too.
func (o *Offer) Confirmation() string {
	a := o.Address()
	h := primitives.Hash(primitives.LabelProvisioningConfirmation, a[:], o.raw)
	n := binary.BigEndian.Uint64(h[:8]) % 1e16
	d := fmt.Sprintf("%016d", n)
	return d[0:4] + " " + d[4:8] + " " + d[8:12] + " " + d[12:16]
}

// VerifyOffer is E's check of an offer fetched from the mailbox at address
// (from ParseCode or ParseQR): the offer must hash to the address
// (else ErrAddressMismatch, a security error), decode, and have been made
// at most maxAge before now and at most MaxClockSkew after it (else
// ErrStaleOffer).
func VerifyOffer(addr [AddressSize]byte, offer []byte, maxAge time.Duration, now time.Time) (*Offer, error) {
	// The address check comes first: whatever does not hash to the address
	// did not come from the device the person is holding, however it
	// parses.
	if got := address(offer); !primitives.Equal(got[:], addr[:]) {
		return nil, ErrAddressMismatch
	}
	o, err := ParseOffer(offer)
	if err != nil {
		return nil, err
	}
	if o.created.After(now.Add(MaxClockSkew)) {
		return nil, fmt.Errorf("%w (it was made %s in the future; check the clocks)", ErrStaleOffer,
			o.created.Sub(now).Round(time.Second))
	}
	if age := now.Sub(o.created); age > maxAge {
		return nil, fmt.Errorf("%w (it is %s old)", ErrStaleOffer, age.Round(time.Second))
	}
	return o, nil
}
