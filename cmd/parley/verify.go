package main

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/parleyim/parley/client"
)

// errNotVerified is a "no" to verify's question: nothing was marked.
var errNotVerified = errors.New("the safety numbers were not confirmed to match; the contact is not marked verified")

func (a *app) verifyCommand() *cobra.Command {
	var yes, noQR bool
	cmd := &cobra.Command{
		Use:   "verify USERNAME",
		Short: "Compare safety numbers with a contact and mark them verified",
		Long: `Verify shows the safety number of your account and USERNAME's and its QR
code (as safety-number does), asks whether it matches the one the other
person sees (compare in person, or scan each other's code), and on yes marks
the contact verified.

If the account key of a verified contact changes later, parley refuses to
send to them until you compare the new number and run verify again.

--yes marks without asking (for scripts that compared the numbers
themselves); with --json, --yes is required and the result is printed as
JSON.`,
		Example: `  parley verify bob
  parley verify --yes bob`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if a.json && !yes {
				return usagef("--json needs --yes: there is no one to ask")
			}
			c, err := a.open(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			number, qr, err := c.SafetyNumber(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			with, err := client.NormalizeUsername(argv[0]) // valid: SafetyNumber took it
			if err != nil {
				return err
			}
			if !a.json {
				a.printSafetyNumber(c.Username(), with, number, qr, !noQR)
			}
			if !yes {
				q := fmt.Sprintf("does %s see the same number (or did the QR codes match)? [y/N] ", with)
				if err := a.ask(q, "y", "yes"); err != nil {
					return errNotVerified
				}
			}
			if err := c.MarkVerified(cmd.Context(), with); err != nil {
				return err
			}
			if a.json {
				return writeJSON(a.stdout, struct {
					Account      string `json:"account"`
					With         string `json:"with"`
					SafetyNumber string `json:"safety_number"`
					QR           string `json:"qr"`
					Verified     bool   `json:"verified"`
				}{c.Username(), with, safetyDigits(number), base64.StdEncoding.EncodeToString(qr), true})
			}
			fmt.Fprintf(a.stdout, "%s is verified\n", with)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "mark verified without asking (compare the numbers yourself)")
	cmd.Flags().BoolVar(&noQR, "no-qr", false, "do not draw the QR code")
	return cmd
}
