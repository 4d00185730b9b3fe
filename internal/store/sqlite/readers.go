package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// rstmts are the reader pool's prepared statements for the queries every
// relay call makes: authenticating the caller (device), checking the
// devices a send addresses (devices) and reading a queue (fetch). Without
// them SQLite parses and plans the SQL on every call, which cost about a
// tenth of the relay's CPU (docs/performance.md). database/sql prepares a
// statement on each pooled connection the first time it runs there and
// keeps it.
type rstmts struct {
	device, devices, fetch *sql.Stmt
}

func (r *rstmts) prepare(db *sql.DB) error {
	ctx := context.Background()
	for _, p := range []struct {
		s **sql.Stmt
		q string
	}{
		{&r.device, "SELECT username, public, added, last_seen FROM devices WHERE id = ?"},
		{&r.devices, "SELECT id, public, added, last_seen FROM devices WHERE username = ? ORDER BY id"},
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
	for _, s := range []*sql.Stmt{r.device, r.devices, r.fetch} {
		if s != nil {
			s.Close()
		}
	}
}
