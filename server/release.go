package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/deploy"
)

// drainTimeout bounds how long a replaced release keeps serving the
// requests (a WebSocket, a long download) begun before the switch.
const drainTimeout = time.Minute

// keepReleases is how many releases of a project keep their container
// (the current one included): the earlier ones are ready for a rollback
// in well under a second; older containers are removed.
const keepReleases = 3

// epoch counts the requests begun while one release was the app's.
type epoch struct{ open atomic.Int64 }

// Release implements deploy.Releaser: the deployment's image starts (or,
// for a rollback to a kept release, wakes) beside the app's current
// release without holding up its requests, then, once it is healthy and
// recorded, takes the traffic at once; the replaced release drains and
// stops.
func (h *appHost) Release(ctx context.Context, in deploy.ReleaseInput, record func(context.Context) error) error {
	a := h.app(in.Project)
	d, err := h.store.Deployment(ctx, in.DeploymentID)
	if err != nil {
		return err
	}
	d.Image = in.Image
	start := time.Now()
	inst, _, err := a.bring(ctx, d)
	if err != nil {
		var ue *apps.UnhealthyError
		switch {
		case errors.As(err, &ue):
			return &deploy.ReleaseFailure{Message: "the new release did not become healthy: " + ue.Reason, Output: ue.Output}
		case errors.Is(err, apps.ErrPort):
			return &deploy.ReleaseFailure{Message: fmt.Sprintf("%v: add EXPOSE <port> to the Dockerfile, or run `slipway project set %s --port <port>`", err, in.Project)}
		}
		return err
	}
	if err := record(ctx); err != nil {
		a.mu.Lock()
		serving := a.cur.Load()
		a.mu.Unlock()
		if serving == nil || serving.Name != inst.Name {
			h.retireQuietly(inst)
		}
		return err
	}
	a.mu.Lock()
	a.take(inst, in.DeploymentID)
	a.mu.Unlock()
	h.log.Info("app released", "project", in.Project, "release", in.DeploymentID, "took", time.Since(start))
	return nil
}

// take makes inst the app's serving instance, for the release of
// deployment; the instance it replaces drains its requests, then stops
// (retire). Call with a.mu held.
func (a *projectApp) take(inst *apps.Instance, deployment string) {
	a.release.Store(&deployment)
	old := a.cur.Swap(inst)
	a.lastOutput.Store(nil)
	a.setServing(inst.Addr())
	if old != nil && old.Name != inst.Name {
		drained := a.ep.Swap(new(epoch))
		go a.retire(old, drained)
	}
	if a.open.Load() == 0 {
		a.idleFrom(a.gen.Add(1))
	}
}

// serves is the deployment whose release the app's instance serves, or
// "".
func (a *projectApp) serves() string {
	if p := a.release.Load(); p != nil {
		return *p
	}
	return ""
}

// retire stops old, a replaced release, once the requests begun before
// the switch ended (at most drainTimeout), unless it serves again (a
// rollback to it) by then; then it removes the containers of releases
// older than the last keepReleases.
func (a *projectApp) retire(old *apps.Instance, drained *epoch) {
	deadline := time.Now().Add(drainTimeout)
	for drained.open.Load() > 0 && time.Now().Before(deadline) && !a.h.isClosed() {
		time.Sleep(10 * time.Millisecond)
	}
	// Not under a.mu: a stop may take the app's whole stop timeout, and
	// the serving release's wakes must not wait for it.
	if cur := a.cur.Load(); a.h.isClosed() || (cur != nil && cur.Name == old.Name) {
		return
	}
	a.h.retireQuietly(old)
	a.mu.Lock()
	if cur := a.cur.Load(); cur != nil && cur.Name == old.Name {
		// Taken back while it stopped (a rollback to it): it serves again.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := a.h.rt.Wake(ctx, old)
		cancel()
		a.mu.Unlock()
		if err != nil {
			a.h.log.Warn("apps: wake a release taken back", "project", a.project, "release", old.Release, "error", err)
		}
		return
	}
	a.mu.Unlock()
	a.h.log.Info("app release retired", "project", a.project, "release", old.Release, "drained", drained.open.Load() == 0)
	a.prune()
}

