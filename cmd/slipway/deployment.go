package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway"
)

func newDeploymentCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "deployment ID",
		Short: "Show one deployment: status, image, timings per phase and each build step",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := g.client().Deployment(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), toJSON(d))
			}
			return printDeployment(cmd.OutOrStdout(), d, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printDeployment prints d's fields, then its phases and its build steps.
func printDeployment(w io.Writer, d *slipway.Deployment, now time.Time) error {
	if err := printFields(w, d, now); err != nil {
		return err
	}
	printError(w, d)
	if err := printPhases(w, d); err != nil {
		return err
	}
	return printSteps(w, d)
}

// printFields prints d's fields, one "name: value" a line.
func printFields(w io.Writer, d *slipway.Deployment, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(name, value string) { fmt.Fprintf(tw, "%s:\t%s\n", name, value) }
	field("deployment", d.ID)
	field("project", d.Project)
	field("status", string(d.Status))
	field("trigger", orDash(string(d.Trigger)))
	field("ref", orDash(d.Ref))
	field("commit", orDash(d.Commit))
	field("image", orDash(d.Image))
	field("digest", orDash(d.Digest))
	field("created", when(&d.CreatedAt, now))
	field("started", when(d.StartedAt, now))
	field("finished", when(d.FinishedAt, now))
	field("duration", duration(d))
	if _, ok := servingMs(d); ok {
		field("serving", serving(d)+" from the push")
	}
	if p := d.Progress; p != nil && !d.Status.Terminal() {
		field("progress", progressText(p))
	}
	switch {
	case d.LogPruned:
		field("log", "deleted by the project's log retention")
	case d.LogComplete != nil && *d.LogComplete:
		field("log", fmt.Sprintf("complete, %d lines (stored %s)", d.LogLines, when(d.LogCompleteAt, now)))
	case d.LogComplete != nil:
		field("log", fmt.Sprintf("INCOMPLETE: the build wrote %d lines; not all had reached the server by %s", d.LogLines, when(d.LogCompleteAt, now)))
	}
	if d.FailedStep != "" {
		field("failed step", oneLine(d.FailedStep))
	}
	return tw.Flush()
}

// printError prints the last maxErrorLines lines of d's error, unless d
// succeeded.
func printError(w io.Writer, d *slipway.Deployment) {
	if d.Error == "" || d.Status == slipway.StatusSucceeded {
		return
	}
	fmt.Fprintln(w, "error:")
	lines := strings.Split(strings.TrimRight(d.Error, "\n"), "\n")
	if len(lines) > maxErrorLines {
		lines = append([]string{fmt.Sprintf("... (%d lines; see 'slipway logs %s')", len(lines), d.ID)}, lines[len(lines)-maxErrorLines:]...)
	}
	for _, l := range lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// printPhases prints the table of d's phases and their durations, if any.
func printPhases(w io.Writer, d *slipway.Deployment) error {
	ps := phases(d)
	if len(ps) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tDURATION")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\n", p, ms(d.Timings[p]))
	}
	return tw.Flush()
}

// printSteps prints the table of d's build steps, if any.
func printSteps(w io.Writer, d *slipway.Deployment) error {
	if len(d.Steps) == 0 {
		return nil
	}
	if inRegistry := countSteps(d.Steps, func(s slipway.BuildStep) bool { return s.InRegistry }); inRegistry > 0 {
		fmt.Fprintf(w, "\nSTEPS (%d, %d cached, %d applied in the registry)\n", len(d.Steps), cachedSteps(d.Steps), inRegistry)
	} else {
		fmt.Fprintf(w, "\nSTEPS (%d, %d cached)\n", len(d.Steps), cachedSteps(d.Steps))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// WHY: why a step cannot be reused from earlier builds, when any
	// cannot (the cause of a cache miss that is not a changed input).
	why := slices.ContainsFunc(d.Steps, func(s slipway.BuildStep) bool { return s.Why != "" })
	if why {
		fmt.Fprintln(tw, "#\tDURATION\tCACHE\tSTEP\tWHY")
	} else {
		fmt.Fprintln(tw, "#\tDURATION\tCACHE\tSTEP")
	}
	for _, s := range d.Steps {
		cache := "-"
		if s.Cached {
			cache = "cached"
		} else if s.InRegistry {
			cache = "registry"
		}
		if why {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", s.N, ms(s.DurationMs), cache, oneLine(s.Instruction), oneLine(s.Why))
		} else {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.N, ms(s.DurationMs), cache, oneLine(s.Instruction))
		}
	}
	return tw.Flush()
}

// when formats a point in time with its age: "2026-01-02 15:04:05 (3m ago)",
// or "-".
func when(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	s := t.Local().Format("2006-01-02 15:04:05")
	if now.Sub(*t) < 24*time.Hour {
		s += " (" + age(*t, now) + ")"
	}
	return s
}

// progressText describes a running deployment's progress: "build, step
// 3/5 (2 cached): RUN make", "[2/3] step 1/4", or just the phase.
func progressText(p *slipway.Progress) string {
	s := p.Phase
	if p.StepsTotal > 0 {
		s += ", "
		if p.Stages > 0 {
			s += fmt.Sprintf("stage %d/%d ", p.Stage, p.Stages)
		}
		s += fmt.Sprintf("step %d/%d (%d cached so far)", p.Step, p.StepsTotal, p.CachedSteps)
		if p.Instruction != "" {
			s += ": " + oneLine(p.Instruction)
		}
	}
	return s
}
