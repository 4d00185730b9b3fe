// Command parley is Parley's command-line client: register a device, send
// and receive end-to-end encrypted messages, compare safety numbers, and
// chat in a terminal UI (docs/cli.md).
//
// It is wiring only: flags and environment go into the client SDK
// (package client), which does all the protocol work.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// Exit codes (docs/cli.md): scripts branch on them, so they never change.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitSecurity = 3
)

const exitCodesHelp = `
Exit codes:
  0  success
  1  error
  2  usage error (bad flags or arguments)
  3  security error: the server (or someone in its place) sent keys or
     device lists that do not verify; the server may be lying

Environment:
  PARLEY_HOME        home directory (default ~/.parley); --home overrides it
  PARLEY_PASSPHRASE  passphrase of the local store; without it parley asks
                     on the terminal
  PARLEY_SERVER      default server URL for register
`

// run is the whole program, callable from tests: it parses args, runs one
// command and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.LookupEnv}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	a.flushAlerts()
	if err == nil {
		return a.exitCode
	}
	code := a.report(cmd, err)
	if a.exitCode == exitSecurity {
		// A key-transparency alert outranks whatever else went wrong.
		return exitSecurity
	}
	return code
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// args wraps a cobra argument check so that its failure is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "parley",
		Short: "End-to-end encrypted messaging from the command line",
		Long: `parley is the command-line client of Parley, an end-to-end encrypted
messenger. The server only ever sees public keys and ciphertext; this device
keeps its keys and history in an encrypted home directory.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Args set on the root makes cobra hand unknown subcommands to us
		// rather than fail with its own message, so they exit with 2.
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) == 0 {
				return nil
			}
			err := usagef("unknown command %q", a[0])
			if s := cmd.SuggestionsFor(a[0]); len(s) > 0 {
				err = &usageError{fmt.Errorf("unknown command %q (did you mean %q?)", a[0], s[0])}
			}
			return err
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Usage()
			return usagef("no command given")
		},
	}
	root.SuggestionsMinimumDistance = 2
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.SetUsageTemplate(root.UsageTemplate() + exitCodesHelp)
	pf := root.PersistentFlags()
	pf.StringVar(&a.home, "home", "", "home directory of this device (default $PARLEY_HOME or ~/.parley)")
	pf.BoolVar(&a.json, "json", false, "print data as JSON (one object per line)")
	root.AddCommand(
		a.registerCommand(),
		a.sendCommand(),
		a.receiveCommand(),
		a.historyCommand(),
		a.whoamiCommand(),
		a.devicesCommand(),
		a.deviceCommand(),
		a.accountCommand(),
		a.contactsCommand(),
		a.safetyNumberCommand(),
		a.verifyCommand(),
		a.transparencyCommand(),
		a.chatCommand(),
		a.backupCommand(),
		a.recoveryCommand(),
	)
	return root
}

// report prints err in the house style and returns the exit code.
func (a *app) report(cmd *cobra.Command, err error) int {
	msg, hints, code := describe(err, a)
	fmt.Fprintf(a.stderr, "parley: error: %s\n", msg)
	for _, h := range hints {
		fmt.Fprintf(a.stderr, "parley: hint: %s\n", h)
	}
	var ue *usageError
	if errors.As(err, &ue) && cmd != nil {
		fmt.Fprintf(a.stderr, "parley: hint: see '%s --help'\n", cmd.CommandPath())
	}
	return code
}

// errorText turns an SDK error into a line for people: the SDK's
// "client: " package prefix says nothing to a user of the command.
func errorText(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "client: ")
	s = strings.TrimPrefix(s, "provision: ")
	return strings.TrimRight(s, ".")
}
