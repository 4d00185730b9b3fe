// Package verify is the client side of Parley's key transparency, as
// specified in docs/transparency.md §8–§9: it checks heads (checkpoint
// signatures, witness cosignatures, freshness, consistency with the last
// verified checkpoint), search, fixed-version and monitor proofs, compares
// checkpoints with peers, and audits the whole log.
//
// Every way the server or the log can misbehave is a *Error matching
// ErrSecurity, with a Kind saying which; none is a network error. The
// package imports no server code: only the shared encodings and tree of
// internal/kt.
package verify
