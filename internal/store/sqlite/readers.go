package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// rstmts are the reader pool's prepared statements for the queries every
// relay call makes: authenticating the caller (device), checking the
// devices a send addresses (deviceIDs) and reading a queue (fetch). Without
// them SQLite parses and plans the SQL on every call, which cost about a
// tenth of the relay's CPU (docs/performance.md). database/sql prepares a
// statement on each pooled connection the first time it runs there and
// keeps it.
type rstmts struct {
	device, deviceIDs, fetch *sql.Stmt
}

func (r *rstmts) prepare(db *sql.DB) error {
	ctx := context.Background()
	for _, p := range []struct {
		s **sql.Stmt
		q string
	}{
		{&r.device, "SELECT username, public, added, last_seen FROM devices WHERE id = ?"},
		// Two accounts at a time (a send's recipient and sender), from the
		// covering index devices_by_account.
		{&r.deviceIDs, "SELECT username, id FROM devices WHERE username IN (?, ?) ORDER BY username, id"},
		{&r.fetch, `SELECT seq, message_id, sender_username, sender_device, body, created, expires
			FROM envelopes WHERE device = ? AND seq > ? AND expires >= ? ORDER BY seq LIMIT ?`},
	} {
		s, err := db.PrepareContext(ctx, p.q)
		if err != nil {
			r.close()
			return fmt.Errorf("sqlite: prepare %q: %w", p.q, err)
		}
		*p.s = s
	}
	return nil
}

func (r *rstmts) close() {
	for _, s := range []*sql.Stmt{r.device, r.deviceIDs, r.fetch} {
		if s != nil {
			s.Close()
		}
	}
}
