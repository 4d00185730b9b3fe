package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/parleyim/parley/client"
)

func (a *app) registerCommand() *cobra.Command {
	var server, deviceName string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "register --server URL USERNAME",
		Short: "Create an account with this device as its first device",
		Long: `Register creates an account on a server, with this device as its first
device, in a new home directory. The home's store is encrypted under the
passphrase from ` + envPassphrase + ` (or typed twice on the terminal);
--insecure leaves it unencrypted.

The server URL must be https://, or http:// on a loopback address.`,
		Example: `  parley register --server https://parley.example alice
  PARLEY_HOME=~/.parley-work parley register --server https://parley.example --device-name work alice`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			home, err := a.homeDir()
			if err != nil {
				return err
			}
			if server, err = a.serverURL(server); err != nil {
				return err
			}
			opts := client.Options{Insecure: insecure, DeviceName: deviceName}
			if opts.Passphrase, err = a.newStorePassphrase(home, insecure); err != nil {
				return err
			}
			c, err := client.Register(cmd.Context(), home, server, argv[0], opts)
			if err != nil {
				return err
			}
			defer c.Close()
			if insecure {
				fmt.Fprintf(a.stderr, "parley: warning: the store in %s is not encrypted: anyone who can read it can read your messages and keys\n", home)
			}
			return a.printIdentity(c, home)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "server URL (default $"+envServer+")")
	f.StringVar(&deviceName, "device-name", "", "name of this device in the account's device list (default the host name)")
	f.BoolVar(&insecure, "insecure", false, "do not encrypt the local store (anyone who copies it can read it)")
	return cmd
}

// serverURL is the --server flag, or PARLEY_SERVER without it.
func (a *app) serverURL(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	s, ok := a.getenv(envServer)
	if !ok || s == "" {
		return "", usagef("no server: give --server URL or set %s", envServer)
	}
	return s, nil
}

// newHome resolves the home directory, server and username of a command
// that sets up a new home (device link, backup restore, recovery start),
// and refuses a home that already holds an account before anything else
// happens: the SDK creates the home only at the end, after the other
// device, the backup or the contacts have done their part.
func (a *app) newHome(op, serverFlag, username string) (home, server, name string, err error) {
	if home, err = a.homeDir(); err != nil {
		return "", "", "", err
	}
	if server, err = a.serverURL(serverFlag); err != nil {
		return "", "", "", err
	}
	if name, err = client.NormalizeUsername(username); err != nil {
		return "", "", "", err
	}
	db := filepath.Join(home, client.DatabaseFile)
	if _, err := os.Stat(db); err == nil {
		return "", "", "", &fs.PathError{Op: op, Path: db, Err: fs.ErrExist}
	}
	return home, server, name, nil
}

// newStorePassphrase is the passphrase of a new home's store: none with
// --insecure (and then PARLEY_PASSPHRASE must not be set: the person
// expects the store to be encrypted), else from the environment or typed
// twice.
func (a *app) newStorePassphrase(home string, insecure bool) ([]byte, error) {
	if insecure {
		if _, ok := a.envPassphrase(); ok {
			return nil, errors.New("--insecure creates a store without a passphrase, but " + envPassphrase + " is set")
		}
		return nil, nil
	}
	return a.newPassphrase(home)
}

func (a *app) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show this device's account, device id and server",
		Long:  "Whoami shows the account of the home directory, this device's id and the server. It does not contact the server.",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			home, _ := a.homeDir()
			return a.printIdentity(c, home)
		},
	}
}

func (a *app) printIdentity(c *client.Client, home string) error {
	if a.json {
		return writeJSON(a.stdout, struct {
			Username string `json:"username"`
			Device   string `json:"device"`
			Server   string `json:"server"`
			Home     string `json:"home"`
			Insecure bool   `json:"insecure"`
		}{c.Username(), c.DeviceID().String(), c.Server(), home, c.Insecure()})
	}
	store := "encrypted with a passphrase"
	if c.Insecure() {
		store = "NOT ENCRYPTED (registered with --insecure)"
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "username:\t%s\n", c.Username())
	fmt.Fprintf(tw, "device:\t%s\n", c.DeviceID())
	fmt.Fprintf(tw, "server:\t%s\n", c.Server())
	fmt.Fprintf(tw, "home:\t%s\n", home)
	fmt.Fprintf(tw, "store:\t%s\n", store)
	return tw.Flush()
}

