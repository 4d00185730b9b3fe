// Package sqlite is the embedded SQLite engine of internal/store.
package sqlite

import _ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
