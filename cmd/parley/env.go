package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"golang.org/x/term"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/internal/backup"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/provision"
)

// Environment variables (docs/cli.md).
const (
	envHome       = "PARLEY_HOME"
	envPassphrase = "PARLEY_PASSPHRASE"
	envServer     = "PARLEY_SERVER"
)

// app holds what every command shares: the streams, the global flags and
// the environment.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) (string, bool)

	home string // --home
	json bool   // --json

	// exitCode is returned when a command succeeds but has something to
	// flag (receive saw a security event).
	exitCode int

	// alerts are key-transparency alerts from the check the SDK runs when
	// it opens the home (client.Options.OnAlert); run prints them when the
	// command ends, unless the command printed one itself (ktAlertShown).
	alertMu      sync.Mutex
	alerts       []client.Event
	ktAlertShown bool
}

// noteAlert is the CLI's client.Options.OnAlert. It runs on the SDK's
// goroutine, so it only records.
func (a *app) noteAlert(e client.Event) {
	a.alertMu.Lock()
	defer a.alertMu.Unlock()
	a.alerts = append(a.alerts, e)
}

// flushAlerts prints the alerts noted at open that the command did not
// already show, and makes the exit code say so.
func (a *app) flushAlerts() {
	a.alertMu.Lock()
	alerts, shown := a.alerts, a.ktAlertShown
	a.alerts = nil
	a.alertMu.Unlock()
	if shown {
		return
	}
	for _, e := range alerts {
		a.warnEvent(e)
	}
}

// homeDir resolves --home, then PARLEY_HOME, then ~/.parley.
func (a *app) homeDir() (string, error) {
	if a.home != "" {
		return a.home, nil
	}
	if h, ok := a.getenv(envHome); ok && h != "" {
		return h, nil
	}
	dir, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory: %w (set --home or %s)", err, envHome)
	}
	return filepath.Join(dir, ".parley"), nil
}

// errNoPassphrase is returned when there is no way to ask for one.
var errNoPassphrase = errors.New("no passphrase: " + envPassphrase + " is not set and standard input is not a terminal")

