// Package loadgen drives parleyd with many virtual devices and measures
// what it sees (docs/performance.md, "Load"). It is the engine of
// cmd/parley-load and of the chaos tests.
//
// A virtual device is real as far as the server can tell: it has its own
// account key, device keys and signed prekeys (internal/identity,
// internal/prekey), registers with a signed device list, authenticates by
// signing a challenge, sends with the server's Send, holds a delivery
// stream and acknowledges what it receives. What it does not do is the
// Double Ratchet: an envelope's body is opaque random bytes of the size a
// real ciphertext would have, around a small header (payload.go) that
// carries the message id and the time of sending. The server only ever
// sees ciphertext and cannot tell the difference; running the ratchet in
// the load tool would measure the load tool's CPU (on the same machine,
// the server's), not the server.
//
// Every message carries its id in its payload, so a receiver
// de-duplicates redeliveries by id as a real client does, and the engine
// checks at the end that every message whose send the server
// acknowledged reached every one of its recipient devices (Report.Lost).
package loadgen
