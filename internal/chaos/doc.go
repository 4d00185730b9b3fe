// Package chaos holds the tests that kill parleyd nodes, and restart their
// database, under load from internal/loadgen, and check that every message
// whose send was acknowledged reaches every recipient device exactly once
// after the client's de-duplication (DESIGN §2 "Nothing lost", §9). It has
// no code outside its tests; they run the real parleyd binary on
// PostgreSQL and NATS, and skip without PostgreSQL (fail when
// PARLEY_REQUIRE_SERVICES=1), like the other PostgreSQL tests.
package chaos
