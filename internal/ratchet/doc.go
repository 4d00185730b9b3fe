// Package ratchet implements the Double Ratchet with ML-KEM re-keying as
// specified in docs/protocol.md §5.
//
// The Double Ratchet part follows Perrin and Marlinspike, "The Double
// Ratchet Algorithm", revision 1, 2016 (https://signal.org/docs/specifications/doubleratchet/):
// an X25519 DH ratchet, symmetric KDF chains and a bounded store of skipped
// message keys. Parley's changes:
//
//   - The chain KDF yields a message-key seed, not the AEAD key; the key is
//     MessageKey(seed, salt) with a fresh random salt in every header, so a
//     party restored from an old snapshot never reuses an AEAD key, and the
//     skipped-key store keeps seeds (§5.3).
//   - The AEAD associated data is the session AD from the handshake
//     followed by the exact header bytes.
//   - A PQ ratchet mixes ML-KEM-768 shared secrets into KDF_RK at DH
//     ratchet steps (pq.go, §5.4).
//   - Decrypt is transactional: on any error the state is unchanged.
//
// The files follow the protocol's concepts: constants.go (specification
// constants and implementation limits), state.go (the state and its
// initialisation, spec §3.2–3.3), ratchet.go (encrypt, decrypt and the DH
// ratchet step, spec §3.4–3.5), pq.go (the PQ ratchet), message.go (the wire
// format) and serialize.go (the state encoding).
package ratchet
