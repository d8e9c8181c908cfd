package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/client"
)

func newAppCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "app",
		Short: "Look at a project's running app",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newAppLogsCmd(g))
	return cmd
}

func newAppLogsCmd(g *globals) *cobra.Command {
	var (
		follow bool
		asJSON bool
		q      client.AppLogQuery
	)
	cmd := &cobra.Command{
		Use:   "logs NAME [-f] [--tail N] [--release ID] [--json]",
		Short: "Print the output of a project's app",
		Long: `Print what the project's app wrote on stdout and stderr (every release's
containers; the values of its runtime environment masked): the last --tail
lines (default 100), of one --release (a deployment id) if given. With -f it
then prints each new line as the app writes it, until Ctrl-C. --json prints
one JSON object per line (n, release, time, stream, text).

The output is kept by the project's log retention ('slipway project set NAME
--log-retention AGE --log-retention-size SIZE'), at most 100,000 lines.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if q.Tail < 0 {
				return usageError{fmt.Errorf("--tail must not be negative")}
			}
			q.Project = args[0]
			return appLogs(cmd, g.client(), q, follow, asJSON)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "then print each new line as it is written, until Ctrl-C")
	f.IntVar(&q.Tail, "tail", 100, "print the last N lines (0: none, with -f only new ones)")
	f.StringVar(&q.Release, "release", "", "only the lines of this release (a deployment id)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per line (n, release, time, stream, text)")
	return cmd
}

// appLogs prints the project's stored app lines, then follows them.
func appLogs(cmd *cobra.Command, c *client.Client, q client.AppLogQuery, follow, asJSON bool) error {
	ctx := cmd.Context()
	tail := q.Tail
	if tail == 0 {
		q.Tail = 1 // to learn the app's status; not printed
	}
	lines, st, err := c.AppLogs(ctx, q)
	if err != nil {
		return err
	}
	if st.State == string(slipway.AppNone) && len(lines) == 0 {
		return slipway.Errorf(slipway.ENOTFOUND, "project %s has no app output: nothing deployed yet (deploy it with `slipway deploy %s`), or the server serves no apps", q.Project, q.Project)
	}
	w := bufio.NewWriter(cmd.OutOrStdout())
	print := appLinePrinter(w, asJSON)
	after := int64(-1)
	if len(lines) > 0 {
		after = lines[len(lines)-1].N
	}
	if tail > 0 {
		for _, l := range lines {
			print(l)
		}
	}
	if err := w.Flush(); err != nil || !follow {
		return err
	}
	return c.FollowAppLogs(ctx, q.Project, after, q.Release, func(l slipway.AppLogLine) error {
		print(l)
		return w.Flush()
	})
}

// appLinePrinter prints an app line as "<time> <release> <stream> text"
// (text with no escape sequences but colours), or as JSON.
func appLinePrinter(w io.Writer, asJSON bool) func(slipway.AppLogLine) {
	if !asJSON {
		return func(l slipway.AppLogLine) {
			fmt.Fprintf(w, "%s %s %s %s\n", l.Time.Local().Format("15:04:05.000"), l.Release, l.Stream, terminalText(l.Text))
		}
	}
	enc := json.NewEncoder(w)
	return func(l slipway.AppLogLine) {
		_ = enc.Encode(struct {
			N       int64  `json:"n"`
			Release string `json:"release"`
			Time    string `json:"time"`
			Stream  string `json:"stream"`
			Text    string `json:"text"`
		}{l.N, l.Release, l.Time.Format("2006-01-02T15:04:05.000Z07:00"), l.Stream, l.Text})
	}
}
