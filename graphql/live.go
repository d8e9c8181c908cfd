package graphql

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/slipway-ci/slipway"
)

// Live follows deployments for the subscriptions: archive.Watcher in the
// server. Without one the API polls the store.
type Live interface {
	// FollowLog calls emit with every line of the deployment from line
	// from on, in order and each once, and returns nil once the
	// deployment has ended and its log is complete.
	FollowLog(ctx context.Context, deployment string, from int64, emit func(slipway.LogLine) error) error
	// WatchDeployment returns a channel that receives a value whenever the
	// deployment may have changed, closed when ctx ends.
	WatchDeployment(ctx context.Context, project, deployment string) (<-chan struct{}, error)
}

// logLines reads the stored lines q selects: through the store's search
// when it has one, else page by page, filtered here.
func (r *Resolver) logLines(ctx context.Context, q slipway.LogQuery) ([]slipway.LogLine, error) {
	if q.Search == "" && q.Step == "" {
		return r.cfg.Store.LogLines(ctx, q.Deployment, q.From, q.Limit)
	}
	if s, ok := r.cfg.Store.(slipway.LogSearcher); ok {
		return s.SearchLogLines(ctx, q)
	}
	out := []slipway.LogLine{}
	for from := q.From; ; {
		page, err := r.cfg.Store.LogLines(ctx, q.Deployment, from, maxLogLines)
		if err != nil {
			return nil, err
		}
		for _, l := range page {
			if slipway.MatchLogLine(l, q) {
				out = append(out, l)
				if q.Limit > 0 && len(out) == q.Limit {
					return out, nil
				}
			}
		}
		if len(page) < maxLogLines {
			return out, nil
		}
		from = page[len(page)-1].N + 1
	}
}

// subscriptionError ends a subscription with err, shown the way query
// errors are.
func (r *Resolver) subscriptionError(ctx context.Context, err error) {
	transport.AddSubscriptionError(ctx, presentError(r.cfg.Logger)(ctx, err))
}

// deploymentUpdates sends the deployment now and after every change, until
// it is in a terminal state.
func (r *Resolver) deploymentUpdates(ctx context.Context, id string) (<-chan *slipway.Deployment, error) {
	d, err := r.cfg.Store.Deployment(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", id, err)
	}
	var changed <-chan struct{}
	every := r.cfg.PollInterval
	if r.cfg.Live != nil {
		if changed, err = r.cfg.Live.WatchDeployment(ctx, d.Project, d.ID); err != nil {
			r.cfg.Logger.WarnContext(ctx, "graphql: watch deployment: polling instead", "deployment", id, "err", err)
			changed = nil
		} else {
			every = max(every, time.Second) // announcements carry the changes
		}
	}
	out := make(chan *slipway.Deployment, 1)
	go func() {
		defer close(out)
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		var last []byte
		for {
			// The progress is part of what is compared, so a new build
			// step is sent too.
			d.Progress = r.progress(ctx, d)
			if snap, _ := json.Marshal(d); string(snap) != string(last) {
				last = snap
				select {
				case out <- d:
				case <-ctx.Done():
					return
				}
			}
			if d.Status.Terminal() {
				return
			}
			select {
			case <-ctx.Done():
				return
			case _, ok := <-changed:
				if !ok {
					changed = nil
				}
			case <-ticker.C:
			}
			if d, err = r.cfg.Store.Deployment(ctx, id); err != nil {
				if ctx.Err() == nil {
					r.subscriptionError(ctx, fmt.Errorf("deployment %s: %w", id, err))
				}
				return
			}
		}
	}()
	return out, nil
}

// deploymentLogs sends the deployment's log from line from on, then its
// new lines, until the log is complete.
func (r *Resolver) deploymentLogs(ctx context.Context, id string, from int64) (<-chan *slipway.LogLine, error) {
	if _, err := r.cfg.Store.Deployment(ctx, id); err != nil {
		return nil, fmt.Errorf("deployment %s: %w", id, err)
	}
	out := make(chan *slipway.LogLine, 1024)
	go func() {
		defer close(out)
		emit := func(l slipway.LogLine) error {
			select {
			case out <- &l:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var err error
		if r.cfg.Live != nil {
			err = r.cfg.Live.FollowLog(ctx, id, from, emit)
		} else {
			err = r.pollLog(ctx, id, from, emit)
		}
		if err != nil && ctx.Err() == nil {
			r.subscriptionError(ctx, fmt.Errorf("follow the log of %s: %w", id, err))
		}
	}()
	return out, nil
}

// pollLog follows a log through the store alone: it polls for new lines
// and ends after the deployment ended and a poll found nothing new.
func (r *Resolver) pollLog(ctx context.Context, id string, from int64, emit func(slipway.LogLine) error) error {
	ticker := time.NewTicker(r.cfg.PollInterval)
	defer ticker.Stop()
	next := from
	for {
		d, err := r.cfg.Store.Deployment(ctx, id)
		if err != nil {
			return err
		}
		before := next
		for more := true; more; {
			lines, err := r.cfg.Store.LogLines(ctx, id, next, maxLogLines)
			if err != nil {
				return err
			}
			more = len(lines) == maxLogLines
			for _, l := range lines {
				if l.N != next {
					more = false // a line still on its way: wait for it
					break
				}
				if err := emit(l); err != nil {
					return err
				}
				next++
			}
		}
		if d.Status.Terminal() && next == before {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// firstLine turns an optional fromLine argument into a line number (lines
// are numbered from 1).
func firstLine(fromLine *int) (int64, error) {
	if fromLine == nil {
		return 1, nil
	}
	if *fromLine < 0 {
		return 0, slipway.Errorf(slipway.EINVALID, "fromLine must not be negative, got %d", *fromLine)
	}
	return max(int64(*fromLine), 1), nil
}

// deploymentLogBatches is deploymentLogs in batches of the lines ready at
// the time, at most size each: one event per batch costs far less than one
// per line when a build writes fast.
func (r *Resolver) deploymentLogBatches(ctx context.Context, id string, from int64, size int) (<-chan []*slipway.LogLine, error) {
	if size < 1 {
		size = 1
	}
	lines, err := r.deploymentLogs(ctx, id, from)
	if err != nil {
		return nil, err
	}
	out := make(chan []*slipway.LogLine, 1)
	go func() {
		defer close(out)
		for l := range lines {
			batch := []*slipway.LogLine{l}
		fill:
			for len(batch) < size {
				select {
				case more, ok := <-lines:
					if !ok {
						break fill
					}
					batch = append(batch, more)
				default:
					break fill
				}
			}
			select {
			case out <- batch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
