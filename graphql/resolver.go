package graphql

//go:generate go run github.com/99designs/gqlgen generate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/graphql/internal/gen"
	"github.com/slipway-ci/slipway/redact"
)

// Resolver is the root resolver; its methods (in schema.resolvers.go, kept
// by gqlgen across regenerations) read the store and call the deployer.
type Resolver struct {
	cfg Config
}

// Page sizes for list fields.
const (
	defaultDeployments = 100
	maxDeployments     = 1000
	defaultLogLines    = 1000
	maxLogLines        = 5000
	maxSecretBytes     = 1024
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

// newWebhookSecret returns 32 random bytes in hex.
func newWebhookSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// validateWebhookSecret rejects secrets a user could not paste into a forge.
func validateWebhookSecret(s string) error {
	if len(s) > maxSecretBytes || strings.TrimSpace(s) != s || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return slipway.Errorf(slipway.EINVALID, "invalid webhook secret: use at most %d printable characters without leading or trailing spaces", maxSecretBytes)
	}
	return nil
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

// webhookURL is where forges send deliveries for every project.
func (r *Resolver) webhookURL() string {
	return r.cfg.PublicURL + "/webhooks/github"
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

// redactError returns d's error with its project's repository credentials
// masked. Errors are redacted before they are stored; this covers those
// stored before that.
func (r *Resolver) redactError(ctx context.Context, d *slipway.Deployment) (string, error) {
	p, err := r.cfg.Store.Project(ctx, d.Project)
	if err != nil {
		return "", fmt.Errorf("project of deployment %s: %w", d.ID, err)
	}
	return redact.ForRepo(p.Repo).Redact(d.Error), nil
}

// parseRetention returns cur with the limits given (non-nil) replaced:
// maxAge as slipway.ParseLogAge reads it, maxSize as slipway.ParseLogSize.
func parseRetention(cur slipway.LogRetention, maxAge, maxSize *string) (slipway.LogRetention, error) {
	if maxAge != nil {
		d, err := slipway.ParseLogAge(*maxAge)
		if err != nil {
			return cur, err
		}
		cur.MaxAge = d
	}
	if maxSize != nil {
		n, err := slipway.ParseLogSize(*maxSize)
		if err != nil {
			return cur, err
		}
		cur.MaxBytes = n
	}
	return cur, nil
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

// secretStore returns the store of build secrets, or an error saying the
// server keeps none.
func (r *Resolver) secretStore() (slipway.SecretStore, error) {
	if r.cfg.Secrets == nil {
		return nil, slipway.Errorf(slipway.EINVALID, "this server keeps no build secrets")
	}
	return r.cfg.Secrets, nil
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
