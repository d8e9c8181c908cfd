package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway/client"
)

func newPreviewsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "previews NAME",
		Short: "List a project's pull request previews",
		Long: `List the previews of a project's pull requests: each open pull request's
head is built on the project's builder (a deployment marked pr-N) and
served at http://pr-N.NAME.<apps domain>:<port>, sleeping like any app.
A preview is removed when its pull request closes (merged or not), or
after the server's --preview-ttl without a request (default 7 days).

Previews come from the forge's pull_request webhook deliveries (opened,
synchronize, reopened, closed) to the project's webhook URL, for pull
requests into a branch the project deploys (its branch filter).`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := g.client().Previews(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]previewJSON, len(ps))
				for i, p := range ps {
					out[i] = toPreviewJSON(p)
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			if len(ps) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "No previews of %s: a pull request's preview is built when the forge's pull_request webhook reaches %s's webhook URL ('slipway project %s' shows it).\n", args[0], args[0], args[0])
				return nil
			}
			return printPreviews(cmd.OutOrStdout(), ps, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printPreviews(w io.Writer, ps []*client.PreviewView, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PR\tSTATE\tHEAD\tBRANCH\tDEPLOYMENT\tSTATUS\tURL\tLAST REQUEST")
	for _, p := range ps {
		status, dep := "-", "-"
		if p.Latest != nil {
			status, dep = string(p.Latest.Status), p.Latest.ID
		}
		url := "-"
		if p.URL != nil {
			url = *p.URL
		}
		last := "never"
		if p.LastRequestAt != nil {
			last = age(*p.LastRequestAt, now)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", "pr-"+strconv.Itoa(p.Number), p.State, shorten(p.HeadSHA, 12),
			orDash(p.HeadBranch), dep, status, url, last)
	}
	return tw.Flush()
}

// previewJSON is a preview as `previews --json` prints it: every key is
// always present, null when unknown.
type previewJSON struct {
	Number        int        `json:"number"`
	State         string     `json:"state"`
	HeadRef       string     `json:"headRef"`
	HeadBranch    string     `json:"headBranch"`
	HeadSHA       string     `json:"headSha"`
	URL           *string    `json:"url"`
	Deployment    *string    `json:"deployment"`
	Status        *string    `json:"status"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	LastRequestAt *time.Time `json:"lastRequestAt"`
}

func toPreviewJSON(p *client.PreviewView) previewJSON {
	out := previewJSON{Number: p.Number, State: string(p.State), HeadRef: p.HeadRef, HeadBranch: p.HeadBranch, HeadSHA: p.HeadSHA,
		URL: p.URL, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, LastRequestAt: p.LastRequestAt}
	if p.Latest != nil {
		id, st := p.Latest.ID, string(p.Latest.Status)
		out.Deployment, out.Status = &id, &st
	}
	return out
}
