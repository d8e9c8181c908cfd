package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway"
)

func newCancelCmd(g *globals) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "cancel DEPLOYMENT",
		Short: "Stop a queued or running deployment",
		Long: `Stop a queued or running deployment: its build is killed, it pushes no
image, and it ends cancelled. With --wait, wait until it has ended.`,
		Args: exactArgs("DEPLOYMENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			d, err := c.Cancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !wait {
				fmt.Fprintf(cmd.OutOrStdout(), "cancelling deployment %s\n", d.ID)
				return nil
			}
			_ = follow(cmd, c, d) // prints the state changes; the end is checked below
			final, err := c.Deployment(cmd.Context(), d.ID)
			if err != nil {
				return err
			}
			if final.Status != slipway.StatusCancelled {
				return fmt.Errorf("deployment %s ended %s before it could be cancelled", final.ID, final.Status)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the deployment has ended")
	return cmd
}
