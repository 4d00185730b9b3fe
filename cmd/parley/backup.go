package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/parleyim/parley/client"
)

// envRecoveryKey is read by every command that asks for the recovery key.
const envRecoveryKey = "PARLEY_RECOVERY_KEY"

var (
	errNoRecoveryKey   = errors.New("no recovery key: " + envRecoveryKey + " is not set and standard input is not a terminal")
	errKeyNotWritten   = errors.New("not confirmed that the recovery key is written down; nothing was changed")
	errRecoveryAborted = errors.New("recovery cancelled")
)

func (a *app) backupCommand() *cobra.Command {
	return groupCommand("backup", "Encrypted backups that only your recovery key opens",
		`Backup keeps an end-to-end encrypted copy of this account — the account key,
contacts, settings, verification states and the whole message history, never
session keys — on the server. The copy is a standard age file encrypted to a
post-quantum age recipient derived from your recovery key: the server, and
anyone it shares its storage with, cannot read it or tell whose it is.

The recovery key is made on this device and shown once: write it down. With
it, 'parley backup restore' brings the account back on a new device; with
'parley recovery contacts set', trusted contacts can together stand in for
it.`,
		a.backupCreateCommand(),
		a.backupRestoreCommand(),
		a.backupRotateCommand(),
		a.backupOffCommand(),
		a.backupStatusCommand(),
		a.backupScheduleCommand(),
		a.backupExportIdentityCommand(),
	)
}

// showRecoveryKey prints a new recovery key once and, unless yes, asks
// whether the person wrote it down.
func (a *app) showRecoveryKey(key string, yes bool) error {
	if a.json {
		return nil // the key is in the JSON result
	}
	fmt.Fprintf(a.stdout, "your recovery key (shown once; write it down and keep it safe):\n\n    %s\n\n", key)
	fmt.Fprintln(a.stdout, "it opens your backups: anyone who has it can read your messages; without it (or your trusted contacts) a lost device's account cannot be restored")
	if yes {
		return nil
	}
	if err := a.ask("have you written the recovery key down? [y/N] ", "y", "yes"); err != nil {
		return errKeyNotWritten
	}
	return nil
}

func (a *app) backupCreateCommand() *cobra.Command {
	var output string
	var yes bool
	cmd := &cobra.Command{
		Use:   "create [--output FILE]",
		Short: "Make a backup now (turning backups on first if they are off)",
		Long: `Create writes a backup of this account, encrypts it on this device and
uploads it to the server, which keeps the newest few. The first time, it makes
a recovery key and shows it once; answer yes once you have written it down
(--yes for scripts: then take the key from the JSON output).

--output FILE also writes the age file locally. It decrypts with the standard
age tool and the identity 'parley backup export-identity' prints:

    age -d -i identity.txt FILE`,
		Example: `  parley backup create
  parley backup create --output parley-backup.age`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var newKey string
			st, err := c.BackupStatus(ctx)
			if err != nil {
				return err
			}
			if !st.On {
				if newKey, err = c.EnableBackups(ctx); err != nil {
					return err
				}
				if err := a.showRecoveryKey(newKey, yes); err != nil {
					_ = c.DisableBackups(ctx)
					return err
				}
			}
			opts := client.BackupOptions{}
			var out *os.File
			if output != "" {
				if out, err = os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
					return err
				}
				defer out.Close()
				opts.Output = out
			}
			bar := a.newProgressBar()
			opts.Progress = bar.update
			info, err := c.Backup(ctx, opts)
			bar.finish()
			if err == nil && out != nil {
				err = out.Sync()
			}
			if err != nil {
				if out != nil {
					out.Close()
					os.Remove(output)
				}
				return err
			}
			return a.printBackup("created", info, newKey, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "also write the age file to FILE (must not exist)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask whether the new recovery key is written down")
	return cmd
}

