package deploy

import (
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Histories recorded by earlier versions of the workflows still replay
// (workflow.GetVersion keeps their path), so deployments in flight during
// an upgrade finish. testdata/deployment-v0.json is a DeploymentWorkflow
// history (a build that succeeded) recorded by the server before version 1
// (versionParallelStart), with bench -orchestration.
func TestReplayEarlierHistories(t *testing.T) {
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(DeploymentWorkflow, workflow.RegisterOptions{Name: "DeploymentWorkflow"})
	r.RegisterWorkflowWithOptions(BuildWorkflow, workflow.RegisterOptions{Name: "BuildWorkflow"})
	for _, f := range []string{"testdata/deployment-v0.json"} {
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
			t.Errorf("replay %s: %v", f, err)
		}
	}
}
