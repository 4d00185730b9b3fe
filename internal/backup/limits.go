package backup

import (
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/wire"
)

// Implementation limits: the format has room for more, but writers and
// readers refuse anything beyond them (a *LimitError, ErrTooLarge).
const (
	// MaxNameSize bounds usernames: the account's, a contact's, a
	// message's conversation and sender (as device lists do).
	MaxNameSize = identity.MaxAccountNameSize
	// MaxServerURLSize bounds the server URL in the header.
	MaxServerURLSize = 2048
	// MaxSettingNameSize bounds a setting's name.
	MaxSettingNameSize = 64
	// MaxSettingValueSize bounds a setting's value.
	MaxSettingValueSize = 64 << 10
	// MaxDeviceListSize bounds a contact's signed device list. A list of
	// identity.MaxDevices devices is about 40 KB.
	MaxDeviceListSize = 128 << 10
	// MaxBodySize bounds a message body, as for sending.
	MaxBodySize = wire.MaxPlaintextSize
	// MaxRecordSize bounds the body of any record; every record within the
	// limits above fits.
	MaxRecordSize = 1 << 20

	// MaxContacts bounds the contact records of one archive.
	MaxContacts = 1 << 16
	// MaxSettings bounds the setting records of one archive.
	MaxSettings = 1 << 10
	// MaxMessages bounds the message records of one archive (67 million:
	// decades of heavy use).
	MaxMessages = 1 << 26
)