// terminal returns the file descriptor of stdin if it is a terminal.
func (a *app) terminal() (int, bool) {
	f, ok := a.stdin.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// envPassphrase returns PARLEY_PASSPHRASE if it is set and not empty.
func (a *app) envPassphrase() ([]byte, bool) {
	if p, ok := a.getenv(envPassphrase); ok && p != "" {
		return []byte(p), true
	}
	return nil, false
}

// prompt reads a passphrase from the terminal without echo.
func (a *app) prompt(what string) ([]byte, error) {
	fd, ok := a.terminal()
	if !ok {
		return nil, errNoPassphrase
	}
	fmt.Fprintf(a.stderr, "%s: ", what)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return p, nil
}

// newPassphrase gets the passphrase of a new store: from the environment,
// or typed twice.
func (a *app) newPassphrase(home string) ([]byte, error) {
	if p, ok := a.envPassphrase(); ok {
		return p, nil
	}
	p, err := a.prompt("new passphrase for " + home)
	if err != nil {
		return nil, err
	}
	again, err := a.prompt("repeat the passphrase")
	if err != nil {
		return nil, err
	}
	if string(p) != string(again) {
		return nil, errors.New("the passphrases do not match")
	}
	return p, nil
}

// open opens the home directory's client, asking for the passphrase only
// if the store has one.
func (a *app) open(ctx context.Context) (*client.Client, error) {
	home, err := a.homeDir()
	if err != nil {
		return nil, err
	}
	opts := client.Options{OnAlert: a.noteAlert}
	if p, ok := a.envPassphrase(); ok {
		opts.Passphrase = p
		return client.Open(ctx, home, opts)
	}
	// The SDK cannot yet say whether a store is insecure before it is
	// opened, so try without a passphrase first (an insecure store opens;
	// a protected one costs one Argon2id run to refuse) and only then ask.
	c, err := client.Open(ctx, home, opts)
	if !errors.Is(err, client.ErrWrongPassphrase) {
		return c, err
	}
	if opts.Passphrase, err = a.prompt("passphrase for " + home); err != nil {
		return nil, err
	}
	return client.Open(ctx, home, opts)
}

// describe turns an error into the message, the hints and the exit code
// that report prints.
func describe(err error, a *app) (msg string, hints []string, code int) {
	msg, code = errorText(err), exitError
	var ue *usageError
	var se *client.ServerError
	var ce *provision.CodeError
	home, _ := a.homeDir()
	switch {
	case errors.As(err, &ue):
		code = exitUsage
	case errors.Is(err, provision.ErrSecurity):
		// A link: the offer was substituted, or the transfer tampered with.
		msg = "SECURITY ERROR: " + msg
		code = exitSecurity
		hints = []string{
			"the server may be lying: the link code's offer or the transfer from the other device does not verify",
			"nothing was accepted from it; start again with 'parley device link' on the new device, and compare the confirmation strings",
		}
	case errors.Is(err, client.ErrSecurity), errors.Is(err, identity.ErrSecurity):
		// Upper case, against the house style, on purpose: this line must
		// not read like a network hiccup.
		msg = "SECURITY ERROR: " + strings.TrimPrefix(msg, "security error: ")
		code = exitSecurity
		hints = []string{
			"the server may be lying: it sent keys or a device list that do not verify",
			"nothing was accepted from it; do not retry blindly: compare safety numbers with the other person over a channel you trust (parley safety-number USERNAME)",
		}
	case errors.Is(err, client.ErrVerifiedKeyChanged):
		msg = "WARNING: " + msg
		code = exitSecurity
		hints = []string{
			"the safety number you compared with this contact no longer holds: their account key is new",
			"nothing was sent; compare the new number with them in person or over a channel you trust, then run 'parley verify USERNAME' again",
		}
	case errors.Is(err, errNotVerified):
		hints = []string{"if the numbers differ, someone may be in the middle: do not trust this contact's key; in scripts, give --yes"}
	case errors.As(err, &ce):
		msg = "invalid link code: " + ce.Reason
		hints = []string{"type the code exactly as 'parley device link' shows it on the new device"}
	case errors.Is(err, provision.ErrStaleOffer):
		msg = "the link code has expired"
		hints = []string{"run 'parley device link' on the new device again for a new code"}
	case errors.Is(err, errConfirmMismatch):
		hints = []string{
			"check that the code is the one your new device shows; if it is, someone may be trying to add their device to your account: do not approve it",
			"nothing was added",
		}
	case errors.Is(err, errNotApproved):
		hints = []string{"in scripts, give --confirm STRING (the confirmation the new device shows) or --yes"}
	case errors.Is(err, errNoOffer):
		msg = errNoOffer.Error() // the server's wording follows it
		hints = []string{"the code was used or has expired; run 'parley device link' on the new device again for a new code"}
	case errors.Is(err, errCodeExpired):
		msg = errCodeExpired.Error()
		hints = []string{"run 'parley device link' again, and approve the new code on the other device within 10 minutes"}
	case errors.Is(err, errLinkCancelled):
		hints = []string{fmt.Sprintf("nothing was set up in %s; if the other device approved already, this device is in the account's device list: remove it there", home)}
	case errors.Is(err, errNotConfirmed):
		hints = []string{"in scripts, give --yes"}
	case errors.Is(err, errNoSuchDevice), errors.Is(err, client.ErrNoSuchDevice):
		hints = []string{"see 'parley devices' for this account's devices"}
	case errors.Is(err, errAmbiguousDevice):
		hints = []string{"give the device id, or more of it"}
	case errors.Is(err, client.ErrLastDevice):
		hints = []string{"to delete the account with its last device: parley account delete"}
	case errors.Is(err, client.ErrDeviceRemoved):
		msg = "this device was removed from its account; its keys and history here are wiped"
		hints = []string{"to use this home again, link it to the account again: parley device link --server URL USERNAME"}
	case errors.Is(err, client.ErrAccountDeleted):
		hints = []string{fmt.Sprintf("another device deleted the account; its history is still in %s: delete the directory to discard it", home)}
	case errors.Is(err, client.ErrNotRegistered):
		msg = "no parley account in " + home
		hints = []string{fmt.Sprintf("run 'parley register --server URL USERNAME' to create one, or choose another home with --home or %s", envHome)}
	case errors.Is(err, errNoPassphrase):
		hints = []string{fmt.Sprintf("set %s, or run parley in a terminal to be asked", envPassphrase)}
	case errors.Is(err, client.ErrWrongPassphrase):
		msg = "wrong passphrase for " + home
		hints = []string{fmt.Sprintf("check %s, or type the passphrase this home was registered with", envPassphrase)}
	case errors.Is(err, client.ErrRecoveryKeyTypo):
		hints = []string{"check the recovery key as you wrote it down: the group named above does not match its check characters"}
	case errors.Is(err, client.ErrWrongRecoveryKey):
		hints = []string{"this recovery key does not open the backup; use the newest key you were shown (parley backup rotate replaces it)"}
	case errors.Is(err, client.ErrNoBackup):
		hints = []string{"check the recovery key and the server; a rotated-out key, or one from before backups were turned off, opens nothing"}
	case errors.Is(err, client.ErrBackupOtherAccount):
		hints = []string{"this recovery key belongs to another account: give the username whose key it is", "nothing was restored"}
	case errors.Is(err, backup.ErrTampered), errors.Is(err, backup.ErrTruncated):
		hints = []string{"the backup on the server is damaged or was altered; nothing was restored", "restore from another copy (parley backup create --output FILE keeps one), or from a device that still has the account"}
	case errors.Is(err, client.ErrBackupsOff):
		hints = []string{"turn backups on with: parley backup create"}
	case errors.Is(err, client.ErrNoShare):
		hints = []string{"only contacts the account owner chose (parley recovery contacts set) hold a share; ask them to check 'parley backup status' on another device"}
	case errors.Is(err, client.ErrRecoveryEnded):
		hints = []string{"run 'parley recovery start' again for a new code, and give it to your contacts within 10 minutes"}
	case errors.Is(err, errNoRecoveryKey):
		hints = []string{fmt.Sprintf("set %s, or run parley in a terminal to be asked", envRecoveryKey)}
	case errors.Is(err, errKeyNotWritten):
		hints = []string{"run 'parley backup create' again and write the key down before answering yes (--yes in scripts)"}
	case errors.Is(err, errShareNotSent):
		hints = []string{"in scripts, give --confirm STRING (the confirmation the recovering device shows) or --yes"}
	case errors.Is(err, client.ErrNoSuchUser):
		hints = []string{"check the spelling; usernames are the same on every device of the server"}
	case errors.Is(err, client.ErrInvalidUsername):
		hints = []string{fmt.Sprintf("a username has %d to %d characters a-z, 0-9, '.', '_' and '-', starts with a letter and ends with a letter or digit", client.MinUsernameLength, client.MaxUsernameLength)}
	case errors.Is(err, fs.ErrExist):
		hints = []string{fmt.Sprintf("%s already holds an account; choose another home with --home or %s", home, envHome)}
	case errors.Is(err, client.ErrUsernameTaken):
		hints = []string{"someone already has this username on this server; choose another"}
	case errors.As(err, &se) && se.Code == connect.CodeUnavailable, errors.As(err, &se) && se.Code == connect.CodeUnknown:
		hints = []string{"check the server URL and that parleyd is running"}
	}
	return msg, hints, code
}
