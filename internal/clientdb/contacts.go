package clientdb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Contact is a person this user talks to.
type Contact struct {
	Username string
	// DeviceList is the last signed device list (SignedDeviceList.Marshal)
	// this device verified for the contact. It is public on the server,
	// but it names the account, so it is sealed like the username.
	DeviceList []byte
	// Verified records that the user compared safety numbers for the
	// account key in DeviceList.
	Verified bool
	Added    time.Time
}

const (
	tableContacts = "contacts"
	colContactsUN = "username"
	colContactsDL = "device_list"
)

// contactBind binds a contact's sealed columns to its row key and its clear
// columns: flipping verified in the file makes the row unreadable rather
// than turning an unverified contact into a verified one.
func contactBind(nameHash []byte, verified bool, added int64) [][]byte {
	return [][]byte{nameHash, boolByte(verified), u64(uint64(added))}
}

func openContact(k *keys, nameHash []byte, verified int64, added int64, un, dl []byte) (*Contact, error) {
	if verified != 0 && verified != 1 {
		return nil, fmt.Errorf("%w: contacts.verified", ErrCorrupt)
	}
	bind := contactBind(nameHash, verified == 1, added)
	name, err := k.open(un, tableContacts, colContactsUN, bind...)
	if err != nil {
		return nil, err
	}
	list, err := k.open(dl, tableContacts, colContactsDL, bind...)
	if err != nil {
		return nil, err
	}
	return &Contact{Username: string(name), DeviceList: list, Verified: verified == 1, Added: fromUnixNano(added)}, nil
}

func getContact(ctx context.Context, q querier, k *keys, username string) (*Contact, error) {
	h := k.username(username)
	var verified, added int64
	var un, dl []byte
	err := q.QueryRowContext(ctx, "SELECT verified, added, username, device_list FROM contacts WHERE name_hash = ?", h).
		Scan(&verified, &added, &un, &dl)
	if err != nil {
		return nil, notFound("contact", err)
	}
	c, err := openContact(k, h, verified, added, un, dl)
	if err != nil {
		return nil, err
	}
	if c.Username != username {
		// The keyed hash is bound in; only a bug gets here.
		return nil, fmt.Errorf("%w: contact name does not match its key", ErrCorrupt)
	}
	return c, nil
}

func listContacts(ctx context.Context, q querier, k *keys) ([]Contact, error) {
	rows, err := q.QueryContext(ctx, "SELECT name_hash, verified, added, username, device_list FROM contacts")
	if err != nil {
		return nil, sqlError("read contacts", err)
	}
	defer rows.Close()
	var cs []Contact
	for rows.Next() {
		var h, un, dl []byte
		var verified, added int64
		if err := rows.Scan(&h, &verified, &added, &un, &dl); err != nil {
			return nil, sqlError("read contacts", err)
		}
		c, err := openContact(k, h, verified, added, un, dl)
		if err != nil {
			return nil, err
		}
		cs = append(cs, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, sqlError("read contacts", err)
	}
	// Sorted here, not in SQL: the clear columns hold only hashes.
	sort.Slice(cs, func(i, j int) bool { return cs[i].Username < cs[j].Username })
	return cs, nil
}

func putContact(ctx context.Context, q querier, k *keys, c *Contact) error {
	if c == nil || c.Username == "" {
		return errors.New("clientdb: contact without a username")
	}
	if err := checkTime("contact added time", c.Added); err != nil {
		return err
	}
	h := k.username(c.Username)
	added := unixNano(c.Added)
	bind := contactBind(h, c.Verified, added)
	_, err := q.ExecContext(ctx, `INSERT INTO contacts (name_hash, verified, added, username, device_list) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name_hash) DO UPDATE SET verified = excluded.verified, added = excluded.added,
			username = excluded.username, device_list = excluded.device_list`,
		h, boolInt(c.Verified), added,
		k.seal([]byte(c.Username), tableContacts, colContactsUN, bind...),
		k.seal(c.DeviceList, tableContacts, colContactsDL, bind...))
	if err != nil {
		return sqlError("store contact", err)
	}
	return nil
}

func deleteContact(ctx context.Context, q querier, k *keys, username string) error {
	if _, err := q.ExecContext(ctx, "DELETE FROM contacts WHERE name_hash = ?", k.username(username)); err != nil {
		return sqlError("delete contact", err)
	}
	return nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