func (a *app) printBackup(status string, info *client.BackupInfo, key, file string) error {
	if a.json {
		return writeJSON(a.stdout, struct {
			Status      string `json:"status"`
			Generation  uint64 `json:"generation"`
			Bytes       int64  `json:"bytes"`
			Contacts    int    `json:"contacts"`
			Messages    int    `json:"messages"`
			RecoveryKey string `json:"recovery_key,omitempty"`
			File        string `json:"file,omitempty"`
		}{status, info.Generation, info.Size, info.Contacts, info.Messages, key, file})
	}
	fmt.Fprintf(a.stdout, "backup %s: generation %d, %s and %s, %d bytes encrypted\n",
		status, info.Generation, plural(info.Contacts, "contact"), plural(info.Messages, "message"), info.Size)
	if file != "" {
		fmt.Fprintf(a.stdout, "also written to %s (decrypt with: age -d -i IDENTITY %s)\n", file, file)
	}
	return nil
}

// recoveryKeyInput reads a recovery key from PARLEY_RECOVERY_KEY, or asks
// for it on the terminal.
func (a *app) recoveryKeyInput() (string, error) {
	if k, ok := a.getenv(envRecoveryKey); ok && k != "" {
		return k, nil
	}
	if _, ok := a.terminal(); !ok {
		return "", errNoRecoveryKey
	}
	fmt.Fprint(a.stderr, "recovery key: ")
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading the recovery key: %w", err)
	}
	return strings.TrimSpace(line), nil
}

func (a *app) backupRestoreCommand() *cobra.Command {
	var server, deviceName string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "restore [--server URL] USERNAME",
		Short: "Restore an account from its backup onto this device, in a new home",
		Long: `Restore asks for the recovery key (or reads ` + envRecoveryKey + `), downloads the
newest backup of USERNAME, decrypts and checks all of it, then adds this
device to the account (signed with the restored account key) and stores the
contacts and history in a new home directory, protected by a new passphrase
as register does. Sessions with every contact start afresh as messages flow.
If anything fails, nothing is left behind and the account is unchanged.`,
		Example: `  parley backup restore --server https://parley.example alice
  PARLEY_RECOVERY_KEY='...' parley backup restore --home ~/.parley-new alice`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			home, server, name, err := a.newHome("restore", server, argv[0])
			if err != nil {
				return err
			}
			key, err := a.recoveryKeyInput()
			if err != nil {
				return err
			}
			opts := client.Options{DeviceName: deviceName, Insecure: insecure}
			if opts.Passphrase, err = a.newStorePassphrase(home, insecure); err != nil {
				return err
			}
			bar := a.newProgressBar()
			c, err := client.Restore(ctx, home, server, name, key, opts, bar.update)
			bar.finish()
			if err != nil {
				return err
			}
			defer c.Close()
			return a.printRestored(c, home)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "server URL (default $"+envServer+")")
	f.StringVar(&deviceName, "device-name", "", "name of this device in the account's device list (default the host name)")
	f.BoolVar(&insecure, "insecure", false, "do not encrypt the local store (anyone who copies it can read it)")
	return cmd
}

func (a *app) printRestored(c *client.Client, home string) error {
	if c.Insecure() {
		fmt.Fprintf(a.stderr, "parley: warning: the store in %s is not encrypted: anyone who can read it can read your messages and keys\n", home)
	}
	if !a.json {
		fmt.Fprintf(a.stdout, "restored %s onto this device\n\n", c.Username())
	}
	return a.printIdentity(c, home)
}

