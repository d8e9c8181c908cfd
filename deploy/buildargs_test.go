package deploy

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// A project's build arguments reach the Build activity as they were when
// the deployment was asked for: a change made while it waits in the queue
// goes to the next deployment. Real store, embedded Temporal, the real
// workflows; stand-in activities.
func TestBuildArgsReachTheBuild(t *testing.T) {
	tc := embeddedTemporal(t)
	store := storeWithApp(t)
	ctx := t.Context()
	if _, err := store.SetBuildArgs(ctx, "app", []slipway.BuildArg{{Name: "BASE", Value: "reg/base:1"}, {Name: "GREETING", Value: "hello"}}, nil); err != nil {
		t.Fatal(err)
	}
	// The first build waits until the second deployment has been asked
	// for and the arguments changed.
	release := make(chan struct{})
	f := &fakeActivities{calls: map[string]int{}}
	f.build = func(ctx context.Context) (builder.BuildActivityResult, error) {
		if activity.GetInfo(ctx).WorkflowExecution.ID == "build-"+firstDeployment(f) {
			select {
			case <-release:
			case <-ctx.Done():
				return builder.BuildActivityResult{}, ctx.Err()
			}
		}
		return builder.BuildActivityResult{}, nil
	}
	for _, q := range []string{ControlQueue, builder.Queue("app")} {
		w := worker.New(tc, q, worker.Options{})
		f.register(w)
		w.RegisterWorkflowWithOptions(ProjectWorkflow, workflow.RegisterOptions{Name: "ProjectWorkflow"})
		w.RegisterWorkflowWithOptions(DeploymentWorkflow, workflow.RegisterOptions{Name: "DeploymentWorkflow"})
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	svc := NewService(ServiceConfig{Store: store, Temporal: tc, Registry: "reg"})
	deploy := func(ref string, commit byte) *slipway.Deployment {
		t.Helper()
		d, _, err := svc.Deploy(ctx, slipway.DeployRequest{Project: "app", Ref: ref, Commit: strings.Repeat(string(commit), 40)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d1 := deploy("refs/heads/main", 'a')
	testenv.WaitFor(t, time.Minute, "the first build", func() bool { return len(buildsOf(f)) == 1 })
	d2 := deploy("refs/heads/other", 'b') // another branch: queued behind d1, not superseding it
	if _, err := store.SetBuildArgs(ctx, "app", []slipway.BuildArg{{Name: "GREETING", Value: "bye"}}, []string{"BASE"}); err != nil {
		t.Fatal(err)
	}
	close(release)
	testenv.WaitFor(t, time.Minute, "the second build", func() bool { return len(buildsOf(f)) == 2 })
	d3 := deploy("refs/heads/main", 'c')
	testenv.WaitFor(t, time.Minute, "the third build", func() bool { return len(buildsOf(f)) == 3 })

	want := map[string]map[string]string{
		d1.ID: {"BASE": "reg/base:1", "GREETING": "hello"},
		d2.ID: {"BASE": "reg/base:1", "GREETING": "hello"}, // asked for before the change
		d3.ID: {"GREETING": "bye"},
	}
	for _, in := range buildsOf(f) {
		if !reflect.DeepEqual(in.BuildArgs, want[in.DeploymentID]) {
			t.Errorf("Build of %s got build arguments %v, want %v", in.DeploymentID, in.BuildArgs, want[in.DeploymentID])
		}
	}
}

// firstDeployment is the deployment of the first Build call.
func firstDeployment(f *fakeActivities) string {
	if b := buildsOf(f); len(b) > 0 {
		return b[0].DeploymentID
	}
	return ""
}

func buildsOf(f *fakeActivities) []builder.BuildInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]builder.BuildInput(nil), f.builds...)
}
