package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"connectrpc.com/connect"
	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/provision"
)

// groupCommand is a command that only holds subcommands: without one, or
// with an unknown one, it is a usage error (exit 2), as for the root.
func groupCommand(use, short, long string, sub ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) == 0 {
				return nil
			}
			if s := cmd.SuggestionsFor(a[0]); len(s) > 0 {
				return usagef("unknown command %q for %q (did you mean %q?)", a[0], cmd.CommandPath(), s[0])
			}
			return usagef("unknown command %q for %q", a[0], cmd.CommandPath())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Usage()
			return usagef("no command given")
		},
	}
	cmd.SuggestionsMinimumDistance = 2
	cmd.AddCommand(sub...)
	return cmd
}

func (a *app) deviceCommand() *cobra.Command {
	return groupCommand("device", "Link a new device to this account, or approve one",
		`Device links a new device to the account (run 'parley device link' on the
new device, 'parley device approve CODE' on any device already in the
account). 'parley devices' lists the account's devices.`,
		a.linkCommand(),
		a.approveCommand(),
	)
}

// Errors of linking, and what to do about them (describe).
var (
	errConfirmMismatch = errors.New("confirmation strings differ; the code may not be from your device")
	errNotApproved     = errors.New("not approved: the new device was not added")
	errLinkCancelled   = errors.New("linking cancelled")
	errCodeExpired     = errors.New("the link code expired before a device approved it")
	errNoOffer         = errors.New("no new device is waiting with this code")
)

func (a *app) linkCommand() *cobra.Command {
	var server, deviceName string
	var insecure, noQR bool
	cmd := &cobra.Command{
		Use:   "link [--server URL] USERNAME",
		Short: "Link this device, with a new home, to an existing account",
		Long: `Link makes this device a new device of the account USERNAME, in a new home
directory (as register does, with the same passphrase rules). It shows a
one-time code, a QR code of it and a confirmation string; on any device
already in the account, run 'parley device approve CODE' and check that it
shows the same confirmation string. That device adds this one to the
account's device list and sends it the account key, the contacts and the
whole history, end to end encrypted, through a one-time mailbox on the
server. Link waits for it (a code expires after 10 minutes), then prints
what register prints.

With --json it prints one line as soon as the code is ready (status
"waiting": the code, the QR payload, the confirmation string and this
device's name) and one when the device is linked (status "linked").`,
		Example: `  parley device link --server https://parley.example alice
  PARLEY_HOME=~/.parley-tablet parley device link --device-name tablet alice`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			home, err := a.homeDir()
			if err != nil {
				return err
			}
			if server, err = a.serverURL(server); err != nil {
				return err
			}
			name, err := client.NormalizeUsername(argv[0])
			if err != nil {
				return err
			}
			// The SDK creates the home only when the transfer arrives: find
			// an occupied home now, not after the other device approved.
			db := filepath.Join(home, client.DatabaseFile)
			if _, err := os.Stat(db); err == nil {
				return &fs.PathError{Op: "link", Path: db, Err: fs.ErrExist}
			}
			opts := client.Options{DeviceName: deviceName}
			if opts.Passphrase, err = a.newStorePassphrase(home, insecure); err != nil {
				return err
			}
			opts.Insecure = insecure

			p, err := client.StartLink(ctx, home, server, name, opts)
			if err != nil {
				return err
			}
			if err := a.printOffer(p, name, noQR); err != nil {
				return err
			}

			bar := a.newProgressBar()
			var got [2]int // contacts, messages
			c, err := p.Wait(ctx, func(pr client.Progress) {
				bar.update(pr)
				if pr.Phase == "contacts" {
					got[0] = pr.Done
				} else {
					got[1] = pr.Done
				}
			})
			bar.finish()
			var se *client.ServerError
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return errLinkCancelled
			case errors.As(err, &se) && se.Code == connect.CodeNotFound:
				// The server dropped the mailbox: no approval in time.
				return fmt.Errorf("%w: %w", errCodeExpired, err)
			default:
				return err
			}
			defer c.Close()
			if insecure {
				fmt.Fprintf(a.stderr, "parley: warning: the store in %s is not encrypted: anyone who can read it can read your messages and keys\n", home)
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Status   string `json:"status"`
					Username string `json:"username"`
					Device   string `json:"device"`
					Server   string `json:"server"`
					Home     string `json:"home"`
					Insecure bool   `json:"insecure"`
					Contacts int    `json:"contacts"`
					Messages int    `json:"messages"`
				}{"linked", c.Username(), c.DeviceID().String(), c.Server(), home, c.Insecure(), got[0], got[1]})
			}
			fmt.Fprintf(a.stdout, "linked: received %s and %s\n\n", plural(got[0], "contact"), plural(got[1], "message"))
			return a.printIdentity(c, home)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "server URL (default $"+envServer+")")
	f.StringVar(&deviceName, "device-name", "", "name of this device in the account's device list (default the host name)")
	f.BoolVar(&insecure, "insecure", false, "do not encrypt the local store (anyone who copies it can read it)")
	f.BoolVar(&noQR, "no-qr", false, "do not draw the QR code")
	return cmd
}

