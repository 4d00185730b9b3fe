package clientdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Identity is this device's own account: what registration produced. Every
// field but TokenExpiry is sealed at rest; the device list too, because it
// names the account.
type Identity struct {
	Username       string
	ServerURL      string
	AccountKeySeed []byte    // identity.AccountKey.Seed
	DeviceKeys     []byte    // identity.DeviceKeys.Marshal
	Prekeys        []byte    // prekey.Set.Marshal
	DeviceList     []byte    // the account's current identity.SignedDeviceList.Marshal
	Token          string    // the auth token, empty when there is none
	TokenExpiry    time.Time // sealed together with Token
}

// Identity columns. The row key is the constant 1 (the table has one row).
const (
	tableIdentity  = "identity"
	colUsername    = "username"
	colServerURL   = "server_url"
	colAccountSeed = "account_key_seed"
	colDeviceKeys  = "device_keys"
	colPrekeys     = "prekeys"
	colDeviceList  = "device_list"
	colToken       = "token"
	identityRowKey = 1
	identitySelect = "SELECT username, server_url, account_key_seed, device_keys, prekeys, device_list, token FROM identity WHERE id = 1"
)

var identityRow = u64(identityRowKey)

// encodeToken is the sealed token column: expiry (int64 Unix ns,
// big-endian) || token.
func encodeToken(token string, expiry time.Time) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(unixNano(expiry)))
	return append(b, token...)
}

func decodeToken(b []byte) (string, time.Time, error) {
	if len(b) < 8 {
		return "", time.Time{}, fmt.Errorf("%w: identity.token too short", ErrCorrupt)
	}
	return string(b[8:]), fromUnixNano(int64(binary.BigEndian.Uint64(b))), nil
}

func getIdentity(ctx context.Context, q querier, k *keys) (*Identity, error) {
	var sealed [7][]byte
	err := q.QueryRowContext(ctx, identitySelect).Scan(&sealed[0], &sealed[1], &sealed[2], &sealed[3], &sealed[4], &sealed[5], &sealed[6])
	if err != nil {
		return nil, notFound("identity", err)
	}
	cols := [7]string{colUsername, colServerURL, colAccountSeed, colDeviceKeys, colPrekeys, colDeviceList, colToken}
	var plain [7][]byte
	for i, c := range cols {
		if plain[i], err = k.open(sealed[i], tableIdentity, c, identityRow); err != nil {
			return nil, err
		}
	}
	id := &Identity{
		Username:       string(plain[0]),
		ServerURL:      string(plain[1]),
		AccountKeySeed: plain[2],
		DeviceKeys:     plain[3],
		Prekeys:        plain[4],
		DeviceList:     plain[5],
	}
	if id.Token, id.TokenExpiry, err = decodeToken(plain[6]); err != nil {
		return nil, err
	}
	return id, nil
}

func putIdentity(ctx context.Context, q querier, k *keys, id *Identity) error {
	if id == nil || id.Username == "" {
		return errors.New("clientdb: identity without a username")
	}
	if err := checkTime("token expiry", id.TokenExpiry); err != nil {
		return err
	}
	s := func(col string, v []byte) []byte { return k.seal(v, tableIdentity, col, identityRow) }
	_, err := q.ExecContext(ctx, `INSERT INTO identity (id, username, server_url, account_key_seed, device_keys, prekeys, device_list, token)
		VALUES (1, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET username = excluded.username, server_url = excluded.server_url,
			account_key_seed = excluded.account_key_seed, device_keys = excluded.device_keys,
			prekeys = excluded.prekeys, device_list = excluded.device_list, token = excluded.token`,
		s(colUsername, []byte(id.Username)),
		s(colServerURL, []byte(id.ServerURL)),
		s(colAccountSeed, id.AccountKeySeed),
		s(colDeviceKeys, id.DeviceKeys),
		s(colPrekeys, id.Prekeys),
		s(colDeviceList, id.DeviceList),
		s(colToken, encodeToken(id.Token, id.TokenExpiry)))
	if err != nil {
		return sqlError("store identity", err)
	}
	return nil
}

// updateIdentity replaces one sealed column of the identity row. col is
// one of the constants above, never caller input.
func updateIdentity(ctx context.Context, q querier, k *keys, col string, plain []byte) error {
	res, err := q.ExecContext(ctx, "UPDATE identity SET "+col+" = ? WHERE id = 1", k.seal(plain, tableIdentity, col, identityRow))
	if err != nil {
		return sqlError("store identity."+col, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return sqlError("store identity."+col, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: identity (store it before its %s)", ErrNotFound, col)
	}
	return nil
}
