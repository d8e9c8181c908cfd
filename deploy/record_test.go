package deploy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

// TestRecordHistories runs DeploymentWorkflow on the embedded Temporal
// server with stand-in activities (a deployment that succeeds, one whose
// build fails), records each history as protojson and replays it with this
// code. With SLIPWAY_RECORD_HISTORIES=testdata the histories are written
// there too, named deployment-<version>-<case>.json, for
// TestReplayRecordedHistories to replay with later code (see
// testdata/README.md): do that when a workflow change adds a version.
func TestRecordHistories(t *testing.T) {
	tc := embeddedTemporal(t)
	f := &fakeActivities{calls: map[string]int{}}
	for _, q := range []string{ControlQueue, builder.Queue(input().Project)} {
		w := worker.New(tc, q, worker.Options{})
		f.register(w)
		w.RegisterWorkflowWithOptions(DeploymentWorkflow, workflow.RegisterOptions{Name: "DeploymentWorkflow"})
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	out := os.Getenv("SLIPWAY_RECORD_HISTORIES")
	for _, c := range []struct {
		name  string
		build func(context.Context) (builder.BuildActivityResult, error)
		want  slipway.Status
	}{
		{"succeeded", nil, slipway.StatusSucceeded},
		{"buildfail", func(context.Context) (builder.BuildActivityResult, error) {
			return builder.BuildActivityResult{}, temporal.NewNonRetryableApplicationError("build failed at STEP 2/2: RUN false (exit code 1)", builder.ErrBuildFailed, nil,
				builder.FailureDetails{Step: "STEP 2/2: RUN false", Tail: []string{"exit code 1"}})
		}, slipway.StatusFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			f.mu.Lock()
			f.build = c.build
			f.mu.Unlock()
			in := input()
			in.DeploymentID = "rec-" + c.name
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: builder.DeploymentWorkflowID(in.DeploymentID), TaskQueue: ControlQueue}, DeploymentWorkflow, in)
			if err != nil {
				t.Fatal(err)
			}
			var res slipway.DeploymentResult
			if err := run.Get(ctx, &res); err != nil || res.Status != c.want {
				t.Fatalf("deployment ended %+v, %v; want %s", res, err, c.want)
			}
			h := &historypb.History{}
			it := tc.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					t.Fatal(err)
				}
				h.Events = append(h.Events, e)
			}
			b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "h.json")
			if out != "" {
				file = filepath.Join(out, "deployment-"+versionLocalSlot+"-"+c.name+".json")
			}
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(DeploymentWorkflow, workflow.RegisterOptions{Name: "DeploymentWorkflow"})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
				t.Fatalf("replay of the history just recorded: %v", err)
			}
		})
	}
}
