package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/client"
)

func newProjectCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "project",
		Short: "Manage projects",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newProjectAddCmd(g), newProjectSetCmd(g), newProjectShowCmd(g), newProjectRmCmd(g))
	return cmd
}

func newProjectRmCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "rm NAME --yes",
		Short: "Remove a project, its builder machine and its deployments' records",
		Long: `Remove a project: its builder machine (the agent, the volume with its build
cache and, with rootless builders, the project's builder user and its
subordinate uid/gid ranges), its build secrets, and its deployments'
records and logs. Images already pushed stay in the registry. A project
with a queued or running deployment is refused: cancel it first. Nothing
can be undone, so --yes is required.`,
		Example: `  slipway project rm web --yes`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return usageError{fmt.Errorf("removing project %s deletes its build cache and its deployments' records and logs: add --yes to go ahead", args[0])}
			}
			n, err := g.client().DeleteProject(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Project %s removed, with its machine and %d deployment record(s).\n", args[0], n)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "remove without further question")
	return cmd
}

// retentionHelp explains the log retention flags.
const retentionHelp = `--log-retention deletes the logs of deployments that ended longer ago than
AGE (a number of days, weeks or hours: 30d, 2w, 12h); --log-retention-size
deletes the oldest deployments' logs while the project's logs take more
than SIZE (500MB, 2GB, 1GiB). The deployments' records stay, marked as
pruned, and the log of a deployment still running is never deleted. "off"
removes a limit; without limits every log is kept. The server applies
retention at start and then every --log-prune-every (default 10m).`

// checkRetentionFlags rejects retention values the server would reject,
// as usage errors, before anything is sent.
func checkRetentionFlags(age, size *string) error {
	if age != nil {
		if _, err := slipway.ParseLogAge(*age); err != nil {
			return usageError{fmt.Errorf("--log-retention: %s", slipway.ErrorMessage(err))}
		}
	}
	if size != nil {
		if _, err := slipway.ParseLogSize(*size); err != nil {
			return usageError{fmt.Errorf("--log-retention-size: %s", slipway.ErrorMessage(err))}
		}
	}
	return nil
}

// buildArgsHelp explains the build argument flags.
const buildArgsHelp = `--build-arg NAME=VALUE gives the Dockerfile's ARG NAME that value in the
project's builds (podman build --build-arg), e.g. --build-arg
BASE=registry.example.com/base:1 for an ARG BASE used in FROM ${BASE}.
Repeat it for more; NAME= sets an empty value. NAME is letters, digits and
'_', not starting with a digit. A deployment builds with the values of
when it was asked for, and a changed value builds again instead of reusing
an earlier image. Build arguments are not secret: the API and 'slipway
project show' print them. Use 'slipway secret set' for secrets.`

// parseBuildArgFlags reads --build-arg NAME=VALUE values and
// --unset-build-arg names, refusing (as usage errors, before anything is
// sent) what the server would refuse.
func parseBuildArgFlags(set, unset []string) ([]slipway.BuildArg, error) {
	var args []slipway.BuildArg
	for _, s := range set {
		a, err := slipway.ParseBuildArg(s)
		if err != nil {
			return nil, usageError{fmt.Errorf("--build-arg: %s", slipway.ErrorMessage(err))}
		}
		args = append(args, a)
	}
	if err := slipway.ValidateBuildArgs(args); err != nil {
		return nil, usageError{fmt.Errorf("--build-arg: %s", slipway.ErrorMessage(err))}
	}
	for _, name := range unset {
		if err := slipway.ValidateBuildArgName(name); err != nil {
			return nil, usageError{fmt.Errorf("--unset-build-arg: %s", slipway.ErrorMessage(err))}
		}
	}
	return args, nil
}

// formatBuildArgs shows build arguments on one line, NAME=VALUE each, a
// value quoted when it has spaces, quotes or unprintable characters;
// "none" when there are none.
func formatBuildArgs(args []slipway.BuildArg) string {
	if len(args) == 0 {
		return "none"
	}
	parts := make([]string, len(args))
	for i, a := range args {
		v := a.Value
		if q := strconv.Quote(v); q != `"`+v+`"` || strings.ContainsAny(v, " \t'") {
			v = q
		}
		parts[i] = a.Name + "=" + v
	}
	return strings.Join(parts, " ")
}

