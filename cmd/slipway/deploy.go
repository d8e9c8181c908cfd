package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/client"
)

// pollInterval is how often `deploy --wait` asks for the deployment's
// state (a variable so tests can shorten it).
var pollInterval = 500 * time.Millisecond

func newDeployCmd(g *globals) *cobra.Command {
	var (
		in          client.DeployInput
		wait        bool
		followBuild bool
	)
	cmd := &cobra.Command{
		Use:   "deploy NAME [--commit SHA | --ref REF] [--wait | --follow]",
		Short: "Deploy a commit of a project (default: the head of its branch)",
		Long: `Start a deployment of a project: of the full commit SHA given with
--commit, or else of the head of --ref (default: the project's branch).
It prints the deployment id. With --wait it follows the deployment until it
ends and exits 0 only if it succeeded. --follow does the same and shows the
build as it runs: a progress bar of the Dockerfile's steps ("STEP n/m") when
stdout is a terminal, the build's log lines otherwise.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Project = args[0]
			c := g.client()
			d, err := c.Deploy(cmd.Context(), in)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if followBuild {
				return followBuildLog(cmd, c, d)
			}
			if !wait {
				fmt.Fprintln(w, d.ID)
				return nil
			}
			return follow(cmd, c, d)
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Commit, "commit", "", "full SHA of the commit to deploy")
	f.StringVar(&in.Ref, "ref", "", "branch or ref whose head to deploy (default: the project's branch)")
	f.BoolVar(&wait, "wait", false, "wait for the deployment to end; exit 0 only if it succeeded")
	f.BoolVarP(&followBuild, "follow", "f", false, "like --wait, showing the build: a progress bar on a terminal, log lines otherwise")
	cmd.MarkFlagsMutuallyExclusive("commit", "ref")
	cmd.MarkFlagsMutuallyExclusive("wait", "follow")
	return cmd
}

// imageRef is the pushed image by tag and digest.
func imageRef(d *slipway.Deployment) string {
	switch {
	case d.Image != "" && d.Digest != "":
		return d.Image + "@" + d.Digest
	case d.Image != "":
		return d.Image
	}
	return "no image"
}

// failure says where and why d failed: ` at step "RUN x": message`.
func failure(d *slipway.Deployment) string {
	s := ""
	if d.FailedStep != "" {
		s += fmt.Sprintf(" at step %q", d.FailedStep)
	}
	if d.Error != "" {
		s += ": " + d.Error
	}
	return s
}

// follow prints a deployment's state changes until it ends; the error is
// non-nil unless it succeeded.
func follow(cmd *cobra.Command, c *client.Client, d *slipway.Deployment) error {
	w := cmd.OutOrStdout()
	var err error
	fmt.Fprintf(w, "deployment %s %s\n", d.ID, d.Status)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for last := d.Status; !d.Status.Terminal(); {
		select {
		case <-cmd.Context().Done():
			return fmt.Errorf("stopped waiting for deployment %s (it goes on: see 'slipway deployments %s')", d.ID, d.Project)
		case <-ticker.C:
		}
		if d, err = c.Deployment(cmd.Context(), d.ID); err != nil {
			return fmt.Errorf("follow deployment: %w", err)
		}
		if d.Status != last && !d.Status.Terminal() {
			fmt.Fprintf(w, "deployment %s %s\n", d.ID, d.Status)
		}
		last = d.Status
	}
	if d.Status == slipway.StatusSucceeded {
		fmt.Fprintf(w, "deployment %s succeeded in %s: %s\n", d.ID, duration(d), imageRef(d))
		return nil
	}
	fmt.Fprintf(w, "deployment %s %s\n", d.ID, d.Status)
	return fmt.Errorf("deployment %s %s%s (see 'slipway logs %s')", d.ID, d.Status, failure(d), d.ID)
}

// followBuildLog shows a deployment's build live (see buildProgress) until
// it ends, then its result; the error is non-nil unless it succeeded.
func followBuildLog(cmd *cobra.Command, c *client.Client, d *slipway.Deployment) error {
	w := cmd.OutOrStdout()
	ctx := cmd.Context()
	fmt.Fprintf(w, "deployment %s %s\n", d.ID, d.Status)
	p := newProgress(w, isTerminal(w))
	err := c.FollowLogs(ctx, d.ID, 1, func(l slipway.LogLine) error {
		p.line(l)
		return nil
	})
	if err != nil {
		p.finish(true)
		if ctx.Err() != nil {
			return fmt.Errorf("stopped following deployment %s (it goes on: see 'slipway deployments %s')", d.ID, d.Project)
		}
		return fmt.Errorf("follow deployment %s: %w", d.ID, err)
	}
	final, err := c.Deployment(ctx, d.ID)
	if err != nil {
		p.finish(true)
		return err
	}
	p.finish(final.Status != slipway.StatusSucceeded)
	if final.Status == slipway.StatusSucceeded {
		fmt.Fprintf(w, "deployment %s succeeded in %s: %s\n", final.ID, duration(final), imageRef(final))
		return nil
	}
	fmt.Fprintf(w, "deployment %s %s\n", final.ID, final.Status)
	return fmt.Errorf("deployment %s %s%s (see 'slipway logs %s')", final.ID, final.Status, failure(final), final.ID)
}
