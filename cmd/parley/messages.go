package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/internal/identity"
	"github.com/parleyim/parley/internal/kt/verify"
)

func (a *app) sendCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "send USERNAME (MESSAGE | -)",
		Short: "Send a message",
		Long: `Send encrypts a message for every device of USERNAME and for this account's
other devices, and hands it to the server. With - the message is read from
standard input (one trailing newline is dropped). Nothing is printed on
success; with --json the stored message is.`,
		Example: `  parley send bob 'see you at eight'
  fortune | parley send bob -`,
		Args: func(cmd *cobra.Command, argv []string) error {
			if len(argv) > 2 {
				return usagef("too many arguments: quote the message (parley send %s '%s')", argv[0], strings.Join(argv[1:], " "))
			}
			return args(cobra.ExactArgs(2))(cmd, argv)
		},
		RunE: func(cmd *cobra.Command, argv []string) error {
			text := argv[1]
			if text == "-" {
				b, err := io.ReadAll(a.stdin)
				if err != nil {
					return fmt.Errorf("reading the message from standard input: %w", err)
				}
				text = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			}
			if text == "" {
				return usagef("empty message")
			}
			c, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			m, err := c.Send(cmd.Context(), argv[0], text)
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, toJSONMessage(m))
			}
			return nil
		},
	}
}

func (a *app) receiveCommand() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "receive [--follow]",
		Short: "Receive, decrypt and print queued messages",
		Long: `Receive fetches this device's queued messages, decrypts and stores each
before acknowledging it, and prints it (time, sender, text). It exits when the
queue is drained, or with --follow keeps waiting for new messages until
interrupted.

Messages that cannot be decrypted, and peers that reset their session, are
reported on standard error. If any of them is a security error, receive
exits with status 3 after the rest of the queue.`,
		Example: `  parley receive
  parley receive --follow --json | jq -r .text`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			err = c.Receive(cmd.Context(), client.ReceiveOptions{Follow: follow}, func(e client.Event) error {
				switch e.Kind {
				case client.EventMessage:
					if a.json {
						return writeJSON(a.stdout, toJSONMessage(e.Message))
					}
					_, err := fmt.Fprintln(a.stdout, messageLine(e.Message, false))
					return err
				case client.EventUndecryptable, client.EventSessionReset, client.EventKeyTransparencyAlert, client.EventLogFork:
					a.warnEvent(e)
				case client.EventDeviceAdded, client.EventDeviceRemoved:
					if e.From == c.Username() && e.FromDevice == c.DeviceID() {
						return nil // this device removed: Receive's error says so
					}
					return a.deviceEvent(e)
				case client.EventRecoveryShare, client.EventRecoveryRevoked:
					return a.recoveryEvent(e)
				}
				return nil
			})
			if err == nil {
				a.maybeBackup(cmd, c)
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep receiving until interrupted")
	return cmd
}

// deviceEvent prints a change to the device list of a contact or of this
// account, as history shows a contact's (a system line).
func (a *app) deviceEvent(e client.Event) error {
	if a.json {
		return writeJSON(a.stdout, struct {
			Event      string `json:"event"`
			Account    string `json:"account"`
			Device     string `json:"device"`
			DeviceName string `json:"device_name"`
		}{e.Kind.String(), e.From, e.FromDevice.String(), e.DeviceName})
	}
	verb := "added"
	if e.Kind == client.EventDeviceRemoved {
		verb = "removed"
	}
	line := fmt.Sprintf("%s -- %s %s a device", time.Now().Format(timeLayout), e.From, verb)
	if e.DeviceName != "" {
		line += fmt.Sprintf(" (%q)", e.DeviceName)
	}
	_, err := fmt.Fprintln(a.stdout, sanitize(line))
	return err
}

// recoveryEvent reports a trusted-contact share received or revoked.
func (a *app) recoveryEvent(e client.Event) error {
	if a.json {
		return writeJSON(a.stdout, struct {
			Event   string `json:"event"`
			Account string `json:"account"`
		}{e.Kind.String(), e.From})
	}
	line := fmt.Sprintf("%s -- %s made you a trusted contact: you hold a share of their recovery key (parley recovery help %s CODE gives it back)", time.Now().Format(timeLayout), e.From, e.From)
	if e.Kind == client.EventRecoveryRevoked {
		line = fmt.Sprintf("%s -- %s took back their recovery share", time.Now().Format(timeLayout), e.From)
	}
	_, err := fmt.Fprintln(a.stdout, sanitize(line))
	return err
}

