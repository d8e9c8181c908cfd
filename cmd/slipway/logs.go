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

// logPage is how many lines `logs` asks for at a time.
const logPage = 1000

func newLogsCmd(g *globals) *cobra.Command {
	var (
		followLog bool
		asJSON    bool
		q         slipway.LogQuery
	)
	cmd := &cobra.Command{
		Use:   "logs DEPLOYMENT [-f] [--search TEXT] [--step STEP] [--from N] [--json]",
		Short: "Print a deployment's build output",
		Long: `Print a deployment's build output. With -f it follows the build live: the
lines so far, then each new line as it is written, until the deployment
ends; it then exits 0 only if the deployment succeeded.

--search keeps the lines containing every word of TEXT (ignoring case;
"quoted phrases" keep their spaces), --step the lines of one step, --from
the lines numbered N and later. --json prints one JSON object per line.`,
		Args: exactArgs("DEPLOYMENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if q.From < 0 {
				return usageError{fmt.Errorf("--from must not be negative")}
			}
			q.Deployment = args[0]
			c := g.client()
			printLine := linePrinter(cmd.OutOrStdout(), asJSON)
			if followLog {
				return followLogs(cmd, c, q, printLine)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			printLine = linePrinter(w, asJSON)
			for printed := 0; ; {
				q.Limit = logPage
				lines, err := c.SearchLogs(cmd.Context(), q)
				if err != nil {
					return err
				}
				for _, l := range lines {
					printLine(l)
				}
				printed += len(lines)
				if len(lines) < logPage {
					if err := w.Flush(); err != nil {
						return err
					}
					return logState(cmd, c, q.Deployment, printed)
				}
				q.From = lines[len(lines)-1].N + 1
			}
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&followLog, "follow", "f", false, "follow the build live; exit 0 only if the deployment succeeded")
	f.StringVar(&q.Search, "search", "", "only lines containing every word of TEXT, ignoring case")
	f.StringVar(&q.Step, "step", "", "only lines of this step, e.g. fetch, build or push")
	f.Int64Var(&q.From, "from", 0, "start at line N")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per line (n, time, stream, step, text)")
	return cmd
}

// linePrinter returns a function printing a log line's text (with no
// escape sequences but colours, see terminalText), or the line as JSON.
func linePrinter(w io.Writer, asJSON bool) func(slipway.LogLine) {
	if !asJSON {
		return func(l slipway.LogLine) { fmt.Fprintln(w, terminalText(l.Text)) }
	}
	enc := json.NewEncoder(w)
	return func(l slipway.LogLine) {
		_ = enc.Encode(struct {
			N      int64  `json:"n"`
			Time   string `json:"time"`
			Stream string `json:"stream"`
			Step   string `json:"step,omitempty"`
			Text   string `json:"text"`
		}{l.N, l.Time.Format("2006-01-02T15:04:05.000Z07:00"), l.Stream, l.Step, l.Text})
	}
}

// followLogs prints the deployment's log live (the lines q selects) until
// it ends, and returns an error unless it succeeded.
func followLogs(cmd *cobra.Command, c *client.Client, q slipway.LogQuery, printLine func(slipway.LogLine)) error {
	printed := 0
	err := c.FollowLogs(cmd.Context(), q.Deployment, q.From, func(l slipway.LogLine) error {
		if slipway.MatchLogLine(l, q) {
			printLine(l)
			printed++
		}
		return nil
	})
	if err != nil {
		if cmd.Context().Err() != nil {
			return fmt.Errorf("stopped following deployment %s (it goes on)", q.Deployment)
		}
		return err
	}
	d, err := c.Deployment(cmd.Context(), q.Deployment)
	if err != nil {
		return err
	}
	if printed == 0 && d.LogPruned {
		return errPruned(d)
	}
	noteIncomplete(cmd.ErrOrStderr(), d)
	return result(d)
}

// logState says what the printed log lacks: an error when the deployment's
// log was deleted by its project's log retention (a log that prints
// nothing must not look like a build that printed nothing), a note on
// stderr when lines of an ended deployment never reached the server.
func logState(cmd *cobra.Command, c *client.Client, id string, printed int) error {
	d, err := c.Deployment(cmd.Context(), id)
	if err != nil {
		return err
	}
	if d.LogPruned && printed == 0 {
		return errPruned(d)
	}
	noteIncomplete(cmd.ErrOrStderr(), d)
	return nil
}

// noteIncomplete tells w when the deployment ended with an incomplete log.
func noteIncomplete(w io.Writer, d *slipway.Deployment) {
	if d.Status.Terminal() && !d.LogPruned && d.LogComplete != nil && !*d.LogComplete {
		fmt.Fprintf(w, "slipway: the log of deployment %s is incomplete: the build wrote %d lines, and not all of them had reached the server when it ended\n",
			d.ID, d.LogLines)
	}
}

func errPruned(d *slipway.Deployment) error {
	return fmt.Errorf("the log of deployment %s was deleted by project %s's log retention (the deployment %s; 'slipway deployment %s' shows its record)",
		d.ID, d.Project, d.Status, d.ID)
}

// result is nil for a succeeded deployment, else an error saying how it
// ended.
func result(d *slipway.Deployment) error {
	if d.Status == slipway.StatusSucceeded {
		return nil
	}
	return fmt.Errorf("deployment %s %s%s", d.ID, d.Status, failure(d))
}
