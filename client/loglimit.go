package client

import (
	"context"

	"github.com/slipway-ci/slipway"
)

// SetLogLimit changes a project's per-deployment log limit: maxLines
// ("100000") and maxBytes ("100MB") replace the current limits when not
// nil ("default" restores a default). It returns the project as changed.
func (c *Client) SetLogLimit(ctx context.Context, project string, maxLines, maxBytes *string) (*slipway.Project, error) {
	vars := map[string]any{"project": project}
	if maxLines != nil {
		vars["maxLines"] = *maxLines
	}
	if maxBytes != nil {
		vars["maxBytes"] = *maxBytes
	}
	var out struct {
		SetLogLimit slipway.Project `json:"setLogLimit"`
	}
	q := `mutation($project: String!, $maxLines: String, $maxBytes: String) {
	setLogLimit(project: $project, maxLines: $maxLines, maxBytes: $maxBytes) { ` + projectFields + ` } }`
	if err := c.do(ctx, q, vars, &out); err != nil {
		return nil, err
	}
	return &out.SetLogLimit, nil
}
