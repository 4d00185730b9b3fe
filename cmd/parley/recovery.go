package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/parleyim/parley/client"
)

func (a *app) recoveryCommand() *cobra.Command {
	contacts := groupCommand("contacts", "Choose the trusted contacts who can together recover your account",
		`Contacts manages your trusted contacts: people who each hold one share of
your recovery key. Any THRESHOLD of them together can help a new device of
yours recover the account; fewer learn nothing about the key.`,
		a.recoveryContactsSetCommand(),
	)
	return groupCommand("recovery", "Recover an account with the help of trusted contacts",
		`Recovery lets trusted contacts stand in for a lost recovery key. Choose them
with 'parley recovery contacts set'; each gets a share of the key, end to end
encrypted. To recover, run 'parley recovery start' on the new device: it shows
a code and a confirmation string. Each contact runs 'parley recovery help
USERNAME CODE', checks with you (by phone, in person) that the confirmation
strings match, and sends their share to your new device alone.`,
		contacts,
		a.recoveryStartCommand(),
		a.recoveryHelpCommand(),
	)
}

func (a *app) recoveryContactsSetCommand() *cobra.Command {
	var threshold int
	cmd := &cobra.Command{
		Use:   "set --threshold K USER...",
		Short: "Split the recovery key among USERs, any K of whom can recover the account",
		Long: `Set splits your recovery key with Shamir's scheme into one share per USER and
sends each its share end to end encrypted. Any K shares recover the key;
K-1 reveal nothing. Contacts dropped from an earlier set are told to delete
their share. Backups must be on (parley backup create).`,
		Example: `  parley recovery contacts set --threshold 2 bob carol dave`,
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if threshold < 1 || threshold > len(argv) {
				return usagef("--threshold must be between 1 and the number of contacts (%d)", len(argv))
			}
			ctx := cmd.Context()
			c, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.SetRecoveryContacts(ctx, threshold, argv); err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Threshold int      `json:"threshold"`
					Contacts  []string `json:"contacts"`
				}{threshold, argv})
			}
			fmt.Fprintf(a.stdout, "sent a recovery share to each of %s; any %d of them can help recover your account\n", strings.Join(argv, ", "), threshold)
			return nil
		},
	}
	cmd.Flags().IntVarP(&threshold, "threshold", "k", 0, "how many contacts it takes to recover (required)")
	_ = cmd.MarkFlagRequired("threshold")
	return cmd
}

func (a *app) recoveryStartCommand() *cobra.Command {
	var server, deviceName string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "start [--server URL] USERNAME",
		Short: "Recover USERNAME on this device, in a new home, with your trusted contacts' help",
		Long: `Start shows a code and a confirmation string. Give the code to your trusted
contacts; each runs 'parley recovery help USERNAME CODE' and must see the
same confirmation string before sending their share. Once enough shares
arrived, start restores the newest backup exactly as 'parley backup
restore' does, in a new home directory.

With --json it prints one line as soon as the code is ready (status
"waiting") and one when the account is restored.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			home, server, name, err := a.newHome("recovery", server, argv[0])
			if err != nil {
				return err
			}
			opts := client.Options{DeviceName: deviceName, Insecure: insecure}
			if opts.Passphrase, err = a.newStorePassphrase(home, insecure); err != nil {
				return err
			}
			p, err := client.StartRecovery(ctx, home, server, name, opts)
			if err != nil {
				return err
			}
			if a.json {
				if err := writeJSON(a.stdout, struct {
					Status       string `json:"status"`
					Username     string `json:"username"`
					Code         string `json:"code"`
					Confirmation string `json:"confirmation"`
				}{"waiting", name, p.Code(), p.Confirmation()}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "ask your trusted contacts to run:\n\n    parley recovery help %s %s\n\n", name, p.Code())
				tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintf(tw, "confirmation:\t%s\n", p.Confirmation())
				_ = tw.Flush()
				fmt.Fprintln(a.stdout, "\nthey must see the same confirmation before sending; waiting for shares (ctrl-c to cancel)")
			}
			bar := a.newProgressBar()
			c, err := p.Wait(ctx, bar.update)
			bar.finish()
			if err != nil {
				if ctx.Err() != nil {
					return errRecoveryAborted
				}
				return err
			}
			defer c.Close()
			if a.json {
				return writeJSON(a.stdout, struct {
					Status   string `json:"status"`
					Username string `json:"username"`
					Device   string `json:"device"`
					Home     string `json:"home"`
				}{"restored", c.Username(), c.DeviceID().String(), home})
			}
			return a.printRestored(c, home)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "server URL (default $"+envServer+")")
	f.StringVar(&deviceName, "device-name", "", "name of this device in the account's device list (default the host name)")
	f.BoolVar(&insecure, "insecure", false, "do not encrypt the local store (anyone who copies it can read it)")
	return cmd
}

var errShareNotSent = errors.New("not confirmed: the share was not sent")

func (a *app) recoveryHelpCommand() *cobra.Command {
	var yes bool
	var want string
	cmd := &cobra.Command{
		Use:   "help USERNAME CODE",
		Short: "Send your recovery share for USERNAME to the new device showing CODE",
		Long: `Help gives the recovery share you hold for USERNAME to the device that shows
CODE. It first shows that device's name and a confirmation string: check with
USERNAME, over a channel you trust (a call, in person), that their new device
shows the same string. Only then is the share sent, sealed to that device
alone. If the strings differ, someone else may be trying to take over the
account: do not send.

For scripts: --confirm STRING compares the confirmation with STRING; --yes
sends without comparing.`,
		Example: `  parley recovery help alice k3jd-8fw2-...`,
		Args:    args(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			code, err := linkCode(strings.Join(argv[1:], " "))
			if err != nil {
				return err
			}
			if want != "" && len(confirmDigits(want)) != 16 {
				return usagef("--confirm: a confirmation string has 16 digits, as the recovering device shows it")
			}
			c, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			err = c.HelpRecover(ctx, argv[0], code, func(deviceName, conf string) error {
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
				if a.json {
					showOffer(a.stderr, deviceName, conf)
				}
				if err := a.ask("does "+argv[0]+"'s new device show the same confirmation? [y/N] ", "y", "yes"); err != nil {
					return errShareNotSent
				}
				return nil
			})
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Status string `json:"status"`
					For    string `json:"for"`
				}{"sent", argv[0]})
			}
			fmt.Fprintf(a.stdout, "sent your recovery share for %s to their new device\n", argv[0])
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "send without comparing the confirmation")
	cmd.Flags().StringVar(&want, "confirm", "", "the confirmation string the recovering device shows")
	return cmd
}
