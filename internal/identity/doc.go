// Package identity implements Parley's account and device keys, signed
// device lists and safety numbers as specified in docs/protocol.md §3.
//
// An account has one hybrid Ed25519 + ML-DSA-65 account key (§3.1). Its only
// job is to sign the account's device list: the statement of which devices
// belong to the account (§3.3). Every device has its own hybrid signing key
// and X25519 identity key (§3.2); a device is named by its DeviceID, a prefix
// of the hash of its public keys.
//
// Device lists form a hash chain: version n+1 carries the hash of version n.
// SignedDeviceList.Verify checks one list against the last one the caller
// trusted; VerifyChain checks a run of consecutive versions. Failures that
// mean someone is lying (a bad signature, a replayed older list, a broken
// chain, a swapped account key) all match ErrSecurity, so that callers can
// tell them apart from malformed input (wire.ErrMalformed) and from network
// trouble.
//
// Safety numbers (§3.4) let two people compare account keys out of band; they
// follow Signal's numeric fingerprint design.
package identity
