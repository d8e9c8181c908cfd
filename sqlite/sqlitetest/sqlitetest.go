// Package sqlitetest gives other packages' tests the real store: a
// sqlite.DB on a file in the test's temporary directory with every
// migration applied, and helpers that seed it with projects and with
// deployments in any state through the store's own methods (so a seeded
// record is one the product could have written). It also has Deployer, a
// slipway.Deployer that records deployments in the store without
// Temporal, for tests of the edges (API, CLI, webhooks).
//
// Tests that need a store to fail wrap the real one and fail the one
// method they are about; there are no in-memory stores. Only tests may
// import this package.
package sqlitetest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/sqlite"
)

// Open returns a new store in t.TempDir(), closed when the test ends.
func Open(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatalf("sqlitetest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// AddProject stores p as given (the store checks only its name and build
// arguments) and returns it as stored.
func AddProject(t testing.TB, s slipway.Store, p slipway.Project) *slipway.Project {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateProject(ctx, &p); err != nil {
		t.Fatalf("sqlitetest: add project %s: %v", p.Name, err)
	}
	stored, err := s.Project(ctx, p.Name)
	if err != nil {
		t.Fatalf("sqlitetest: add project %s: %v", p.Name, err)
	}
	return stored
}

// AddDeployment stores d (its id, project, ref, commit, trigger, delivery
// id and creation time) and brings it to d.Status with Advance. It returns
// the deployment as stored.
func AddDeployment(t testing.TB, s slipway.Store, d slipway.Deployment) *slipway.Deployment {
	t.Helper()
	ctx := context.Background()
	want := d
	d.Status = slipway.StatusQueued
	if _, created, err := s.CreateDeployment(ctx, &d); err != nil {
		t.Fatalf("sqlitetest: add deployment %s: %v", want.ID, err)
	} else if !created {
		t.Fatalf("sqlitetest: add deployment %s: delivery %q was already stored", want.ID, want.DeliveryID)
	}
	want.ID = d.ID
	if err := Advance(ctx, s, want); err != nil {
		t.Fatalf("sqlitetest: %v", err)
	}
	stored, err := s.Deployment(ctx, d.ID)
	if err != nil {
		t.Fatalf("sqlitetest: add deployment %s: %v", d.ID, err)
	}
	return stored
}

// Advance moves the stored deployment d.ID forward to d.Status, as the
// workflow would: MarkBuilding at d.StartedAt (now if nil) when d is
// building, or ended after it started; FinishDeployment with d's result
// (image, digest, error, failed step, timings, steps, log counts) at
// d.FinishedAt (now if nil) when d.Status is terminal. Steps already
// taken change nothing, so a test can replay a deployment's states in
// order. It returns an error rather than failing the test, so that it can
// run outside the test's goroutine.
func Advance(ctx context.Context, s slipway.Store, d slipway.Deployment) error {
	if d.Status == slipway.StatusBuilding || d.Status.Terminal() && d.StartedAt != nil {
		at := time.Now()
		if d.StartedAt != nil {
			at = *d.StartedAt
		}
		if err := s.MarkBuilding(ctx, d.ID, at); err != nil && !(d.Status.Terminal() && slipway.ErrorCode(err) == slipway.ECONFLICT) {
			return fmt.Errorf("deployment %s to building: %w", d.ID, err)
		}
	}
	if !d.Status.Terminal() {
		return nil
	}
	at := time.Now()
	if d.FinishedAt != nil {
		at = *d.FinishedAt
	}
	r := slipway.DeploymentResult{Status: d.Status, Image: d.Image, Digest: d.Digest, Error: d.Error, FailedStep: d.FailedStep,
		Timings: d.Timings, Steps: d.Steps, LogComplete: d.LogComplete, LogLines: d.LogLines}
	if d.LogCompleteAt != nil {
		r.LogCompleteAt = *d.LogCompleteAt
	}
	if err := s.FinishDeployment(ctx, d.ID, r, at); err != nil {
		return fmt.Errorf("deployment %s to %s: %w", d.ID, d.Status, err)
	}
	return nil
}

// Deployer is a slipway.Deployer without Temporal: Deploy records the
// request and a queued deployment in the store, d-1, d-2, ... in the order
// they were created, skipping ids the test took, and nothing ever builds
// it. A request an earlier deployment answers (a redelivery, a replayed
// or stale delivery) is answered as the real Deployer answers it: by
// deploy.Earlier, then the store's deduplication of delivery ids. Rollback
// is refused; Cancel records a queued or building deployment as
// cancelled.
type Deployer struct {
	// Store records the deployments.
	Store slipway.Store

	mu   sync.Mutex
	reqs []slipway.DeployRequest
	next int // the number of the last id given
}

var _ slipway.Deployer = (*Deployer)(nil)

// Deploy implements slipway.Deployer. An empty ref is the project's
// branch, an empty commit 0123456789abcdef0123456789abcdef01234567 and an
// empty trigger manual, as the real Deployer would resolve them.
func (d *Deployer) Deploy(ctx context.Context, req slipway.DeployRequest) (*slipway.Deployment, slipway.DeployOutcome, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reqs = append(d.reqs, req)
	p, err := d.Store.Project(ctx, req.Project)
	if err != nil {
		return nil, "", err
	}
	if req.Ref == "" {
		req.Ref = p.Branch
	}
	if req.Commit == "" {
		req.Commit = "0123456789abcdef0123456789abcdef01234567"
	}
	if req.Trigger == "" {
		req.Trigger = slipway.TriggerManual
	}
	if earlier, outcome, err := deploy.Earlier(ctx, d.Store, req); err != nil || earlier != nil {
		return earlier, outcome, err
	}
	for {
		d.next++
		dep := &slipway.Deployment{ID: fmt.Sprintf("d-%d", d.next), Project: req.Project, Ref: req.Ref, Commit: req.Commit,
			Trigger: req.Trigger, DeliveryID: deploy.DeliveryKey(req), Preview: req.Preview}
		got, created, err := d.Store.CreateDeployment(ctx, dep)
		if slipway.ErrorCode(err) == slipway.ECONFLICT {
			continue // a deployment the test seeded has this id
		}
		if !created {
			d.next--
		}
		if err != nil {
			return nil, "", err
		}
		return got, deploy.CreatedOutcome(created), nil
	}
}

// Requests returns the requests Deploy was given, in order.
func (d *Deployer) Requests() []slipway.DeployRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.reqs)
}

// Rollback implements slipway.Deployer: it is EINVALID, a rollback needs
// the registry and a workflow.
func (d *Deployer) Rollback(ctx context.Context, project, to string) (*slipway.Deployment, error) {
	return nil, slipway.Errorf(slipway.EINVALID, "rollback needs a workflow, which this test does not run")
}

// Cancel implements slipway.Deployer: a queued or building deployment is
// recorded cancelled; one that ended is ECONFLICT.
func (d *Deployer) Cancel(ctx context.Context, id string) (*slipway.Deployment, error) {
	dep, err := d.Store.Deployment(ctx, id)
	if err != nil {
		return nil, err
	}
	if dep.Status.Terminal() {
		return nil, slipway.Errorf(slipway.ECONFLICT, "deployment %s already ended %s", id, dep.Status)
	}
	if err := d.Store.FinishDeployment(ctx, id, slipway.DeploymentResult{Status: slipway.StatusCancelled, Error: "cancelled"}, time.Time{}); err != nil {
		return nil, err
	}
	return d.Store.Deployment(ctx, id)
}
