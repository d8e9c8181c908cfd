package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway"
)

func newOpenCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "open NAME",
		Short: "Print the URL a project's app answers at, and open it in a browser",
		Long: `Print the URL of the project's app on the server's apps' gateway
(http://NAME.<apps domain>:<port>; its current release, woken by the first
request). On a terminal with a graphical display it also opens the URL
with xdg-open.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := g.client().ProjectView(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if v.AppURL == nil {
				return slipway.Errorf(slipway.ENOTFOUND, "the server serves no apps (it runs with --apps-listen off)")
			}
			fmt.Fprintln(cmd.OutOrStdout(), *v.AppURL)
			if canOpenBrowser(cmd) {
				if err := exec.Command("xdg-open", *v.AppURL).Start(); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "could not open a browser: %v\n", err)
				}
			}
			return nil
		},
	}
}

// canOpenBrowser reports whether the command runs on a terminal with a
// graphical display and xdg-open.
func canOpenBrowser(cmd *cobra.Command) bool {
	if !isTerminal(cmd.OutOrStdout()) {
		return false
	}
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return false
	}
	_, err := exec.LookPath("xdg-open")
	return err == nil
}
