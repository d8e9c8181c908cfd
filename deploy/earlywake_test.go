package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// Deploy wakes the project's machine early for a new deployment only: not
// for a replayed delivery of a known commit, nor for a duplicate delivery.
// The real embedded Temporal receives the workflow (no worker runs it).
func TestEarlyWakeOnlyForNewDeployments(t *testing.T) {
	tc := embeddedTemporal(t)
	store := storeWithApp(t)
	ctx := t.Context()

	var woke []string
	svc := NewService(ServiceConfig{Store: store, Temporal: tc, Registry: "reg", EarlyWake: func(ctx context.Context, project string) {
		// Before the workflow starts: Temporal has not heard of it yet.
		if _, err := tc.DescribeWorkflowExecution(ctx, ProjectWorkflowID(project), ""); err == nil && len(woke) == 0 {
			t.Error("EarlyWake called after the project's workflow started")
		}
		woke = append(woke, project)
	}})
	push := func(commit, delivery string) (*slipway.Deployment, slipway.DeployOutcome) {
		t.Helper()
		d, outcome, err := svc.Deploy(ctx, slipway.DeployRequest{Project: "app", Ref: "refs/heads/main", Commit: commit, Trigger: slipway.TriggerWebhook, DeliveryID: delivery})
		if err != nil {
			t.Fatal(err)
		}
		return d, outcome
	}
	d1, outcome := push(strings.Repeat("a", 40), "one")
	if !outcome.Created() {
		t.Fatal("first push created no deployment")
	}
	if len(woke) != 1 || woke[0] != "app" {
		t.Fatalf("a new deployment woke %v, want [app]", woke)
	}
	// The workflow was handed the deployment.
	if _, err := tc.DescribeWorkflowExecution(ctx, ProjectWorkflowID("app"), ""); err != nil {
		t.Errorf("project workflow not started: %v", err)
	}
	// The same delivery again, and the same commit under a new delivery id:
	// nothing new, so no wake.
	if d, outcome := push(strings.Repeat("a", 40), "one"); outcome != slipway.DeployRedelivered || d.ID != d1.ID {
		t.Errorf("duplicate delivery: %s (%s), want %s (%s)", outcome, d.ID, slipway.DeployRedelivered, d1.ID)
	}
	if d, outcome := push(strings.Repeat("a", 40), "two"); outcome != slipway.DeployReplayed || d.ID != d1.ID {
		t.Errorf("replayed commit: %s (%s), want %s (%s)", outcome, d.ID, slipway.DeployReplayed, d1.ID)
	}
	if len(woke) != 1 {
		t.Errorf("ignored deliveries woke the machine: %v", woke)
	}
	if _, outcome := push(strings.Repeat("b", 40), "three"); !outcome.Created() {
		t.Fatal("new commit created no deployment")
	}
	if len(woke) != 2 {
		t.Errorf("2 new deployments and 2 ignored deliveries woke %v, want [app app]", woke)
	}
}

// embeddedTemporal starts the embedded Temporal server and returns a
// client of it; both stop when the test ends.
func embeddedTemporal(t *testing.T) client.Client {
	t.Helper()
	ts, creds := testenv.Temporal(t, func(context.Context, string) (string, error) {
		return "", errors.New("no agents here")
	})
	return testenv.TemporalClient(t, ts, creds)
}
