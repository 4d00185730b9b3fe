// Package schema loads numbered schema migrations from an embedded
// directory, for the server's databases (internal/store/sqlite,
// internal/store/postgres) and the client's (internal/clientdb). Each
// applies them its own way; all need the same rules for what a migration
// set is.
package schema

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered schema change.
type Migration struct {
	Version int    // 1, 2, ...
	Name    string // file name, NNNN_name.sql
	SQL     string
}

// Load reads dir in fsys: files named NNNN_name.sql, numbered 1..n without
// gaps, returned in order. A released migration is never edited: a change
// is a new file. Every error here is a build mistake, reported as an
// internal error.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		if !ok || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("internal error: migration %q is not named NNNN_name.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("internal error: migration %q has no positive number", name)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("internal error: migrations are not numbered 1..n (found %s at position %d)", m.Name, i+1)
		}
	}
	return ms, nil
}
