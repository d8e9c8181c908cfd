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
	cmd.AddCommand(newProjectAddCmd(g))
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
again.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Name = args[0]
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
