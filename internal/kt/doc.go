// Package kt holds the shared parts of Parley's key transparency, as
// specified in docs/transparency.md: the encodings (VRF input, commitment,
// log entry), the append-only prefix tree of draft-ietf-keytrans-protocol
// §3.3 and §10.9 with its batched proofs (§11.2), the RFC 6962 log of epoch
// entries, C2SP checkpoints and their signatures, and the search, fixed-
// version and monitor proofs a server builds and a client checks.
//
// The package does no storage and no networking. A server keeps, per epoch,
// the list of leaves inserted (Epoch) and the log entry; State rebuilds
// everything from those. The client-side checks live in internal/kt/verify,
// which imports nothing from the server.
package kt
