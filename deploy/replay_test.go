package deploy

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway/builder"
)

// Histories recorded by earlier versions of the workflows still replay
// (workflow.GetVersion keeps their path), so deployments in flight during
// an upgrade finish. testdata/deployment-v0.json is a DeploymentWorkflow
// history (a build that succeeded) recorded by the server before version 1
// (versionParallelStart), with bench -orchestration.
func TestReplayEarlierHistories(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(DeploymentWorkflow, workflow.RegisterOptions{Name: "DeploymentWorkflow"})
	r.RegisterWorkflowWithOptions(builder.BuildWorkflow, workflow.RegisterOptions{Name: "BuildWorkflow"})
	for _, f := range []string{"testdata/deployment-v0.json"} {
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
			t.Errorf("replay %s: %v", f, err)
		}
	}
}

// TestReplayRecordedHistories replays DeploymentWorkflow histories that
// an earlier Slipway recorded (testdata/deployment-*.json, see
// testdata/README.md) with today's code: a workflow change that is not
// guarded by workflow.GetVersion fails here with a nondeterminism error,
// as it would for the workflows in flight when a server is upgraded.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/deployment-*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d recorded histories in testdata, want the 5 of testdata/README.md", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(DeploymentWorkflow, workflow.RegisterOptions{Name: "DeploymentWorkflow"})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
