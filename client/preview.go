package client

import (
	"context"
	"fmt"

	"github.com/slipway-ci/slipway"
)

// PreviewView is a pull request's preview as the API shows it.
type PreviewView struct {
	slipway.Preview
	// URL is where the preview answers, nil when the server serves no
	// apps.
	URL *string `json:"url"`
	// Latest is the deployment made for the preview's head, nil if it is
	// gone.
	Latest *slipway.Deployment `json:"-"`
}

// Previews lists a project's previews by number; ENOTFOUND for an unknown
// project.
func (c *Client) Previews(ctx context.Context, project string) ([]*PreviewView, error) {
	type preview struct {
		PreviewView
		Deployment *deployment `json:"deployment"`
	}
	var out struct {
		Project *struct {
			Previews []preview `json:"previews"`
		} `json:"project"`
	}
	q := `query($n: String!) { project(name: $n) { previews { number state headRef headBranch headSha url createdAt updatedAt lastRequestAt
	deployment { ` + deploymentFields + ` } } } }`
	if err := c.do(ctx, q, map[string]any{"n": project}, &out); err != nil {
		return nil, err
	}
	if out.Project == nil {
		return nil, &Error{Code: slipway.ENOTFOUND, Message: fmt.Sprintf("project %q not found", project)}
	}
	ps := make([]*PreviewView, len(out.Project.Previews))
	for i, p := range out.Project.Previews {
		v := p.PreviewView
		v.Project = project
		if p.Deployment != nil {
			v.Preview.Deployment = p.Deployment.ID
			v.Latest = p.Deployment.domain()
		}
		ps[i] = &v
	}
	return ps, nil
}
