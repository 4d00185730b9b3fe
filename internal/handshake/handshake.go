// Package handshake implements Parley's PQXDH-class hybrid key agreement as
// specified in docs/protocol.md §4. It follows Signal's PQXDH specification
// (revision 3) with the deviations listed in §4.6: hybrid Ed25519 + ML-DSA-65
// signatures by a separate device signing key instead of XEdDSA, ML-KEM-1024
// (FIPS 203), HKDF-SHA256, and a transcript hash bound into the KDF.
//
// The handshake only turns keys into a shared secret, associated data and
// the wire header; the ratchet turns secrets into messages and the session
// layer decides which state to keep.
package handshake

import (
	"errors"
	"fmt"

	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/prekey"
	"github.com/parleyim/parley/internal/primitives"
)

// ADSize is the size of the associated data a handshake produces: the two
// devices' 32-byte fingerprints, initiator first.
const ADSize = 2 * 32

var (
	// ErrWrongIdentity reports a handshake addressed to another device, or
	// from a device other than the one the caller looked up.
	ErrWrongIdentity = errors.New("handshake: message is not between the expected devices")
	// ErrInvalidKeyAgreement reports a Diffie–Hellman exchange with a
	// low-order peer key.
	ErrInvalidKeyAgreement = errors.New("handshake: key agreement failed (low-order key)")
)

// Header is what the initiator sends so that the responder can derive the
// same secret (PQXDH §3.3 "initial message", without the ciphertext, which
// the session layer appends as the first ratchet message).
type Header struct {
	Sender     identity.DeviceID
	Recipient  identity.DeviceID
	SignedID   prekey.ID
	OneTimeID  *prekey.ID // nil if the bundle had no one-time X25519 prekey
	PQID       prekey.ID
	Ephemeral  *primitives.X25519PublicKey
	Ciphertext []byte // ML-KEM-1024 ciphertext to the PQ prekey
}

// Initiation is the initiator's result.
type Initiation struct {
	SharedSecret [primitives.KeySize]byte
	AD           []byte
	// RatchetKey is the responder's signed prekey, the initiator's first
	// remote ratchet key (Double Ratchet §3.3 with X3DH).
	RatchetKey *primitives.X25519PublicKey
	Header     *Header
	// LastResort reports that the bundle's PQ prekey was the last-resort
	// key (recorded by the session layer).
	LastResort bool
}

// Response is the responder's result.
type Response struct {
	SharedSecret [primitives.KeySize]byte
	AD           []byte
	// RatchetKey is the private half of the signed prekey the initiator
	// used: the responder's first ratchet key.
	RatchetKey *primitives.X25519PrivateKey
	// Prekeys are the private prekeys used. Pass them to
	// prekey.Set.Consume once the first message has decrypted.
	Prekeys *prekey.Keys
}

// kdfPrefix is PQXDH's F: 32 0xFF bytes before the DH outputs, so that the
// KDF input never starts like an X25519 public key would (PQXDH §2.2, from
// XEdDSA's domain separation).
var kdfPrefix = [32]byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
}

// transcript hashes every public value both sides use (§4.3), so that the
// secret is bound to the identities, the exact prekeys (including the
// ML-KEM public key, closing the re-encapsulation gap the PQXDH analysis
// points out) and the ciphertext.
// fi and fr are the initiator's and the responder's fingerprints.
func transcript(fi, fr *[32]byte, signed prekey.X25519Public, oneTime *prekey.X25519Public, pq prekey.MLKEMPublic, eph *primitives.X25519PublicKey, ct []byte) [32]byte {
	var otk []byte
	if oneTime != nil {
		otk = append(idBytes(oneTime.ID), oneTime.Key.Bytes()...)
	}
	return primitives.Hash(primitives.LabelPQXDHTranscript,
		fi[:], fr[:],
		append(idBytes(signed.ID), signed.Key.Bytes()...),
		otk,
		append(append([]byte{byte(pq.Kind())}, idBytes(pq.ID)...), pq.Key.Bytes()...),
		eph.Bytes(),
		ct,
	)
}

func idBytes(id prekey.ID) []byte {
	return []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
}

// deriveSecret is PQXDH's KDF: HKDF-SHA256 over F || DH1 || DH2 || DH3
// [|| DH4] || SS with a zero salt and info = label || 0x00 || transcript.
func deriveSecret(dhs [][]byte, ss []byte, th [32]byte) (sk [primitives.KeySize]byte) {
	ikm := make([]byte, 0, 32+4*32+len(ss))
	ikm = append(ikm, kdfPrefix[:]...)
	for _, d := range dhs {
		ikm = append(ikm, d...)
	}
	ikm = append(ikm, ss...)
	out := primitives.HKDF(ikm, nil, primitives.LabelPQXDH, th[:], primitives.KeySize)
	copy(sk[:], out)
	clear(ikm)
	clear(out)
	return sk
}

