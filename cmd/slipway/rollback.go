package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newRollbackCmd(g *globals) *cobra.Command {
	var (
		to   string
		wait bool
	)
	cmd := &cobra.Command{
		Use:   "rollback NAME [--to DEPLOYMENT|SHA]",
		Short: "Deploy an earlier successful build's image again, without building",
		Long: `Make a new deployment of the image an earlier successful deployment
pushed, without rebuilding: --to names it by deployment id or commit SHA
(7 or more digits); without --to, the successful deployment before the
latest one. It prints the new deployment's id; with --wait it waits until
it ends and exits 0 only if it succeeded.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			d, err := c.Rollback(cmd.Context(), args[0], to)
			if err != nil {
				return err
			}
			if !wait {
				fmt.Fprintln(cmd.OutOrStdout(), d.ID)
				return nil
			}
			return follow(cmd, c, d)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "deployment id or commit SHA to roll back to (default: the successful deployment before the latest)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the rollback to end; exit 0 only if it succeeded")
	return cmd
}
