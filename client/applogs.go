package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/slipway-ci/slipway"
)

// AppStatus is what a project's app does, as the API says.
type AppStatus struct {
	State   string `json:"state"`
	Release *struct {
		ID string `json:"id"`
	} `json:"release"`
	LastWakeAt *time.Time `json:"lastWakeAt"`
	LastWakeMs *float64   `json:"lastWakeMs"`
	URL        *string    `json:"url"`
}

// AppLogQuery selects lines of a project's app output: the last Tail
// (the server's default when 0) of those of Release ("": all).
type AppLogQuery struct {
	Project string
	Tail    int
	Release string
}

const appLogFields = `n release time stream text`

// AppLogs returns the project's last stored app lines q selects, oldest
// first, and the app's status.
func (c *Client) AppLogs(ctx context.Context, q AppLogQuery) ([]slipway.AppLogLine, *AppStatus, error) {
	vars := map[string]any{"p": q.Project}
	if q.Tail > 0 {
		vars["tail"] = q.Tail
	}
	if q.Release != "" {
		vars["release"] = q.Release
	}
	var out struct {
		Project *struct {
			AppStatus AppStatus `json:"appStatus"`
		} `json:"project"`
		AppLogs []slipway.AppLogLine `json:"appLogs"`
	}
	query := `query($p: String!, $tail: Int, $release: ID) {
	project(name: $p) { appStatus { state release { id } lastWakeAt lastWakeMs url } }
	appLogs(project: $p, tail: $tail, release: $release) { ` + appLogFields + ` } }`
	if err := c.do(ctx, query, vars, &out); err != nil {
		return nil, nil, err
	}
	if out.Project == nil {
		return nil, nil, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", q.Project)
	}
	for i := range out.AppLogs {
		out.AppLogs[i].Project = q.Project
	}
	return out.AppLogs, &out.Project.AppStatus, nil
}

// FollowAppLogs calls fn with every new line of the project's app output
// numbered above after (after < 0: above the last stored one; of release,
// unless ""), as it is written, until
// ctx ends (then it returns nil). If the connection breaks it reconnects
// and goes on after the last line it passed on.
func (c *Client) FollowAppLogs(ctx context.Context, project string, after int64, release string, fn func(slipway.AppLogLine) error) error {
	const q = `subscription($p: String!, $after: Int, $release: ID) { appLogs(project: $p, after: $after, release: $release) { ` + appLogFields + ` } }`
	vars := map[string]any{"p": project}
	if release != "" {
		vars["release"] = release
	}
	err := resume(ctx, func() (bool, error) {
		start := after
		if after >= 0 {
			vars["after"] = after
		}
		err := c.subscribe(ctx, q, vars, func(data json.RawMessage) error {
			var out struct {
				AppLogs []slipway.AppLogLine `json:"appLogs"`
			}
			if err := json.Unmarshal(data, &out); err != nil {
				return fmt.Errorf("decode app log lines: %w", err)
			}
			for _, l := range out.AppLogs {
				if l.N <= after {
					continue
				}
				after = l.N
				l.Project = project
				if err := fn(l); err != nil {
					return err
				}
			}
			return nil
		})
		return after > start, err
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}
