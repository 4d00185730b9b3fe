package main

import (
	"encoding/base64"
	"fmt"

	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"

	"github.com/parleyim/parley/client"
)

func (a *app) safetyNumberCommand() *cobra.Command {
	var noQR bool
	cmd := &cobra.Command{
		Use:   "safety-number USERNAME",
		Short: "Show the safety number to compare with another person",
		Long: `Safety-number shows the 60-digit safety number of your account and
USERNAME's, and a QR code of it. You and the other person see the same
number; compare it in person or over a channel you trust. If it matches, no
one (the server included) has substituted either account's key.

With --json it prints the number and the QR payload (base64).`,
		Example: `  parley safety-number bob`,
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
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
			if a.json {
				return writeJSON(a.stdout, struct {
					Account      string `json:"account"`
					With         string `json:"with"`
					SafetyNumber string `json:"safety_number"`
					QR           string `json:"qr"`
				}{c.Username(), with, safetyDigits(number), base64.StdEncoding.EncodeToString(qr)})
			}
			a.printSafetyNumber(c.Username(), with, number, qr, !noQR)
			fmt.Fprintf(a.stdout, "compare the number with %s in person or over a channel you trust\n", with)
			return nil
		},
	}
	cmd.Flags().BoolVar(&noQR, "no-qr", false, "do not draw the QR code")
	return cmd
}

// printSafetyNumber prints the grouped safety number and, with qr, its QR
// code.
func (a *app) printSafetyNumber(account, with, number string, payload []byte, qr bool) {
	fmt.Fprintf(a.stdout, "safety number of %s and %s:\n\n%s\n\n", account, with, groupSafetyNumber(number))
	if !qr {
		return
	}
	qrterminal.GenerateWithConfig(string(payload), qrterminal.Config{
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
