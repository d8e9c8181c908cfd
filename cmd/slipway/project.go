package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

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
	cmd.AddCommand(newProjectAddCmd(g), newProjectSetCmd(g), newProjectRmCmd(g))
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
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "set NAME [--log-retention AGE] [--log-retention-size SIZE]",
		Short: "Change a project's settings (log retention)",
		Long:  "Change a project's log retention; a flag left out keeps its setting.\n\n" + retentionHelp,
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			age, size := changed(cmd, "log-retention"), changed(cmd, "log-retention-size")
			if age == nil && size == nil {
				return usageError{fmt.Errorf("nothing to change: give --log-retention or --log-retention-size")}
			}
			if err := checkRetentionFlags(age, size); err != nil {
				return err
			}
			p, err := g.client().SetLogRetention(cmd.Context(), args[0], age, size)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Project %s: log retention %s.\n", p.Name, p.LogRetention)
			return nil
		},
	}
	f := cmd.Flags()
	f.String("log-retention", "", "delete logs of deployments that ended longer ago than AGE, e.g. 30d; off: no age limit")
	f.String("log-retention-size", "", "delete the oldest logs while the project's logs exceed SIZE, e.g. 500MB; off: no size limit")
	f.BoolVar(&asJSON, "json", false, "print the project as JSON")
	return cmd
}

func newProjectAddCmd(g *globals) *cobra.Command {
	var (
		in     client.AddProjectInput
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME --repo URL",
		Short: "Register a project and print the webhook to configure in the forge",
		Long: `Register a project: a git repository (any URL the builder can fetch,
file:// included) and its build settings. It prints the webhook URL and the
secret to configure in GitHub, Gitea or Forgejo; the secret is not shown
again.

` + retentionHelp,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Name = args[0]
			if err := checkRetentionFlags(changed(cmd, "log-retention"), changed(cmd, "log-retention-size")); err != nil {
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
	f.BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

func printAddedProject(w io.Writer, res *client.AddProjectResult) {
	p := res.Project
	fmt.Fprintf(w, "Project %s added.\n", p.Name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  repo:\t%s\n", p.Repo)
	fmt.Fprintf(tw, "  branch:\t%s\n", p.Branch)
	fmt.Fprintf(tw, "  dockerfile:\t%s\n", p.Dockerfile)
	fmt.Fprintf(tw, "  context:\t%s\n", p.Context)
	fmt.Fprintf(tw, "  log retention:\t%s\n", p.LogRetention)
	fmt.Fprintf(tw, "  webhook URL:\t%s\n", res.WebhookURL)
	fmt.Fprintf(tw, "  webhook secret:\t%s\n", res.WebhookSecret)
	tw.Flush()
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
