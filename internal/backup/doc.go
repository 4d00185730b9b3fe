// Package backup implements Parley's backups as specified in
// docs/backup.md: the recovery key and its written form, what it derives,
// the archive format inside a standard age file, and recovery shares for
// trusted contacts. It does no networking and no storage.
//
// Making a backup:
//
//	k := backup.NewRecoveryKey()           // show k.String() once
//	w, err := backup.NewWriter(dst, k, backup.Header{Username: ..., Server: ..., AccountKey: ...})
//	w.AddContact(...); w.AddSetting(...); w.AddMessage(&m) ...
//	err = w.Close()                        // upload dst under k.Locator()
//
// Restoring:
//
//	k, err := backup.ParseRecoveryKey(typed) // *RecoveryKeyError names the group with a typo
//	r, err := backup.NewReader(src, k)       // src fetched by k.Locator()
//	defer r.Close()                          // src is no longer read after Close
//	h := r.Header()                          // check h.Username and h.AccountKey against the directory
//	for { rec, err := r.Next(); ... }        // stage records; commit only after io.EOF
//
// The user can also decrypt a backup with the standard age tool and the
// identity k.AgeIdentityString(). An archive never contains ratchet or
// session state (docs/backup.md §5).
package backup