// retireQuietly stops inst for good (no process kept for a fast
// start: apps.Runtime.Retire), logging a failure.
func (h *appHost) retireQuietly(inst *apps.Instance) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.rt.Retire(ctx, inst); err != nil && !errors.Is(err, apps.ErrNotFound) {
		h.log.Warn("apps: retire a release", "project", inst.Project, "release", inst.Release, "error", err)
	}
}

// prune removes the containers of the project's releases but the last
// keepReleases deployments with an image and the serving one, then the
// images no container uses.
func (a *projectApp) prune() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	insts, err := a.h.rt.Reconcile(ctx)
	if err != nil {
		a.h.log.Warn("apps: list releases to prune", "project", a.project, "error", err)
		return
	}
	keep, err := a.keptReleases(ctx)
	if err != nil {
		a.h.log.Warn("apps: list releases to prune", "project", a.project, "error", err)
		return
	}
	removed := 0
	for _, inst := range insts {
		if inst.Project != a.project || inst.Preview != a.preview || keep[inst.Release] {
			continue
		}
		if err := a.h.rt.Remove(ctx, inst); err != nil {
			a.h.log.Warn("apps: remove an old release", "project", a.project, "release", inst.Release, "error", err)
			continue
		}
		removed++
	}
	if removed > 0 {
		if err := a.h.rt.PruneImages(ctx); err != nil {
			a.h.log.Warn("apps: prune images", "error", err)
		}
	}
}

// keptReleases are the releases whose containers prune keeps: the
// serving one and the project's last keepReleases deployments with an
// image (succeeded, or releasing now).
func (a *projectApp) keptReleases(ctx context.Context) (map[string]bool, error) {
	keep := map[string]bool{}
	if cur := a.cur.Load(); cur != nil {
		keep[cur.Release] = true
	}
	ds, err := a.h.store.Deployments(ctx, a.project, 50)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, d := range ds {
		if d.Preview != a.preview {
			continue
		}
		if !d.Status.Terminal() {
			keep[d.ID] = true // a release in progress
			continue
		}
		if d.Status == slipway.StatusSucceeded && d.Image != "" && n < keepReleases {
			keep[d.ID] = true
			n++
		}
	}
	return keep, nil
}

// spec is what the app of d runs: d's image with the project's settings
// and runtime environment (none for a preview) as they are now.
func (a *projectApp) spec(ctx context.Context, d *slipway.Deployment) (apps.Spec, error) {
	p, err := a.h.store.Project(ctx, a.project)
	if err != nil {
		return apps.Spec{}, err
	}
	var env []string
	if a.preview == 0 && a.h.env != nil {
		// A preview runs a pull request's code, maybe a fork's: it gets
		// none of the project's runtime secrets.
		if env, err = a.h.env(ctx, a.project); err != nil {
			return apps.Spec{}, fmt.Errorf("app %s: %w", a.project, err)
		}
	}
	e := p.App.Effective()
	return apps.Spec{
		Project: a.project, Release: d.ID, Image: d.Image, Port: e.Port, Env: env, Preview: a.preview,
		MemoryBytes: e.MemoryBytes, CPUs: e.CPUs, HealthPath: e.HealthPath,
	}, nil
}

// runs reports whether inst runs d's release: its own container, or one
// with the spec d's would start with now.
func (a *projectApp) runs(ctx context.Context, inst *apps.Instance, d *slipway.Deployment) bool {
	if inst.Release == d.ID {
		return true
	}
	spec, err := a.spec(ctx, d)
	if err != nil {
		return false
	}
	fp, err := a.h.rt.Fingerprint(spec)
	return err == nil && fp == inst.Spec
}

// stale reports whether inst, d's own container, is stopped and runs
// another spec than spec (the project's settings or environment changed).
func (a *projectApp) stale(ctx context.Context, inst *apps.Instance, spec apps.Spec) bool {
	fp, err := a.h.rt.Fingerprint(spec)
	if err != nil || fp == inst.Spec {
		return false
	}
	st, err := a.h.rt.State(ctx, inst)
	return err == nil && (st == apps.Stopped || st == apps.Failed)
}
