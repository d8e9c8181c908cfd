package graphql

import (
	"context"
	"fmt"

	"github.com/slipway-ci/slipway"
)

// Apps is what the API reads of the server's apps: the server's app host
// and its log pipeline.
type Apps interface {
	// AppStatus says what project's app does now.
	AppStatus(ctx context.Context, project string) (slipway.AppStatus, error)
	// FollowAppLogs calls fn with project's app lines numbered above
	// after (of release, unless ""), as they are written, until ctx ends.
	FollowAppLogs(ctx context.Context, project string, after int64, release string, fn func([]slipway.AppLogLine) error) error
}

// Page sizes of the appLogs query.
const (
	defaultAppLogTail = 100
	maxAppLogTail     = 5000
)

// appLogs reads a project's stored app lines (the appLogs query).
func (r *Resolver) appLogs(ctx context.Context, project string, tail, after *int, release *string) ([]*slipway.AppLogLine, error) {
	if r.cfg.AppLogs == nil {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "this server keeps no app output")
	}
	if _, err := r.cfg.Store.Project(ctx, project); err != nil {
		return nil, err
	}
	n, err := pageSize(tail, defaultAppLogTail, maxAppLogTail)
	if err != nil {
		return nil, err
	}
	q := slipway.AppLogQuery{Project: project, Tail: n, Release: orDefault(release, "")}
	if after != nil {
		q.After = int64(*after)
	}
	if n == 0 {
		return []*slipway.AppLogLine{}, nil
	}
	lines, err := r.cfg.AppLogs.AppLogLines(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]*slipway.AppLogLine, len(lines))
	for i := range lines {
		out[i] = &lines[i]
	}
	return out, nil
}

// followAppLogs sends a project's new app lines in batches (the appLogs
// subscription), from after the last stored one unless after is given.
func (r *Resolver) followAppLogs(ctx context.Context, project string, after *int, release *string) (<-chan []*slipway.AppLogLine, error) {
	if r.cfg.Apps == nil {
		return nil, slipway.Errorf(slipway.ECONFLICT, "this server serves no apps: no app output to follow")
	}
	if _, err := r.cfg.Store.Project(ctx, project); err != nil {
		return nil, err
	}
	var from int64
	switch {
	case after != nil:
		from = int64(*after)
	case r.cfg.AppLogs != nil:
		last, err := r.cfg.AppLogs.LastAppLogLine(ctx, project)
		if err != nil && slipway.ErrorCode(err) != slipway.ENOTFOUND {
			return nil, err
		}
		if last != nil {
			from = last.N
		}
	}
	out := make(chan []*slipway.AppLogLine, 1)
	go func() {
		defer close(out)
		err := r.cfg.Apps.FollowAppLogs(ctx, project, from, orDefault(release, ""), func(lines []slipway.AppLogLine) error {
			batch := make([]*slipway.AppLogLine, len(lines))
			for i := range lines {
				batch[i] = &lines[i]
			}
			select {
			case out <- batch:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil && ctx.Err() == nil {
			r.subscriptionError(ctx, fmt.Errorf("follow the app output of %s: %w", project, err))
		}
	}()
	return out, nil
}

// appStatus is Project.appStatus.
func (r *Resolver) appStatus(ctx context.Context, project string) (*slipway.AppStatus, error) {
	if r.cfg.Apps == nil {
		return &slipway.AppStatus{State: slipway.AppNone}, nil
	}
	st, err := r.cfg.Apps.AppStatus(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("state of the app of %s: %w", project, err)
	}
	return &st, nil
}
