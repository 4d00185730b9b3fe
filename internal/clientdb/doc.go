// Package clientdb is the client's local store: one SQLite file that holds
// everything a device knows, encrypted at rest, as specified in
// docs/client.md (DESIGN §3: "a thief of a powered-off device …
// must not read anything without the passphrase").
//
// # Keys
//
// A random 32-byte storage key never leaves memory in the clear. Two
// subkeys are derived from it with HKDF-SHA256: the seal key, which
// encrypts every sensitive value with AES-256-GCM (primitives.Seal, random
// nonce), and the index key, which computes keyed hashes for lookups. The
// storage key is stored wrapped under a key derived from the passphrase
// with Argon2id (DefaultArgon2Params: m = 64 MiB, t = 3, p = 4, a 16-byte
// random salt), the parameters written next to it so they can be raised;
// Open rewraps a key it finds under a lower cost. A store without a
// passphrase (storage key in the clear) exists only when the caller asks
// for it with Options{Insecure: true}, and DB.Insecure reports it.
//
// # What is sealed
//
// Every sealed value's associated data binds its table, its column, its
// row's key and the row's clear columns, so a value cannot be moved to
// another row or column, and a clear column cannot be edited, without the
// read failing with ErrCorrupt.
//
//   - Sealed: the account key seed, device keys, prekey set, auth token and
//     its expiry, session records, message bodies (padded as on the wire),
//     settings values; and also every username (own, contacts,
//     conversations, senders), the server URL, device IDs, message IDs and
//     all signed device lists. Device lists are public on the server, but
//     they name their account: left in the clear they would give away the
//     contact list the usernames' sealing protects. Device and message IDs
//     are sealed because the server could map them back to accounts.
//   - Keyed hashes (HKDF under the index key, per domain) stand in for the
//     sealed values that rows are looked up by: usernames, remote device
//     IDs, setting names, and (sender, message ID) for de-duplication.
//     Without the key they reveal only which rows share a value; an
//     attacker cannot test a guessed username against them.
//   - Clear: what queries must sort or filter on — message sent and
//     received times, direction and delivery state, a contact's verified
//     flag and added time — plus the schema version and the wrapped key.
//     So the file shows, per (unnamed) conversation, how many messages
//     were exchanged and when: the same metadata the server sees
//     (DESIGN §3), which the store does not try to hide.
//
// # Not defended
//
// A thief who can write the file can delete rows or put back an older copy
// of the whole file (rolling back session state); sealing detects changed
// and moved values, not missing or replayed ones. SQLite may leave freed
// pages in the file; secure_delete zeroes them, but the filesystem may
// keep old blocks. Key material in memory is wiped on Close as far as Go
// allows, which is not a guarantee.
//
// # Transactions
//
// DB.Update runs one transaction: the SDK stores a received message, the
// session record that decrypted it and the prekey set without the used
// prekey in one commit, and acks the relay only after it. Tx.PutMessage
// de-duplicates by (sender, message ID), which makes the relay's
// at-least-once delivery exactly-once for the user.
package clientdb