// describeList summarises a device list the log holds (for an alert): its
// account key's fingerprint and devices, or why it does not parse.
func describeList(value []byte) string {
	s, err := identity.ParseSignedDeviceList(value)
	if err != nil {
		return "not a device list (" + err.Error() + ")"
	}
	l, err := s.Verify(nil)
	if err != nil {
		return "a device list with a bad signature"
	}
	fp := l.Key.Fingerprint()
	var devs []string
	for _, d := range l.Devices {
		devs = append(devs, fmt.Sprintf("%s (%q)", d.Device.ID(), d.Name))
	}
	return sanitize(fmt.Sprintf("account key %x…, devices %s", fp[:8], strings.Join(devs, ", ")))
}

// warnEvent reports a receive event that is not a message on stderr.
func (a *app) warnEvent(e client.Event) {
	from := e.From
	if from == "" {
		from = "an unknown sender"
	}
	switch e.Kind {
	case client.EventUndecryptable:
		if errors.Is(e.Err, client.ErrSecurity) {
			a.exitCode = exitSecurity
			fmt.Fprintf(a.stderr, "parley: warning: SECURITY ERROR: a message from %s (device %s) was dropped: %s\n", from, e.FromDevice, strings.TrimPrefix(errorText(e.Err), "security error: "))
			fmt.Fprintln(a.stderr, "parley: hint: the server may be lying: the sender's keys or device list do not verify")
			return
		}
		fmt.Fprintf(a.stderr, "parley: warning: could not decrypt a message from %s (device %s): %s\n", from, e.FromDevice, errorText(e.Err))
	case client.EventSessionReset:
		fmt.Fprintf(a.stderr, "parley: warning: %s (device %s) reset its session with this device; a message to it may have been lost\n", from, e.FromDevice)
	case client.EventKeyTransparencyAlert:
		a.exitCode = exitSecurity
		a.alertMu.Lock()
		a.ktAlertShown = true
		a.alertMu.Unlock()
		fmt.Fprintf(a.stderr, "parley: ALERT: KEY TRANSPARENCY: %s\n", strings.TrimPrefix(errorText(e.Err), "security error: "))
		var ve *verify.Error
		if errors.As(e.Err, &ve) && (ve.Kind == verify.UnexpectedVersion || ve.Kind == verify.HiddenVersion) {
			if ve.Value != nil {
				fmt.Fprintf(a.stderr, "parley: ALERT: the log holds, as version %d of your device list, one none of your devices made: %s\n", ve.Version+1, describeList(ve.Value))
			}
			fmt.Fprintln(a.stderr, "parley: hint: someone may be shown a device (or an account key) that is not yours; check 'parley devices', remove any device you do not know, and tell your contacts to compare safety numbers with you")
			return
		}
		fmt.Fprintln(a.stderr, "parley: hint: the server's log is not the one this device verified before (it was forked or rolled back); nothing it says about anyone's keys can be trusted now")
	case client.EventLogFork:
		a.exitCode = exitSecurity
		fmt.Fprintf(a.stderr, "parley: ALERT: KEY TRANSPARENCY FORK: the log showed %s a different history than this device: %s\n", from, strings.TrimPrefix(errorText(e.Err), "security error: "))
		fmt.Fprintln(a.stderr, "parley: hint: the server is showing different people different key directories; do not trust new keys from it, and keep this output: the two signed checkpoints are the evidence")
	}
}

func (a *app) historyCommand() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history USERNAME",
		Short: "Show the conversation with an account",
		Long: `History prints the last messages of the conversation with USERNAME from
this device's store, oldest first, with the delivery state of your own.
It does not contact the server: run receive first for new messages.`,
		Example: `  parley history bob --limit 50`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if limit < 1 {
				return usagef("--limit must be at least 1")
			}
			c, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			ms, err := c.History(cmd.Context(), argv[0], limit, time.Time{})
			if err != nil {
				return err
			}
			for _, m := range ms {
				if a.json {
					err = writeJSON(a.stdout, toJSONMessage(m))
				} else {
					_, err = fmt.Fprintln(a.stdout, messageLine(m, true))
				}
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "how many messages")
	return cmd
}
