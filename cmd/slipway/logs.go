package main

import (
	"bufio"
	"fmt"

	"github.com/spf13/cobra"
)

// logPage is how many lines `logs` asks for at a time.
const logPage = 1000

func newLogsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logs DEPLOYMENT",
		Short: "Print a deployment's build output",
		Args:  exactArgs("DEPLOYMENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := g.client()
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			for from := int64(0); ; {
				lines, err := c.Logs(cmd.Context(), args[0], from, logPage)
				if err != nil {
					return err
				}
				for _, l := range lines {
					fmt.Fprintln(w, l.Text)
				}
				if len(lines) < logPage {
					return w.Flush()
				}
				from = lines[len(lines)-1].N + 1
			}
		},
	}
}
