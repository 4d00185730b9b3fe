package clientdb

import (
	"context"
	"errors"
)

const (
	tableSettings = "settings"
	colValue      = "value"
)

func getSetting(ctx context.Context, q querier, k *keys, name string) ([]byte, error) {
	h := k.setting(name)
	var sealed []byte
	if err := q.QueryRowContext(ctx, "SELECT value FROM settings WHERE name_hash = ?", h).Scan(&sealed); err != nil {
		return nil, notFound("setting", err)
	}
	return k.open(sealed, tableSettings, colValue, h)
}

func setSetting(ctx context.Context, q querier, k *keys, name string, value []byte) error {
	if name == "" {
		return errors.New("clientdb: empty setting name")
	}
	h := k.setting(name)
	_, err := q.ExecContext(ctx, `INSERT INTO settings (name_hash, value) VALUES (?, ?)
		ON CONFLICT (name_hash) DO UPDATE SET value = excluded.value`,
		h, k.seal(value, tableSettings, colValue, h))
	if err != nil {
		return sqlError("store setting", err)
	}
	return nil
}

func deleteSetting(ctx context.Context, q querier, k *keys, name string) error {
	if _, err := q.ExecContext(ctx, "DELETE FROM settings WHERE name_hash = ?", k.setting(name)); err != nil {
		return sqlError("delete setting", err)
	}
	return nil
}
