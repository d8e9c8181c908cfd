package main

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway"
)

// maxErrorLines caps the failure lines shown under a failed deployment.
const maxErrorLines = 20

func newDeploymentsCmd(g *globals) *cobra.Command {
	var (
		asJSON bool
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "deployments NAME",
		Short: "List a project's deployments, newest first",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usageError{fmt.Errorf("--limit must not be negative")}
			}
			ds, err := g.client().Deployments(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]deploymentJSON, len(ds))
				for i, d := range ds {
					out[i] = toJSON(d)
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			if len(ds) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "No deployments of %s yet: push to its branch or run 'slipway deploy %s'.\n", args[0], args[0])
				return nil
			}
			return printDeployments(cmd.OutOrStdout(), ds, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVarP(&limit, "limit", "n", 0, "list at most this many (default: the server's page, 100)")
	return cmd
}

// printDeployments prints a table, one row per deployment, with the
// failed step and error of failed deployments indented under their row.
func printDeployments(w io.Writer, ds []*slipway.Deployment, now time.Time) error {
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tCOMMIT\tIMAGE\tDIGEST\tDURATION\tSERVING\tCREATED\tPHASES")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			d.ID, d.Status, commitCell(d), orDash(d.Image), orDash(shortDigest(d.Digest)), duration(d), serving(d), age(d.CreatedAt, now),
			orDash(phaseSummary(d)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The table has one line per row (cells hold no newlines), so the
	// details can go under their row without breaking the columns.
	rows := strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n")
	fmt.Fprintln(w, rows[0])
	for i, d := range ds {
		fmt.Fprintln(w, rows[i+1])
		if d.Status == slipway.StatusSucceeded || (d.Error == "" && d.FailedStep == "") {
			continue
		}
		if d.FailedStep != "" {
			fmt.Fprintf(w, "    failed step: %s\n", oneLine(d.FailedStep))
		}
		lines := strings.Split(strings.TrimRight(d.Error, "\n"), "\n")
		if len(lines) > maxErrorLines {
			lines = append([]string{fmt.Sprintf("... (%d lines; see 'slipway logs %s')", len(lines), d.ID)}, lines[len(lines)-maxErrorLines:]...)
		}
		for _, l := range lines {
			if l != "" {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
	return nil
}

// commitCell is d's short commit, marked "(pr-N)" for a pull request's
// preview.
func commitCell(d *slipway.Deployment) string {
	c := orDash(shorten(d.Commit, 12))
	if d.Preview != 0 {
		c += fmt.Sprintf(" (pr-%d)", d.Preview)
	}
	return c
}

// deploymentJSON is a deployment as `deployments --json` prints it: every
// key is always present, null when unknown.
type deploymentJSON struct {
	ID         string              `json:"id"`
	Project    string              `json:"project"`
	Ref        string              `json:"ref"`
	Commit     string              `json:"commit"`
	Trigger    string              `json:"trigger"`
	Status     string              `json:"status"`
	Image      string              `json:"image"`
	Digest     string              `json:"digest"`
	Error      *string             `json:"error"`
	FailedStep *string             `json:"failedStep"`
	Timings    map[string]int64    `json:"timings"`
	Steps      []slipway.BuildStep `json:"steps"`
	DurationMs *int64              `json:"durationMs"`
	// ServingMs: from the push (queued) until the image served; null for
	// a deployment not released.
	ServingMs  *int64     `json:"servingMs"`
	CreatedAt  time.Time  `json:"createdAt"`
	StartedAt  *time.Time `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt"`
	LogPruned  bool       `json:"logPruned"`
	// LogComplete: null while running (or unknown), else whether the
	// stored log was complete when it ended.
	LogComplete   *bool             `json:"logComplete"`
	LogCompleteAt *time.Time        `json:"logCompleteAt"`
	LogLines      int64             `json:"logLines"`
	Progress      *slipway.Progress `json:"progress"`
	// Preview is the pull request whose preview the deployment builds,
	// null for the project's own.
	Preview *int `json:"preview"`
}

func toJSON(d *slipway.Deployment) deploymentJSON {
	out := deploymentJSON{
		ID: d.ID, Project: d.Project, Ref: d.Ref, Commit: d.Commit, Trigger: string(d.Trigger), Status: string(d.Status),
		Image: d.Image, Digest: d.Digest, Timings: d.Timings, CreatedAt: d.CreatedAt, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt,
		LogPruned: d.LogPruned, Progress: d.Progress,
		LogComplete: d.LogComplete, LogCompleteAt: d.LogCompleteAt, LogLines: d.LogLines,
	}
	if d.Error != "" {
		out.Error = &d.Error
	}
	if d.Preview != 0 {
		out.Preview = &d.Preview
	}
	if d.FailedStep != "" {
		out.FailedStep = &d.FailedStep
	}
	if out.Timings == nil {
		out.Timings = map[string]int64{}
	}
	out.Steps = d.Steps
	if out.Steps == nil {
		out.Steps = []slipway.BuildStep{}
	}
	if ms, ok := durationMs(d); ok {
		out.DurationMs = &ms
	}
	if ms, ok := servingMs(d); ok {
		out.ServingMs = &ms
	}
	return out
}

// durationMs is how long d took: its total timing, else from creation to
// finish; ok is false while it runs.
func durationMs(d *slipway.Deployment) (ms int64, ok bool) {
	if total, ok := d.Timings["total"]; ok {
		return total, true
	}
	if d.FinishedAt != nil {
		return d.FinishedAt.Sub(d.CreatedAt).Milliseconds(), true
	}
	return 0, false
}

// duration formats durationMs for people: "1m23.4s", or "-".
func duration(d *slipway.Deployment) string {
	ms, ok := durationMs(d)
	if !ok {
		return "-"
	}
	dur := time.Duration(ms) * time.Millisecond
	if dur >= time.Minute {
		return dur.Round(time.Second).String()
	}
	return dur.Round(100 * time.Millisecond).String()
}

// phaseOrder is the order phases are shown in; others follow by name.
var phaseOrder = []string{"queue", "wake", "fetch", "build", "push", "release", "total"}

// servingMs is how long d took from its push (queued) until its image
// served (the end of its release phase); ok is false for a deployment
// that was not released.
func servingMs(d *slipway.Deployment) (ms int64, ok bool) {
	if _, released := d.Timings[slipway.PhaseRelease]; !released || d.Status != slipway.StatusSucceeded {
		return 0, false
	}
	return durationMs(d)
}

// serving formats servingMs: "in 12.3s", or "-".
func serving(d *slipway.Deployment) string {
	n, ok := servingMs(d)
	if !ok {
		return "-"
	}
	return "in " + ms(n)
}

// phases lists the phases of d's timings in phaseOrder, then the others by
// name.
func phases(d *slipway.Deployment) []string {
	var out, rest []string
	known := map[string]bool{}
	for _, p := range phaseOrder {
		known[p] = true
		if _, ok := d.Timings[p]; ok {
			out = append(out, p)
		}
	}
	for p := range d.Timings {
		if !known[p] {
			rest = append(rest, p)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// phaseSummary is a one-line breakdown of d's phases without the total,
// e.g. "queue 8ms wake 90ms fetch 210ms build 3.1s (4/5 cached) push 320ms".
func phaseSummary(d *slipway.Deployment) string {
	var parts []string
	for _, p := range phases(d) {
		if p == "total" {
			continue
		}
		part := p + " " + ms(d.Timings[p])
		if p == "build" && len(d.Steps) > 0 {
			part += fmt.Sprintf(" (%d/%d cached)", cachedSteps(d.Steps), len(d.Steps))
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, " ")
}

func cachedSteps(steps []slipway.BuildStep) int {
	return countSteps(steps, func(s slipway.BuildStep) bool { return s.Cached })
}

// countSteps counts the steps for which f is true.
func countSteps(steps []slipway.BuildStep, f func(slipway.BuildStep) bool) int {
	n := 0
	for _, s := range steps {
		if f(s) {
			n++
		}
	}
	return n
}

// ms formats milliseconds for people: "85ms", "3.1s", "1m23s".
func ms(n int64) string {
	d := time.Duration(n) * time.Millisecond
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", n)
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// age says how long ago t was: "45s ago", "12m ago", "3h ago", else the date.
func age(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case t.IsZero():
		return "-"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02 15:04")
}

// shortDigest keeps the algorithm and 12 hex digits: "sha256:0123456789ab".
func shortDigest(digest string) string {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok {
		return shorten(digest, 12)
	}
	return algo + ":" + shorten(hex, 12)
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a table cell on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
