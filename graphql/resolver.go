package graphql

//go:generate go run github.com/99designs/gqlgen generate

import (
	"context"
	"fmt"
	"sort"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/graphql/internal/gen"
)

// Resolver is the root resolver; its methods (in schema.resolvers.go, kept
// by gqlgen across regenerations) read the store, change projects through
// the project service and call the deployer.
type Resolver struct {
	cfg Config
}

// Page sizes for list fields.
const (
	defaultDeployments = 100
	maxDeployments     = 1000
	defaultLogLines    = 1000
	maxLogLines        = 5000
)

// pageSize turns an optional "first" argument into a limit: def when
// absent, at most max, an error when negative.
func pageSize(first *int, def, max int) (int, error) {
	if first == nil {
		return def, nil
	}
	if *first < 0 {
		return 0, slipway.Errorf(slipway.EINVALID, "first must not be negative, got %d", *first)
	}
	return min(*first, max), nil
}

// orDefault returns *p, or fallback when p is nil or points to "".
func orDefault(p *string, fallback string) string {
	if p == nil || *p == "" {
		return fallback
	}
	return *p
}

// nonEmpty returns a pointer to s, or nil for "" (a GraphQL null).
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// nonZero returns a pointer to n, or nil for 0 (a GraphQL null).
func nonZero(n int64) *int {
	if n == 0 {
		return nil
	}
	i := int(n)
	return &i
}

// phaseOrder is the order timings are listed in; other phases follow,
// sorted by name.
var phaseOrder = []string{"queue", "wake", "fetch", "build", "push", "total"}

// phaseTimings lists t in phaseOrder, then the remaining phases by name.
func phaseTimings(t map[string]int64) []*gen.PhaseTiming {
	out := make([]*gen.PhaseTiming, 0, len(t))
	known := make(map[string]bool, len(phaseOrder))
	for _, p := range phaseOrder {
		known[p] = true
		if ms, ok := t[p]; ok {
			out = append(out, &gen.PhaseTiming{Phase: p, Ms: int(ms)})
		}
	}
	var rest []string
	for p := range t {
		if !known[p] {
			rest = append(rest, p)
		}
	}
	sort.Strings(rest)
	for _, p := range rest {
		out = append(out, &gen.PhaseTiming{Phase: p, Ms: int(t[p])})
	}
	return out
}

// webhookURL is where forges send p's deliveries: its own URL,
// /webhooks/github/<hook id>, where the server checks a delivery's
// signature before it parses it. (The shared /webhooks/github works too.)
func (r *Resolver) webhookURL(p *slipway.Project) string {
	if p.HookID == "" {
		return r.cfg.PublicURL + "/webhooks/github"
	}
	return r.cfg.PublicURL + "/webhooks/github/" + p.HookID
}

// deployments lists a project's newest deployments; limit 0 lists none.
func (r *Resolver) deployments(ctx context.Context, project string, limit int) ([]*slipway.Deployment, error) {
	if limit == 0 {
		return []*slipway.Deployment{}, nil
	}
	ds, err := r.cfg.Store.Deployments(ctx, project, limit)
	if err != nil {
		return nil, fmt.Errorf("deployments of %s: %w", project, err)
	}
	return ds, nil
}

// recheck returns m, or its corrected record when m says an agent runs:
// the machine provider checks that the agent is still alive and records it
// asleep or failed if it is gone (an agent can die while no one watches).
// Without a provider, or when the check fails, m is returned as stored.
func (r *Resolver) recheck(ctx context.Context, m *slipway.Machine) *slipway.Machine {
	if r.cfg.Machines == nil || !m.State.Running() {
		return m
	}
	if _, err := r.cfg.Machines.Status(ctx, m.Project); err != nil {
		r.cfg.Logger.WarnContext(ctx, "graphql: machine status check failed", "project", m.Project, "err", err)
		return m
	}
	fresh, err := r.cfg.Store.Machine(ctx, m.Project)
	if err != nil {
		r.cfg.Logger.WarnContext(ctx, "graphql: re-read machine", "project", m.Project, "err", err)
		return m
	}
	return fresh
}

// buildArgs copies the build arguments of a mutation's input.
func buildArgs(in []*slipway.BuildArg) []slipway.BuildArg {
	var out []slipway.BuildArg
	for _, a := range in {
		if a != nil {
			out = append(out, *a)
		}
	}
	return out
}

// progress is d's progress: asked of the Deployer while d runs (its
// workflow knows the build step), else, or when that fails, what d's
// record tells.
func (r *Resolver) progress(ctx context.Context, d *slipway.Deployment) *slipway.Progress {
	pr, ok := r.cfg.Deployer.(slipway.ProgressReader)
	if !ok || d.Status.Terminal() {
		return slipway.ProgressOf(d)
	}
	p, err := pr.Progress(ctx, d)
	if err != nil {
		r.cfg.Logger.WarnContext(ctx, "graphql: deployment progress", "deployment", d.ID, "err", err)
		return slipway.ProgressOf(d)
	}
	return p
}