// printOffer shows what the person needs on the other device.
func (a *app) printOffer(p *client.PendingLink, name string, noQR bool) error {
	if a.json {
		return writeJSON(a.stdout, struct {
			Status       string `json:"status"`
			Username     string `json:"username"`
			Code         string `json:"code"`
			QR           string `json:"qr"`
			Confirmation string `json:"confirmation"`
			DeviceName   string `json:"device_name"`
		}{"waiting", name, p.Code, p.QR, p.Confirmation, p.DeviceName})
	}
	fmt.Fprintf(a.stdout, "to link this device to %s, run on a device of %s:\n\n    parley device approve %s\n\n", name, name, p.Code)
	if !noQR {
		drawQR(a, p.QR)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "confirmation:\t%s\n", p.Confirmation)
	fmt.Fprintf(tw, "device name:\t%s\n", sanitize(p.DeviceName))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, "\napprove only if the other device shows the same confirmation")
	fmt.Fprintln(a.stdout, "waiting for approval (the code expires in 10 minutes; ctrl-c to cancel)")
	return nil
}

// drawQR draws a QR code in half blocks, as safety-number does.
func drawQR(a *app, payload string) {
	qrterminal.GenerateWithConfig(payload, qrterminal.Config{
		Level:          qrterminal.M,
		Writer:         a.stdout,
		HalfBlocks:     true,
		BlackChar:      qrterminal.BLACK_BLACK,
		WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar:      qrterminal.WHITE_WHITE,
		BlackWhiteChar: qrterminal.BLACK_WHITE,
		QuietZone:      2,
	})
	fmt.Fprintln(a.stdout)
}

