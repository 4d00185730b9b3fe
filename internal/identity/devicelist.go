package identity

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"

	"github.com/parleyim/parley/internal/primitives"
	"github.com/parleyim/parley/internal/wire"
)

// Device-list limits (§3.3). These are implementation limits, not format
// constants: the encoding has room for more, but a verifier refuses lists
// beyond them.
const (
	// MaxDevices is the largest number of devices an account may have.
	// It bounds a recipient's fan-out and the size of a list.
	MaxDevices = 16
	// MaxAccountNameSize bounds DeviceList.Account, in bytes.
	MaxAccountNameSize = 64
	// MaxDeviceNameSize bounds DeviceEntry.Name, in bytes.
	MaxDeviceNameSize = 64
)

// DeviceList is an account's statement of which devices belong to it. It is
// only meaningful once verified: get one from SignedDeviceList.Verify.
type DeviceList struct {
	Account string            // the username: 1..MaxAccountNameSize bytes of UTF-8
	Key     *AccountPublicKey // the account key that signs this list
	Version uint64            // 1 for the first list, +1 for each change
	Prev    [32]byte          // SignedDeviceList.Hash of version-1; all zero for version 1
	Devices []DeviceEntry     // 1..MaxDevices, sorted by ID, IDs and keys distinct
}

// DeviceEntry is one device in a list.
type DeviceEntry struct {
	Device *DevicePublic
	Name   string // a label the user chose: 0..MaxDeviceNameSize bytes of UTF-8
	Added  uint64 // when it was linked, Unix seconds (the signer's claim)
}

// Lookup returns the entry of the device with the given ID.
func (l *DeviceList) Lookup(id DeviceID) (DeviceEntry, bool) {
	for _, e := range l.Devices {
		if e.Device.ID() == id {
			return e, true
		}
	}
	return DeviceEntry{}, false
}

// clone returns a deep enough copy that callers cannot change a verified
// list through the result (the keys themselves are immutable).
func (l *DeviceList) clone() *DeviceList {
	c := *l
	c.Devices = slices.Clone(l.Devices)
	return &c
}

// check enforces the structural rules of §3.3 that the encoding alone does
// not. Devices must already be sorted by ID.
func (l *DeviceList) check() error {
	switch {
	case l.Account == "":
		return errors.New("empty account name")
	case len(l.Account) > MaxAccountNameSize:
		return fmt.Errorf("account name longer than %d bytes", MaxAccountNameSize)
	case !utf8.ValidString(l.Account):
		return errors.New("account name is not UTF-8")
	case l.Key == nil:
		return errors.New("no account key")
	case l.Version == 0:
		return errors.New("version 0")
	case l.Version == 1 && l.Prev != [32]byte{}:
		return errors.New("version 1 with a previous-version hash")
	case l.Version > 1 && l.Prev == [32]byte{}:
		return errors.New("version after 1 without a previous-version hash")
	case len(l.Devices) == 0:
		return errors.New("no devices")
	case len(l.Devices) > MaxDevices:
		return fmt.Errorf("more than %d devices", MaxDevices)
	}
	ids := make([]DeviceID, len(l.Devices))
	for i, e := range l.Devices {
		switch {
		case e.Device == nil || e.Device.Signing == nil || e.Device.DH == nil:
			return errors.New("device without keys")
		case len(e.Name) > MaxDeviceNameSize:
			return fmt.Errorf("device name longer than %d bytes", MaxDeviceNameSize)
		case !utf8.ValidString(e.Name):
			return errors.New("device name is not UTF-8")
		}
		ids[i] = e.Device.ID()
		if i > 0 {
			switch c := bytes.Compare(ids[i-1][:], ids[i][:]); {
			case c == 0:
				return errors.New("duplicate device ID")
			case c > 0:
				return errors.New("devices not sorted by ID")
			}
		}
	}
	// Distinct IDs do not imply distinct keys: one signing key or one X25519
	// key listed twice under two IDs would make "which device is this?"
	// ambiguous for authentication and for sessions, so refuse it too.
	for i := range l.Devices {
		for j := range i {
			a, b := l.Devices[i].Device, l.Devices[j].Device
			if a.Signing.Equal(b.Signing) || a.DH.Equal(b.DH) {
				return errors.New("device key listed twice")
			}
		}
	}
	return nil
}

