package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/parleyim/parley/client"
)

func (a *app) transparencyCommand() *cobra.Command {
	return groupCommand("transparency", "Audit a server's key-transparency log",
		`Transparency works with a server's key-transparency log: the public,
append-only record of every account's signed device lists that every lookup
is checked against (docs/transparency.md).`,
		a.auditCommand(),
	)
}

func (a *app) auditCommand() *cobra.Command {
	var server, state string
	cmd := &cobra.Command{
		Use:   "audit --server URL [--state FILE]",
		Short: "Verify that the whole log is append-only",
		Long: `Audit downloads every epoch of the server's key-transparency log and
replays it: each epoch must be the previous tree plus its insertions (nothing
changed or removed), and the log's signed, cosigned checkpoint must be the
replayed log. It needs no account.

With --state FILE it resumes from the epochs audited before (FILE is created
on the first run and rewritten after each successful one) and pins the log's
keys from that first run. A failure exits with status 3 and leaves FILE as it
was.`,
		Example: `  parley transparency audit --server https://parley.example
  parley transparency audit --server https://parley.example --state ~/parley-audit.state --json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" {
				return usagef("--server is required")
			}
			var st *client.AuditState
			before := uint64(0)
			if state != "" {
				f, err := os.Open(state)
				switch {
				case errors.Is(err, fs.ErrNotExist):
				case err != nil:
					return err
				default:
					st, err = client.LoadAuditState(f)
					f.Close()
					if err != nil {
						return fmt.Errorf("%w (%s)", err, state)
					}
					before = st.Size()
				}
			}
			bar := a.newProgressBar()
			st, err := client.AuditLog(cmd.Context(), server, nil, nil, st, func(p client.AuditProgress) {
				bar.update(client.Progress{Phase: "epochs", Done: int(p.Audited), Total: int(p.Total)})
			})
			bar.finish()
			if err != nil {
				return err
			}
			if state != "" {
				if err := writeStateFile(state, st); err != nil {
					return err
				}
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Server     string `json:"server"`
					Epochs     uint64 `json:"epochs"`
					New        uint64 `json:"new_epochs"`
					Checkpoint string `json:"checkpoint"`
				}{server, st.Size(), st.Size() - before, string(st.Checkpoint)})
			}
			fmt.Fprintf(a.stdout, "audited %d epochs (%d new): the log is append-only and its checkpoint matches\n", st.Size(), st.Size()-before)
			text, _, _ := strings.Cut(string(st.Checkpoint), "\n\n")
			fmt.Fprintf(a.stdout, "checkpoint: %s\n", sanitize(strings.ReplaceAll(text, "\n", " ")))
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "server URL")
	cmd.Flags().StringVar(&state, "state", "", "file to resume from and save the audit to")
	return cmd
}

// writeStateFile replaces path atomically.
func writeStateFile(path string, st *client.AuditState) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := st.Marshal(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