func (a *app) backupRotateCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the recovery key: new backup, old backups deleted, contacts' shares re-issued",
		Long: `Rotate makes a new recovery key and shows it once, uploads a backup under it,
deletes every backup made under the old key, and sends your trusted contacts
shares of the new key. The old key, and shares of it, then open nothing.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			bar := a.newProgressBar()
			key, info, err := c.RotateRecoveryKey(ctx, client.BackupOptions{Progress: bar.update})
			bar.finish()
			if err != nil {
				return err
			}
			if err := a.showRecoveryKey(key, true); err != nil {
				return err
			}
			if !yes && !a.json {
				fmt.Fprintln(a.stdout, "the old recovery key no longer opens anything")
			}
			return a.printBackup("rotated", info, key, "")
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "for scripts (the new key is in the JSON output)")
	return cmd
}

func (a *app) backupOffCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "off",
		Short: "Turn backups off: delete every backup on the server and revoke contacts' shares",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if !yes {
				if err := a.ask("delete every backup of this account from the server? [y/N] ", "y", "yes"); err != nil {
					return err
				}
			}
			if err := c.DisableBackups(ctx); err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Status string `json:"status"`
				}{"off"})
			}
			fmt.Fprintln(a.stdout, "backups are off: the server's copies are deleted and your trusted contacts' shares revoked")
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	return cmd
}

func (a *app) backupStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show whether backups are on, the last backup and the recovery contacts",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := c.BackupStatus(ctx)
			if err != nil {
				return err
			}
			if a.json {
				var last *time.Time
				if !st.Last.IsZero() {
					last = &st.Last
				}
				return writeJSON(a.stdout, struct {
					On         bool       `json:"on"`
					KeyID      string     `json:"key_id,omitempty"`
					Interval   string     `json:"interval,omitempty"`
					Last       *time.Time `json:"last,omitempty"`
					Generation uint64     `json:"generation,omitempty"`
					Threshold  int        `json:"threshold,omitempty"`
					Contacts   []string   `json:"contacts,omitempty"`
				}{st.On, st.KeyID, intervalText(st.Interval), last, st.Generation, st.Threshold, st.Contacts})
			}
			if !st.On {
				fmt.Fprintln(a.stdout, "backups are off (turn them on with: parley backup create)")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "backups:\ton (recovery key %s)\n", st.KeyID)
			if st.Last.IsZero() {
				fmt.Fprintf(tw, "last:\tnone yet\n")
			} else {
				fmt.Fprintf(tw, "last:\t%s (generation %d)\n", st.Last.Local().Format(time.DateTime), st.Generation)
			}
			if st.Interval > 0 {
				fmt.Fprintf(tw, "automatic:\tevery %s\n", st.Interval)
			} else {
				fmt.Fprintf(tw, "automatic:\toff (parley backup schedule DURATION)\n")
			}
			if st.Threshold > 0 {
				fmt.Fprintf(tw, "trusted contacts:\t%d of %s\n", st.Threshold, strings.Join(st.Contacts, ", "))
			}
			return tw.Flush()
		},
	}
}

func intervalText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func (a *app) backupScheduleCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schedule DURATION",
		Short: "Back up automatically every DURATION (0 to stop)",
		Long: `Schedule makes parley back up automatically when it runs (receive, chat) and
the last backup is at least DURATION old, e.g. 24h. 0 stops automatic backups.`,
		Example: "  parley backup schedule 24h",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			d, err := time.ParseDuration(argv[0])
			if err != nil || d < 0 {
				return usagef("DURATION: a non-negative duration such as 24h or 168h, not %q", argv[0])
			}
			c, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.SetBackupInterval(cmd.Context(), d); err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Interval string `json:"interval"`
				}{d.String()})
			}
			if d == 0 {
				fmt.Fprintln(a.stdout, "automatic backups are off")
			} else {
				fmt.Fprintf(a.stdout, "backing up automatically every %s\n", d)
			}
			return nil
		},
	}
}

func (a *app) backupExportIdentityCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "export-identity",
		Short: "Print the age identity that decrypts your backups with the standard age tool",
		Long: `Export-identity prints the age identity (AGE-SECRET-KEY-PQ-1...) derived from the
recovery key, so that you can always decrypt your own backup without Parley:

    parley backup export-identity > identity.txt
    age -d -i identity.txt backup.age

It is as secret as the recovery key.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			id, err := c.BackupIdentity(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Identity string `json:"identity"`
				}{id})
			}
			fmt.Fprintf(a.stderr, "parley: warning: this identity opens your backups; keep it as safe as the recovery key\n")
			fmt.Fprintln(a.stdout, id)
			return nil
		},
	}
}

// maybeBackup makes a due automatic backup; a failure is reported on
// stderr, not as the command's error.
func (a *app) maybeBackup(cmd *cobra.Command, c *client.Client) {
	if cmd.Context().Err() != nil {
		return // interrupted: not the moment for a backup
	}
	info, err := c.MaybeBackup(cmd.Context(), nil)
	switch {
	case err != nil:
		fmt.Fprintf(a.stderr, "parley: automatic backup failed: %s\n", errorText(err))
	case info != nil && !a.json:
		fmt.Fprintf(a.stderr, "parley: automatic backup: generation %d, %s\n", info.Generation, plural(info.Messages, "message"))
	}
}