func (a *app) devicesCommand() *cobra.Command {
	var cached bool
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List this account's devices",
		Long: `Devices lists the devices of this account as its verified device list names
them, fetching the newest list from the server first (unless --cached), with
when each was added (by the clock of the device that added it) and last
seen receiving (by the server's clock; "never" if it has not connected).
Check it for devices you did not add, and remove them with
'parley device remove'.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			ds, err := c.Devices(cmd.Context(), !cached)
			if err != nil {
				return err
			}
			if a.json {
				for _, d := range ds {
					var seen *time.Time
					if !d.LastSeen.IsZero() {
						t := d.LastSeen.UTC()
						seen = &t
					}
					err := writeJSON(a.stdout, struct {
						ID       string     `json:"id"`
						Name     string     `json:"name"`
						Added    time.Time  `json:"added"`
						LastSeen *time.Time `json:"last_seen"`
						Current  bool       `json:"current"`
					}{d.ID.String(), d.Name, d.Added.UTC(), seen, d.Current})
					if err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "DEVICE\tNAME\tADDED\tLAST SEEN")
			for _, d := range ds {
				seen := "never"
				if !d.LastSeen.IsZero() {
					seen = d.LastSeen.Local().Format(timeLayout)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s", d.ID, sanitize(d.Name), d.Added.Local().Format(timeLayout), seen)
				if d.Current {
					fmt.Fprint(tw, "\t(this device)")
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&cached, "cached", false, "show the list this device last verified, without fetching a newer one")
	return cmd
}

func (a *app) contactsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "contacts",
		Short: "List the accounts this device has talked with",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			cs, err := c.Contacts(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				for _, ct := range cs {
					err := writeJSON(a.stdout, struct {
						Username   string    `json:"username"`
						Devices    int       `json:"devices"`
						Verified   bool      `json:"verified"`
						KeyChanged bool      `json:"key_changed,omitempty"`
						Added      time.Time `json:"added"`
					}{ct.Username, ct.Devices, ct.Verified, ct.KeyChanged, ct.Added.UTC()})
					if err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "USERNAME\tDEVICES\tVERIFIED\tADDED")
			for _, ct := range cs {
				v := "no"
				switch {
				case ct.Verified:
					v = "yes"
				case ct.KeyChanged:
					v = "KEY CHANGED"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", ct.Username, ct.Devices, v, ct.Added.Local().Format(timeLayout))
			}
			return tw.Flush()
		},
	}
}

func (a *app) accountCommand() *cobra.Command {
	return groupCommand("account", "Delete this account",
		"Account acts on the whole account, with all its devices.",
		a.deleteAccountCommand(),
	)
}

func (a *app) deleteAccountCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete this account from the server, with all its devices",
		Long: `Delete removes the account from the server: every device, its device list,
prekeys and queues. This device's local store (keys and history) is wiped;
the account's other devices can no longer connect and keep their stores
until you delete their home directories. The username becomes free on the
server; people who talked with you will refuse a new account under it (its
key changed) until they check its safety number.

Delete asks you to type the username to confirm; --yes does not ask.`,
		Example: `  parley account delete`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := a.open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			name, server := c.Username(), c.Server()
			if !yes {
				fmt.Fprintf(a.stderr, "this deletes the account %s from %s, with all its devices, and wipes this device's keys and history; it cannot be undone\n", name, server)
				if err := a.ask("type the username to confirm: ", name); err != nil {
					return fmt.Errorf("%w: the account was not deleted", err)
				}
			}
			if err := c.DeleteAccount(ctx); err != nil {
				return err
			}
			home, _ := a.homeDir()
			if a.json {
				return writeJSON(a.stdout, struct {
					Deleted string `json:"deleted"`
					Server  string `json:"server"`
					Home    string `json:"home"`
				}{name, server, home})
			}
			fmt.Fprintf(a.stdout, "deleted the account %s from %s\nthis device's store in %s is wiped\n", name, server, home)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