// changed returns the flag's value if it was given on the command line.
func changed(cmd *cobra.Command, name string) *string {
	f := cmd.Flags().Lookup(name)
	if f == nil || !f.Changed {
		return nil
	}
	v := f.Value.String()
	return &v
}

func newProjectSetCmd(g *globals) *cobra.Command {
	var (
		asJSON          bool
		setArgs, unsets []string
	)
	cmd := &cobra.Command{
		Use:   "set NAME [--log-retention AGE] [--log-retention-size SIZE] [--log-max-lines N] [--log-max-bytes SIZE] [--build-arg NAME=VALUE]... [--unset-build-arg NAME]... [--memory SIZE] [--cpus N] [--health-path PATH] [--idle-timeout DUR] [--stop-after DUR] [--port N]",
		Short: "Change a project's settings (log retention, log limit, build arguments, app)",
		Long: `Change a project's log retention, log limit, build arguments or app settings;
a flag left out keeps its setting. --build-arg adds a build argument or
replaces the one of its name, --unset-build-arg NAME removes one.

` + retentionHelp + "\n\n" + logLimitHelp + "\n\n" + buildArgsHelp + "\n\n" + appSettingsHelp,
		Example: `  slipway project set web --build-arg BASE=127.0.0.1:8080/base/busybox:1
  slipway project set web --build-arg GREETING="hello there" --unset-build-arg OLD
  slipway project set web --memory 512MiB --cpus 0.5 --health-path /healthz --idle-timeout 10m --stop-after 2h --port 8000`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := readProjectChanges(cmd, setArgs, unsets)
			if err != nil {
				return err
			}
			p, err := c.apply(cmd, g.client(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			c.print(cmd.OutOrStdout(), p)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&setArgs, "build-arg", nil, "NAME=VALUE: add or replace a build argument (repeatable; not for secrets)")
	f.StringArrayVar(&unsets, "unset-build-arg", nil, "NAME: remove a build argument (repeatable)")
	f.String("log-retention", "", "delete logs of deployments that ended longer ago than AGE, e.g. 30d; off: no age limit")
	f.String("log-retention-size", "", "delete the oldest logs while the project's logs exceed SIZE, e.g. 500MB; off: no size limit")
	f.String("log-max-lines", "", "fail a build whose log passes N lines; default: 100000")
	f.String("log-max-bytes", "", "fail a build whose log passes SIZE, e.g. 100MB; default: 100 MiB")
	addAppFlags(f)
	f.BoolVar(&asJSON, "json", false, "print the project as JSON")
	return cmd
}

// projectChanges are the changes project set asks for, checked.
type projectChanges struct {
	age, size, lines, bytes          *string
	set                              []slipway.BuildArg
	unsets                           []string
	retention, buildArgs, limit, app bool
	appIn                            client.AppSettingsInput
}

// readProjectChanges reads project set's flags, refusing bad values and
// no change as usage errors.
func readProjectChanges(cmd *cobra.Command, setArgs, unsets []string) (c projectChanges, err error) {
	c.age, c.size = changed(cmd, "log-retention"), changed(cmd, "log-retention-size")
	c.lines, c.bytes = changed(cmd, "log-max-lines"), changed(cmd, "log-max-bytes")
	c.retention, c.buildArgs = c.age != nil || c.size != nil, len(setArgs) > 0 || len(unsets) > 0
	c.limit = c.lines != nil || c.bytes != nil
	if c.appIn, err = appFlags(cmd); err != nil {
		return c, err
	}
	c.app = c.appIn != (client.AppSettingsInput{})
	if !c.retention && !c.buildArgs && !c.limit && !c.app {
		return c, usageError{fmt.Errorf("nothing to change: give --log-retention, --log-retention-size, --log-max-lines, --log-max-bytes, --build-arg, --unset-build-arg, --memory, --cpus, --health-path, --idle-timeout, --stop-after or --port")}
	}
	if err := checkRetentionFlags(c.age, c.size); err != nil {
		return c, err
	}
	if err := checkLogLimitFlags(c.lines, c.bytes); err != nil {
		return c, err
	}
	c.set, err = parseBuildArgFlags(setArgs, unsets)
	c.unsets = unsets
	return c, err
}

// apply sends c to the server and returns the project as changed.
func (c projectChanges) apply(cmd *cobra.Command, cl *client.Client, name string) (p *slipway.Project, err error) {
	ctx := cmd.Context()
	// Build arguments first: the server may refuse them (an unset of one
	// the project lacks), while the other flags were checked already.
	if c.buildArgs {
		if p, err = cl.SetBuildArgs(ctx, name, c.set, c.unsets); err != nil {
			return nil, err
		}
	}
	if c.retention {
		if p, err = cl.SetLogRetention(ctx, name, c.age, c.size); err != nil {
			return nil, err
		}
	}
	if c.limit {
		if p, err = cl.SetLogLimit(ctx, name, c.lines, c.bytes); err != nil {
			return nil, err
		}
	}
	if c.app {
		if p, err = cl.SetAppSettings(ctx, name, c.appIn); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// print says what c changed in p.
func (c projectChanges) print(w io.Writer, p *slipway.Project) {
	if c.retention {
		fmt.Fprintf(w, "Project %s: log retention %s.\n", p.Name, p.LogRetention)
	}
	if c.limit {
		fmt.Fprintf(w, "Project %s: log limit %s per deployment.\n", p.Name, p.LogLimit)
	}
	if c.buildArgs {
		fmt.Fprintf(w, "Project %s: build arguments %s.\n", p.Name, formatBuildArgs(p.BuildArgs))
	}
	if c.app {
		fmt.Fprintf(w, "Project %s: app %s.\n", p.Name, p.App)
	}
}

func newProjectShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a project's settings, build arguments included",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := g.client().ProjectView(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, p)
			}
			fmt.Fprintf(w, "Project %s\n", p.Name)
			printProject(w, &p.Project, [2]string{"webhook URL", p.WebhookURL})
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printProject lists p's settings, one an indented line; the build
// arguments one a line below their heading.
func printProject(w io.Writer, p *slipway.Project, extra ...[2]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  repo:\t%s\n", p.Repo)
	fmt.Fprintf(tw, "  branch:\t%s\n", p.Branch)
	fmt.Fprintf(tw, "  dockerfile:\t%s\n", p.Dockerfile)
	fmt.Fprintf(tw, "  context:\t%s\n", p.Context)
	fmt.Fprintf(tw, "  log retention:\t%s\n", p.LogRetention)
	fmt.Fprintf(tw, "  log limit:\t%s per deployment\n", p.LogLimit)
	a := p.App.Effective()
	fmt.Fprintf(tw, "  app memory:\t%s\n", humanize.IBytes(uint64(a.MemoryBytes)))
	fmt.Fprintf(tw, "  app cpus:\t%s\n", strconv.FormatFloat(a.CPUs, 'f', -1, 64))
	fmt.Fprintf(tw, "  health path:\t%s\n", a.HealthPath)
	fmt.Fprintf(tw, "  idle timeout:\t%s (then frozen)\n", slipway.FormatAppDuration(a.IdleTimeout))
	fmt.Fprintf(tw, "  stop after:\t%s idle\n", slipway.FormatAppDuration(a.StopAfter))
	if a.Port > 0 {
		fmt.Fprintf(tw, "  port:\t%d (PORT)\n", a.Port)
	} else {
		fmt.Fprintf(tw, "  port:\tthe image's EXPOSE (PORT)\n")
	}
	if len(p.BuildArgs) == 0 {
		fmt.Fprintf(tw, "  build args:\tnone\n")
	} else {
		fmt.Fprintf(tw, "  build args:\t%s\n", formatBuildArgs(p.BuildArgs[:1]))
		for _, a := range p.BuildArgs[1:] {
			fmt.Fprintf(tw, "\t%s\n", formatBuildArgs([]slipway.BuildArg{a}))
		}
	}
	for _, kv := range extra {
		fmt.Fprintf(tw, "  %s:\t%s\n", kv[0], kv[1])
	}
	tw.Flush()
}

func newProjectAddCmd(g *globals) *cobra.Command {
	var (
		in        client.AddProjectInput
		asJSON    bool
		buildArgs []string
	)
	cmd := &cobra.Command{
		Use:   "add NAME --repo URL",
		Short: "Register a project and print the webhook to configure in the forge",
		Long: `Register a project: a git repository (any URL the builder can fetch,
file:// included) and its build settings. It prints the webhook URL and the
secret to configure in GitHub, Gitea or Forgejo; the secret is not shown
again.

` + retentionHelp + "\n\n" + logLimitHelp + "\n\n" + buildArgsHelp + "\n\n" + appSettingsHelp,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Name = args[0]
			var err error
			if in.App, err = appFlags(cmd); err != nil {
				return err
			}
			if err := checkRetentionFlags(changed(cmd, "log-retention"), changed(cmd, "log-retention-size")); err != nil {
				return err
			}
			if err := checkLogLimitFlags(changed(cmd, "log-max-lines"), changed(cmd, "log-max-bytes")); err != nil {
				return err
			}
			if in.BuildArgs, err = parseBuildArgFlags(buildArgs, nil); err != nil {
				return err
			}
			res, err := g.client().AddProject(cmd.Context(), in)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), struct {
					Project       *slipway.Project `json:"project"`
					WebhookURL    string           `json:"webhookURL"`
					WebhookSecret string           `json:"webhookSecret"`
				}{res.Project, res.WebhookURL, res.WebhookSecret})
			}
			printAddedProject(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Repo, "repo", "", "git URL of the repository (https://, ssh://, git@host:path, file://)")
	f.StringVar(&in.Branch, "branch", "main", "only pushes to this branch deploy")
	f.StringVar(&in.Dockerfile, "dockerfile", "Dockerfile", "path of the Dockerfile in the repository")
	f.StringVar(&in.Context, "context", ".", "build context directory in the repository")
	f.StringVar(&in.WebhookSecret, "webhook-secret", "", "webhook secret (default: a random one)")
	f.StringVar(&in.LogRetention, "log-retention", "", "delete logs of deployments that ended longer ago than AGE, e.g. 30d (default: keep them)")
	f.StringVar(&in.LogRetentionSize, "log-retention-size", "", "delete the oldest logs while the project's logs exceed SIZE, e.g. 500MB (default: no limit)")
	f.StringVar(&in.LogMaxLines, "log-max-lines", "", "fail a build whose log passes N lines (default: 100000)")
	f.StringVar(&in.LogMaxBytes, "log-max-bytes", "", "fail a build whose log passes SIZE, e.g. 100MB (default: 100 MiB)")
	f.StringArrayVar(&buildArgs, "build-arg", nil, "NAME=VALUE: a value for the Dockerfile's ARG NAME (repeatable; not for secrets)")
	addAppFlags(f)
	f.BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

func printAddedProject(w io.Writer, res *client.AddProjectResult) {
	p := res.Project
	fmt.Fprintf(w, "Project %s added.\n", p.Name)
	printProject(w, p, [2]string{"webhook URL", res.WebhookURL}, [2]string{"webhook secret", res.WebhookSecret})
	fmt.Fprintf(w, "\nThe secret is not shown again. In GitHub (repository Settings > Webhooks > Add webhook; Gitea and Forgejo alike), set Payload URL to %s, Content type to application/json, Secret to the secret above, and choose \"Just the push event\".\n", res.WebhookURL)
}

func newProjectsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "projects",
		Short: "List projects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := g.client().Projects(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if ps == nil {
					ps = []*slipway.Project{}
				}
				return writeJSON(w, ps)
			}
			if len(ps) == 0 {
				fmt.Fprintln(w, "No projects yet: add one with 'slipway project add NAME --repo URL'.")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tREPO\tBRANCH\tDOCKERFILE\tCONTEXT\tCREATED")
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Repo, p.Branch, p.Dockerfile, p.Context, age(p.CreatedAt, time.Now()))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