// marshalBody encodes the signed body of a list (§3.3):
//
//	version (1) || uint8 length || account || account key (1984) ||
//	uint64 list version || prev (32) || uint8 device count || entries
//
// and each entry is
//
//	signing public key (1984) || X25519 public key (32) ||
//	uint8 length || name || uint64 added
func (l *DeviceList) marshalBody() []byte {
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(l.Account)) })
	b.AddBytes(l.Key.Bytes())
	b.AddUint64(l.Version)
	b.AddBytes(l.Prev[:])
	b.AddUint8(uint8(len(l.Devices)))
	for _, e := range l.Devices {
		e.Device.addRaw(&b)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(e.Name)) })
		b.AddUint64(e.Added)
	}
	return b.BytesOrPanic()
}

const bodyType = "device list"

// parseBody decodes and checks a body.
func parseBody(data []byte) (*DeviceList, error) {
	s := cryptobyte.String(data)
	var v, n uint8
	var account, key, name cryptobyte.String
	var prev []byte
	l := &DeviceList{}
	if !s.ReadUint8(&v) {
		return nil, wire.Malformed(bodyType, "truncated")
	}
	if err := wire.CheckVersion(bodyType, v); err != nil {
		return nil, err
	}
	if !s.ReadUint8LengthPrefixed(&account) || !s.ReadBytes((*[]byte)(&key), AccountKeySize) ||
		!s.ReadUint64(&l.Version) || !s.ReadBytes(&prev, len(l.Prev)) || !s.ReadUint8(&n) {
		return nil, wire.Malformed(bodyType, "truncated")
	}
	k, err := ParseAccountPublicKey(key)
	if err != nil {
		return nil, wire.Malformed(bodyType, "invalid account key")
	}
	l.Account, l.Key = string(account), k
	copy(l.Prev[:], prev)
	if n == 0 || n > MaxDevices {
		// Checked before reading so a huge count costs nothing.
		return nil, wire.Malformed(bodyType, fmt.Sprintf("device count %d outside 1..%d", n, MaxDevices))
	}
	l.Devices = make([]DeviceEntry, n)
	for i := range l.Devices {
		e := &l.Devices[i]
		if e.Device, err = readDevicePublicRaw(&s, bodyType); err != nil {
			return nil, err
		}
		if !s.ReadUint8LengthPrefixed(&name) || !s.ReadUint64(&e.Added) {
			return nil, wire.Malformed(bodyType, "truncated")
		}
		e.Name = string(name)
	}
	if !s.Empty() {
		return nil, wire.Malformed(bodyType, "trailing bytes")
	}
	if err := l.check(); err != nil {
		return nil, wire.Malformed(bodyType, err.Error())
	}
	return l, nil
}

// SignedDeviceList is a device list as the account key signed it, and as it
// travels: through the directory, the key-transparency log and the client's
// store. Its encoding (§3.3) is
//
//	version (1) || uint24 length || body || signature (3373)
//
// where the signature is the account key's hybrid signature over body under
// LabelSigDeviceList. Parsing checks the structure; only Verify checks the
// signature.
type SignedDeviceList struct {
	body []byte
	sig  []byte
	list *DeviceList // parsed body, not yet trusted
}

const signedType = "signed device list"

// SignDeviceList signs l with k. The devices are sorted by ID in the result;
// l itself is not modified. l.Key must be nil (meaning k's public key) or
// equal to k's public key.
func SignDeviceList(k *AccountKey, l *DeviceList) (*SignedDeviceList, error) {
	c := l.clone()
	if c.Key == nil {
		c.Key = k.Public()
	} else if !c.Key.Equal(k.Public()) {
		return nil, errors.New("identity: cannot sign device list: its Key is not the signing account key")
	}
	for _, e := range c.Devices {
		if e.Device == nil || e.Device.Signing == nil || e.Device.DH == nil {
			return nil, errors.New("identity: cannot sign device list: device without keys")
		}
	}
	slices.SortFunc(c.Devices, func(a, b DeviceEntry) int {
		ia, ib := a.Device.ID(), b.Device.ID()
		return bytes.Compare(ia[:], ib[:])
	})
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("identity: cannot sign device list: %w", err)
	}
	body := c.marshalBody()
	return &SignedDeviceList{body: body, sig: k.k.Sign(primitives.LabelSigDeviceList, body), list: c}, nil
}

// Marshal returns the encoding.
func (s *SignedDeviceList) Marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(wire.Version)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.body) })
	b.AddBytes(s.sig)
	return b.BytesOrPanic()
}