func (a *app) approveCommand() *cobra.Command {
	var yes bool
	var want string
	cmd := &cobra.Command{
		Use:   "approve CODE",
		Short: "Approve a new device that shows CODE, and send it the history",
		Long: `Approve adds the new device that shows CODE (from 'parley device link' on
that device) to this account. It first shows the new device's name and a
confirmation string and asks whether the new device shows the same string:
if it does not, the code did not come from your device, and nothing is
added. On yes, it publishes the account's new device list and sends the new
device the account key, the contacts and the whole history.

CODE may be typed in upper or lower case, with or without dashes and
spaces, or be the QR code's payload (PARLEY1:...). A typo is caught before
anything is sent.

For scripts: --confirm STRING compares the confirmation string with STRING
instead of asking (a mismatch is an error and adds nothing); --yes approves
without comparing.`,
		Example: `  parley device approve k3jd-8fw2-...
  parley device approve --confirm '4821 0937 5512 0764' k3jd-8fw2-...`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			// Check the code before asking for a passphrase or touching the
			// network (the SDK checks it again).
			code, err := linkCode(strings.Join(argv, " "))
			if err != nil {
				return err
			}
			if want != "" && len(confirmDigits(want)) != 16 {
				return usagef("--confirm: a confirmation string has 16 digits, as the new device shows it")
			}
			c, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			before, err := c.Devices(ctx, false)
			if err != nil {
				return err
			}

			var name, confirmation string
			confirm := func(deviceName, conf string) error {
				name, confirmation = deviceName, conf
				if !a.json {
					showOffer(a.stdout, deviceName, conf)
				}
				switch {
				case want != "":
					if confirmDigits(want) != confirmDigits(conf) {
						return errConfirmMismatch
					}
					return nil
				case yes:
					return nil
				}
				return a.askConfirmation(deviceName, conf)
			}
			bar := a.newProgressBar()
			var sent [2]int // contacts, messages
			err = c.ApproveLink(ctx, code, confirm, func(pr client.Progress) {
				bar.update(pr)
				if pr.Phase == "contacts" {
					sent[0] = pr.Done
				} else {
					sent[1] = pr.Done
				}
			})
			bar.finish()
			var se *client.ServerError
			if name == "" && errors.As(err, &se) && se.Code == connect.CodeNotFound {
				// No offer at the code's address (the confirmation was never
				// asked): used, cancelled or expired.
				return fmt.Errorf("%w: %w", errNoOffer, err)
			}
			if err != nil {
				return err
			}
			// The new device's id: the one the list gained.
			var id string
			if after, err := c.Devices(ctx, false); err == nil {
				id = newDevice(before, after)
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Device       string `json:"device"`
					DeviceName   string `json:"device_name"`
					Confirmation string `json:"confirmation"`
					Contacts     int    `json:"contacts"`
					Messages     int    `json:"messages"`
				}{id, name, confirmation, sent[0], sent[1]})
			}
			fmt.Fprintf(a.stdout, "linked %s (device %s) to %s: sent %s and %s\n",
				sanitize(name), id, c.Username(), plural(sent[0], "contact"), plural(sent[1], "message"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&want, "confirm", "", "approve only if the confirmation string is `STRING` (for scripts; no question)")
	f.BoolVarP(&yes, "yes", "y", false, "approve without asking (for scripts; compare the confirmation string yourself)")
	return cmd
}

// linkCode reads a code as typed, or a QR payload, and returns the code.
func linkCode(s string) (string, error) {
	if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(s)), "PARLEY") {
		addr, err := provision.ParseQR(strings.TrimSpace(s))
		if err != nil {
			return "", err
		}
		return provision.Code(addr), nil
	}
	if _, err := provision.ParseCode(s); err != nil {
		return "", err
	}
	return s, nil
}

// confirmDigits is a confirmation string without its spacing, so that
// "4821 0937 5512 0764" and "4821093755120764" compare equal.
func confirmDigits(s string) string { return safetyDigits(s) }

// showOffer prints the new device's name and the confirmation string.
func showOffer(w io.Writer, deviceName, confirmation string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "new device:\t%s\n", sanitize(deviceName))
	fmt.Fprintf(tw, "confirmation:\t%s\n", confirmation)
	_ = tw.Flush()
}

// askConfirmation asks whether the confirmation
// strings match. Only "y" or "yes" approves; anything else, end of input
// included, declines.
func (a *app) askConfirmation(deviceName, confirmation string) error {
	if a.json {
		// Shown on stdout otherwise; stdout is for the JSON line here.
		showOffer(a.stderr, deviceName, confirmation)
	}
	fmt.Fprint(a.stderr, "does the new device show the same confirmation? [y/N] ")
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(a.stderr)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errNotApproved
}

// newDevice returns the id of the device in after but not in before.
func newDevice(before, after []client.Device) string {
	old := make(map[identity.DeviceID]bool, len(before))
	for _, d := range before {
		old[d.ID] = true
	}
	for _, d := range after {
		if !old[d.ID] {
			return d.ID.String()
		}
	}
	return ""
}

// plural is "1 message", "3 messages".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
