package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
	return groupCommand("device", "Link, approve, remove and rename this account's devices",
		`Device manages the devices of the account. Every device is a full member
with its own keys, and any device can link, remove or rename another: run
'parley device link' on a new device and 'parley device approve CODE' on any
device already in the account. 'parley devices' lists them.`,
		a.linkCommand(),
		a.approveCommand(),
		a.removeCommand(),
		a.renameCommand(),
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
			home, server, name, err := a.newHome("link", server, argv[0])
			if err != nil {
				return err
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

// askConfirmation asks whether the confirmation strings match.
func (a *app) askConfirmation(deviceName, confirmation string) error {
	if a.json {
		// Shown on stdout otherwise; stdout is for the JSON line here.
		showOffer(a.stderr, deviceName, confirmation)
	}
	if err := a.ask("does the new device show the same confirmation? [y/N] ", "y", "yes"); err != nil {
		return errNotApproved
	}
	return nil
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

func (a *app) removeCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "remove DEVICE",
		Short: "Remove a device from this account",
		Long: `Remove takes a device out of this account: it publishes the account's next
device list without it. The server then deletes the device's queue, prekeys
and tokens; the removed device can no longer authenticate or receive, and
wipes its local store (history and keys) when it next connects and sees the
signed list that drops it. Any device can remove any other, or itself (its
store is wiped at once); the last device cannot be removed: delete the
account instead.

DEVICE is a device id, a unique prefix of one (4 characters or more), or a
device name, as 'parley devices' shows them. Remove asks before it removes;
--yes does not ask.`,
		Example: `  parley device remove old-phone
  parley device remove --yes 90b1`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			c, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			d, err := a.findDevice(ctx, c, argv[0])
			if err != nil {
				return err
			}
			if !yes {
				what := fmt.Sprintf("remove %s (%s) from %s? it will be wiped when it next connects", sanitize(d.Name), d.ID, c.Username())
				if d.Current {
					what = fmt.Sprintf("remove THIS device, %s (%s), from %s? its keys and history here are wiped now", sanitize(d.Name), d.ID, c.Username())
				}
				if err := a.ask(what+" [y/N] ", "y", "yes"); err != nil {
					return fmt.Errorf("%w: the device was not removed", err)
				}
			}
			if err := c.RemoveDevice(ctx, d.ID); err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Removed    string `json:"removed"`
					Name       string `json:"name"`
					ThisDevice bool   `json:"this_device"`
				}{d.ID.String(), d.Name, d.Current})
			}
			fmt.Fprintf(a.stdout, "removed %s (%s) from %s\n", sanitize(d.Name), d.ID, c.Username())
			if d.Current {
				home, _ := a.homeDir()
				fmt.Fprintf(a.stdout, "this device's store in %s is wiped\n", home)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (a *app) renameCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rename DEVICE NAME",
		Short: "Rename a device of this account",
		Long: `Rename gives a device of this account a new name, by publishing the
account's next device list. DEVICE is a device id, a unique prefix of one,
or a device name, as 'parley devices' shows them.`,
		Example: `  parley device rename laptop work-laptop`,
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			name := argv[1]
			if strings.TrimSpace(name) == "" {
				return usagef("empty device name")
			}
			c, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			d, err := a.findDevice(ctx, c, argv[0])
			if err != nil {
				return err
			}
			if err := c.RenameDevice(ctx, d.ID, name); err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Device  string `json:"device"`
					Name    string `json:"name"`
					OldName string `json:"old_name"`
				}{d.ID.String(), name, d.Name})
			}
			fmt.Fprintf(a.stdout, "renamed %s (%s) to %s\n", sanitize(d.Name), d.ID, sanitize(name))
			return nil
		},
	}
}

// minDevicePrefix is the shortest device id prefix that names a device:
// shorter ones too easily match by accident (or a name).
const minDevicePrefix = 4

// errNoSuchDevice and errAmbiguousDevice are what findDevice cannot resolve.
var (
	errNoSuchDevice    = errors.New("no such device in this account")
	errAmbiguousDevice = errors.New("more than one device matches")
)

// findDevice resolves DEVICE (an id, a unique id prefix, or a name) among
// the account's devices, from the server's newest verified list.
func (a *app) findDevice(ctx context.Context, c *client.Client, s string) (client.Device, error) {
	ds, err := c.Devices(ctx, true)
	if err != nil {
		return client.Device{}, err
	}
	var match []client.Device
	for _, d := range ds {
		id := d.ID.String()
		if id == strings.ToLower(s) {
			return d, nil
		}
		if d.Name == s || (len(s) >= minDevicePrefix && strings.HasPrefix(id, strings.ToLower(s))) {
			match = append(match, d)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return client.Device{}, fmt.Errorf("%w: %q", errNoSuchDevice, s)
	}
	var ids []string
	for _, d := range match {
		ids = append(ids, fmt.Sprintf("%s (%s)", d.ID, sanitize(d.Name)))
	}
	return client.Device{}, fmt.Errorf("%w %q: %s", errAmbiguousDevice, s, strings.Join(ids, ", "))
}

// errNotConfirmed is an answer other than yes to a question.
var errNotConfirmed = errors.New("not confirmed")

// ask asks a question on standard error and reads one line of standard
// input: errNotConfirmed unless the answer (case and surrounding space
// aside) is one of yes. End of input is no answer, so a script without
// the command's --yes flag stops rather than does what nobody confirmed.
func (a *app) ask(question string, yes ...string) error {
	fmt.Fprint(a.stderr, question)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(a.stderr)
	}
	answer := strings.TrimSpace(line)
	for _, y := range yes {
		if strings.EqualFold(answer, y) {
			return nil
		}
	}
	return errNotConfirmed
}