// ParseSignedDeviceList decodes a signed device list and checks its
// structure. It does not check the signature: call Verify.
func ParseSignedDeviceList(data []byte) (*SignedDeviceList, error) {
	s := cryptobyte.String(data)
	var v uint8
	var body cryptobyte.String
	var sig []byte
	if !s.ReadUint8(&v) {
		return nil, wire.Malformed(signedType, "truncated")
	}
	if err := wire.CheckVersion(signedType, v); err != nil {
		return nil, err
	}
	if !s.ReadUint24LengthPrefixed(&body) || !s.ReadBytes(&sig, primitives.SignatureSize) {
		return nil, wire.Malformed(signedType, "truncated")
	}
	if !s.Empty() {
		return nil, wire.Malformed(signedType, "trailing bytes")
	}
	l, err := parseBody(body)
	if err != nil {
		return nil, err
	}
	return &SignedDeviceList{body: bytes.Clone(body), sig: bytes.Clone(sig), list: l}, nil
}

// Hash returns Hash(LabelDeviceListHash, encoding): the value the next
// version's Prev holds. It covers the signature too, so the chain commits to
// exactly the bytes each verifier saw.
func (s *SignedDeviceList) Hash() [32]byte {
	return primitives.Hash(primitives.LabelDeviceListHash, s.Marshal())
}

// Verify checks s and returns the list it carries.
//
// With prev == nil, s is the first list this client has seen for the
// account: Verify checks the structure and the signature by the list's own
// account key, and the caller trusts that key from then on (trust on first
// use, until key transparency checks it; docs/protocol.md §3.3).
//
// Otherwise prev must be the last list the caller verified for the account,
// and Verify also requires, in this order (each failure matches ErrSecurity):
//
//   - the same account name (else ErrAccountMismatch);
//   - the same account key (else ErrAccountKeyChanged: rotation is not
//     supported yet);
//   - a version after prev's (else ErrRollback), except that the very same
//     bytes as prev are accepted, so that re-fetching an unchanged list is
//     not an error;
//   - if the version is prev's plus one, Prev equal to prev.Hash() (else
//     ErrBrokenChain).
//
// If the version is further ahead, the links in between cannot be checked:
// Verify returns a *GapError and the caller fetches the missing versions
// and calls VerifyChain.
func (s *SignedDeviceList) Verify(prev *SignedDeviceList) (*DeviceList, error) {
	l := s.list
	if err := l.Key.verify(primitives.LabelSigDeviceList, s.body, s.sig); err != nil {
		return nil, ErrBadSignature
	}
	if prev == nil {
		return l.clone(), nil
	}
	p := prev.list
	switch {
	case l.Account != p.Account:
		return nil, fmt.Errorf("%w: expected %q, got %q", ErrAccountMismatch, p.Account, l.Account)
	case !l.Key.Equal(p.Key):
		return nil, fmt.Errorf("%w: account %q", ErrAccountKeyChanged, l.Account)
	case l.Version == p.Version && bytes.Equal(s.body, prev.body) && bytes.Equal(s.sig, prev.sig):
		return l.clone(), nil
	case l.Version == p.Version:
		return nil, fmt.Errorf("%w: account %q has two different lists for version %d (a fork)", ErrRollback, l.Account, l.Version)
	case l.Version < p.Version:
		return nil, fmt.Errorf("%w: account %q version %d after version %d", ErrRollback, l.Account, l.Version, p.Version)
	case l.Version > p.Version+1:
		return nil, &GapError{Have: p.Version, Got: l.Version}
	}
	if h := prev.Hash(); !primitives.Equal(l.Prev[:], h[:]) {
		return nil, fmt.Errorf("%w: account %q version %d", ErrBrokenChain, l.Account, l.Version)
	}
	return l.clone(), nil
}

// VerifyChain verifies newer, a run of consecutive versions, against prev
// (nil for a first-seen account, as in Verify) and returns the last list.
// Each element is verified against the one before it, so every link of the
// chain is checked; the caller then stores newer's last element as its new
// prev.
func VerifyChain(prev *SignedDeviceList, newer []*SignedDeviceList) (*DeviceList, error) {
	if len(newer) == 0 {
		return nil, errors.New("identity: VerifyChain: no device lists to verify")
	}
	var l *DeviceList
	for i, s := range newer {
		var err error
		if l, err = s.Verify(prev); err != nil {
			return nil, fmt.Errorf("%w (in list %d of %d of the chain)", err, i+1, len(newer))
		}
		prev = s
	}
	return l, nil
}
