// Package primitives is Parley's one fixed cipher suite, as specified in
// docs/protocol.md §2. It and its subpackages are the only packages in the
// module that import crypto/* (and the PQ signature and edwards25519
// libraries); every other package sees these types and functions instead.
//
// The suite:
//
//   - X25519 (crypto/ecdh) for Diffie–Hellman;
//   - ML-KEM-768 and ML-KEM-1024 (crypto/mlkem, FIPS 203);
//   - HKDF-SHA256 (crypto/hkdf, RFC 5869) with the labels in labels.go;
//   - AES-256-GCM as the one AEAD;
//   - hybrid signatures Ed25519 + ML-DSA-65 (FIPS 204, circl), both must verify;
//   - plain Ed25519 (Ed25519Key, VerifyEd25519) only for the third-party
//     formats of key transparency: the log's standard checkpoint note line
//     and witness cosignatures (docs/transparency.md §7);
//   - SHA-256 for transcript and fingerprint hashes, and plain (SHA256) for
//     the key-transparency prefix tree and note key IDs;
//   - ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381) for key transparency, in the
//     subpackage vrf, on filippo.io/edwards25519.
//
// Secrets are compared in constant time (Equal). All randomness comes from
// crypto/rand, except in the known-answer vector generator, which installs a
// deterministic source through UnsafeDeterministicEntropy.
package primitives
