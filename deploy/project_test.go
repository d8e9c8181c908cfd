package deploy

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

func projectEnv(t *testing.T, f *fakeActivities) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(30 * time.Second)
	f.calls = map[string]int{}
	f.register(env)
	env.RegisterWorkflowWithOptions(DeploymentWorkflow, workflow.RegisterOptions{Name: "DeploymentWorkflow"})
	return env
}

func deployment(id, ref string) DeploymentInput {
	in := input()
	in.DeploymentID = id
	in.Ref = ref
	return in
}

// blockingBuild is a build that runs until it is cancelled.
func blockingBuild(ctx context.Context) (builder.BuildActivityResult, error) {
	for {
		select {
		case <-ctx.Done():
			return builder.BuildActivityResult{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
			activity.RecordHeartbeat(ctx)
		}
	}
}

func results(f *fakeActivities) map[string]slipway.DeploymentResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]slipway.DeploymentResult{}
	for _, fi := range f.finished {
		if _, dup := m[fi.DeploymentID]; !dup {
			m[fi.DeploymentID] = fi.Result
		}
	}
	return m
}

func TestNewerPushSupersedes(t *testing.T) {
	f := &fakeActivities{}
	f.build = func(ctx context.Context) (builder.BuildActivityResult, error) {
		// d1's build runs until it is stopped. Chosen by deployment, not by
		// call order: on a loaded machine d2 may arrive before d1 reached
		// its build, and then d2's build is the first one called.
		if activity.GetInfo(ctx).WorkflowExecution.ID == "build-d1" {
			return blockingBuild(ctx)
		}
		// Part of the scenario: the other builds take a while, so that
		// d3's signal arrives while one runs.
		time.Sleep(300 * time.Millisecond)
		return builder.BuildActivityResult{}, nil
	}
	env := projectEnv(t, f)
	// d1 is building (or about to) when d2 (same branch, other spelling) and d3 (another
	// branch) arrive; d2 supersedes d1; d3 waits its turn.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalDeploy, deployment("d2", "main")) }, 200*time.Millisecond)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalDeploy, deployment("d3", "refs/heads/dev")) }, 300*time.Millisecond)
	env.ExecuteWorkflow(ProjectWorkflow, "app", []DeploymentInput{deployment("d1", "refs/heads/main")})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("project workflow: %v", err)
	}
	r := results(f)
	if got := r["d1"]; got.Status != slipway.StatusSuperseded || !strings.Contains(got.Error, "d2") {
		t.Errorf("d1 = %+v, want superseded by d2", got)
	}
	for _, id := range []string{"d2", "d3"} {
		if r[id].Status != slipway.StatusSucceeded {
			t.Errorf("%s = %+v, want succeeded", id, r[id])
		}
	}
	if f.calls[builder.ActivityPush] != 2 {
		t.Errorf("%d pushes, want 2 (the superseded build pushes nothing)", f.calls[builder.ActivityPush])
	}
}

func TestQueuedDeploymentSupersededAndCancelled(t *testing.T) {
	f := &fakeActivities{}
	builds := 0
	release := make(chan struct{})
	f.build = func(ctx context.Context) (builder.BuildActivityResult, error) {
		f.mu.Lock()
		builds++
		n := builds
		f.mu.Unlock()
		if n == 1 {
			select {
			case <-release:
			case <-ctx.Done():
				return builder.BuildActivityResult{}, ctx.Err()
			}
		}
		return builder.BuildActivityResult{}, nil
	}
	env := projectEnv(t, f)
	// d1 (main) builds; d2 (dev) queues, then d3 (dev) supersedes the
	// queued d2; d4 (other) queues and is cancelled before it starts.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalDeploy, deployment("d2", "dev")) }, 100*time.Millisecond)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalDeploy, deployment("d3", "dev")) }, 200*time.Millisecond)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalDeploy, deployment("d4", "other")) }, 300*time.Millisecond)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalCancel, "d4") }, 400*time.Millisecond)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalDeploy, deployment("d3", "dev")) }, 450*time.Millisecond) // redelivered: ignored
	env.RegisterDelayedCallback(func() { close(release) }, 500*time.Millisecond)
	env.ExecuteWorkflow(ProjectWorkflow, "app", []DeploymentInput{deployment("d1", "main")})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("project workflow: %v", err)
	}
	r := results(f)
	want := map[string]slipway.Status{"d1": slipway.StatusSucceeded, "d2": slipway.StatusSuperseded, "d3": slipway.StatusSucceeded, "d4": slipway.StatusCancelled}
	for id, st := range want {
		if r[id].Status != st {
			t.Errorf("%s = %+v, want %s", id, r[id], st)
		}
	}
	if builds != 2 {
		t.Errorf("%d builds ran, want 2 (d1 and d3)", builds)
	}
}

func TestCancelRunningDeployment(t *testing.T) {
	f := &fakeActivities{build: blockingBuild}
	env := projectEnv(t, f)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalCancel, "d1") }, 200*time.Millisecond)
	env.ExecuteWorkflow(ProjectWorkflow, "app", []DeploymentInput{deployment("d1", "main")})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("project workflow: %v", err)
	}
	if r := results(f)["d1"]; r.Status != slipway.StatusCancelled {
		t.Errorf("d1 = %+v, want cancelled", r)
	}
	if f.calls[builder.ActivityPush] != 0 {
		t.Errorf("a cancelled build pushed")
	}
}

// A pull request's builds (refs/pull/<N>/head) supersede the older
// builds of the same pull request only: never the project's own, nor
// another pull request's.
func TestPreviewBuildsSupersedeTheirOwnOnly(t *testing.T) {
	f := &fakeActivities{}
	release := make(chan struct{})
	f.build = func(ctx context.Context) (builder.BuildActivityResult, error) {
		if activity.GetInfo(ctx).WorkflowExecution.ID == "build-d1" {
			select {
			case <-release:
			case <-ctx.Done():
				return builder.BuildActivityResult{}, ctx.Err()
			}
		}
		return builder.BuildActivityResult{}, nil
	}
	env := projectEnv(t, f)
	pr := func(id string, n int) DeploymentInput {
		in := deployment(id, slipway.PreviewRef(n))
		in.Preview = n
		return in
	}
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalDeploy, pr("p7a", 7)) }, 100*time.Millisecond)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalDeploy, pr("p9", 9)) }, 150*time.Millisecond)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalDeploy, pr("p7b", 7)) }, 200*time.Millisecond)
	env.RegisterDelayedCallback(func() { close(release) }, 300*time.Millisecond)
	env.ExecuteWorkflow(ProjectWorkflow, "app", []DeploymentInput{deployment("d1", "refs/heads/main")})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("project workflow: %v", err)
	}
	r := results(f)
	want := map[string]slipway.Status{"d1": slipway.StatusSucceeded, "p7a": slipway.StatusSuperseded, "p9": slipway.StatusSucceeded, "p7b": slipway.StatusSucceeded}
	for id, st := range want {
		if r[id].Status != st {
			t.Errorf("%s = %+v, want %s", id, r[id], st)
		}
	}
}
