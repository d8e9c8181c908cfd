package deploy

import (
	"context"
	"fmt"

	"github.com/slipway-ci/slipway"
)

// parseLogLimit returns cur with the limits given replaced, as
// slipway.ParseLogMaxLines and slipway.ParseLogMaxBytes read them; a nil
// one keeps its limit.
func parseLogLimit(cur slipway.LogLimit, maxLines, maxBytes *string) (slipway.LogLimit, error) {
	if maxLines != nil {
		n, err := slipway.ParseLogMaxLines(*maxLines)
		if err != nil {
			return cur, err
		}
		cur.MaxLines = n
	}
	if maxBytes != nil {
		n, err := slipway.ParseLogMaxBytes(*maxBytes)
		if err != nil {
			return cur, err
		}
		cur.MaxBytes = n
	}
	return cur, nil
}

// SetLogLimit changes project's per-deployment log limit: maxLines (a
// number of lines) and maxBytes (a size such as "100MB"), each "default"
// for the default, replace the current limits; a nil one keeps its limit.
// Deployments asked for from now on get the new limit.
func (s *Projects) SetLogLimit(ctx context.Context, project string, maxLines, maxBytes *string) (*slipway.Project, error) {
	limiter, ok := s.cfg.Store.(slipway.LogLimiter)
	if !ok {
		return nil, slipway.Errorf(slipway.EINVALID, "this server's store does not keep log limits")
	}
	p, err := s.cfg.Store.Project(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("project %s: %w", project, err)
	}
	l, err := parseLogLimit(p.LogLimit, maxLines, maxBytes)
	if err != nil {
		return nil, err
	}
	if p, err = limiter.SetLogLimit(ctx, project, l); err != nil {
		return nil, fmt.Errorf("set the log limit of %s: %w", project, err)
	}
	return p, nil
}