// associatedData is PQXDH's AD = Encode(IK_A) || Encode(IK_B), with device
// fingerprints as the encoding: fi is the initiator's, fr the responder's.
func associatedData(fi, fr *[32]byte) []byte {
	ad := make([]byte, 0, ADSize)
	ad = append(ad, fi[:]...)
	return append(ad, fr[:]...)
}

// Initiate runs the initiator's side (PQXDH §3.3) against a bundle fetched
// for remote, whose keys the caller took from remote's verified device list.
func Initiate(self *identity.DeviceKeys, remote *identity.DevicePublic, b *prekey.Bundle) (*Initiation, error) {
	// 1. Verify every prekey signature under the device's signing key.
	if err := b.Verify(remote.Signing); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	// 2. Generate the ephemeral key and encapsulate to the PQ prekey.
	eph := primitives.GenerateX25519()
	ss, ct := b.PQ.Key.Encapsulate()
	// 3. DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
	//    DH4 = DH(EK_A, OPK_B).
	dhs, err := exchanges(
		pair{self.DH, b.Signed.Key},
		pair{eph, remote.DH},
		pair{eph, b.Signed.Key},
	)
	if err != nil {
		return nil, err
	}
	if b.OneTime != nil {
		d, err := exchanges(pair{eph, b.OneTime.Key})
		if err != nil {
			return nil, err
		}
		dhs = append(dhs, d...)
	}
	selfPub := self.Public()
	// Each fingerprint hashes a ~2 KB public key; compute them once.
	fi, fr := selfPub.Fingerprint(), remote.Fingerprint()
	th := transcript(&fi, &fr, b.Signed, b.OneTime, b.PQ, eph.Public(), ct)
	h := &Header{
		Sender:     selfPub.ID(),
		Recipient:  remote.ID(),
		SignedID:   b.Signed.ID,
		PQID:       b.PQ.ID,
		Ephemeral:  eph.Public(),
		Ciphertext: ct,
	}
	if b.OneTime != nil {
		id := b.OneTime.ID
		h.OneTimeID = &id
	}
	// The ephemeral private key goes out of scope here; Go cannot
	// guarantee it is zeroed, but nothing keeps a reference to it.
	return &Initiation{
		SharedSecret: deriveSecret(dhs, ss, th),
		AD:           associatedData(&fi, &fr),
		RatchetKey:   b.Signed.Key,
		Header:       h,
		LastResort:   b.PQ.LastResort,
	}, nil
}

// Respond runs the responder's side (PQXDH §3.4) for a header from remote,
// whose keys the caller took from remote's verified device list. It consumes
// nothing: the caller calls prekeys.Consume(resp.Prekeys) after the first
// message decrypts.
func Respond(self *identity.DeviceKeys, prekeys *prekey.Set, remote *identity.DevicePublic, h *Header) (*Response, error) {
	selfPub := self.Public()
	if h.Recipient != selfPub.ID() || h.Sender != remote.ID() {
		return nil, ErrWrongIdentity
	}
	keys, err := prekeys.Find(prekey.Claim{Signed: h.SignedID, OneTime: h.OneTimeID, PQ: h.PQID, Ephemeral: h.Ephemeral.Bytes()})
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	ss, err := keys.PQ.Decapsulate(h.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	dhs, err := exchanges(
		pair{keys.Signed, remote.DH},
		pair{self.DH, h.Ephemeral},
		pair{keys.Signed, h.Ephemeral},
	)
	if err != nil {
		return nil, err
	}
	if keys.OneTime != nil {
		d, err := exchanges(pair{keys.OneTime, h.Ephemeral})
		if err != nil {
			return nil, err
		}
		dhs = append(dhs, d...)
	}
	fi, fr := remote.Fingerprint(), selfPub.Fingerprint()
	th := transcript(&fi, &fr, keys.SignedPublic, keys.OneTimePublic, keys.PQPublic, h.Ephemeral, h.Ciphertext)
	return &Response{
		SharedSecret: deriveSecret(dhs, ss, th),
		AD:           associatedData(&fi, &fr),
		RatchetKey:   keys.Signed,
		Prekeys:      keys,
	}, nil
}

type pair struct {
	priv *primitives.X25519PrivateKey
	pub  *primitives.X25519PublicKey
}

func exchanges(ps ...pair) ([][]byte, error) {
	out := make([][]byte, 0, len(ps))
	for _, p := range ps {
		d, err := p.priv.ECDH(p.pub)
		if err != nil {
			return nil, ErrInvalidKeyAgreement
		}
		out = append(out, d)
	}
	return out, nil
}
