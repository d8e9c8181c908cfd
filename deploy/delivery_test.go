package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// Earlier is where every Deployer recognises a request an earlier
// deployment answers; the Service answers those without Temporal.
func TestEarlier(t *testing.T) {
	store := storeWithApp(t)
	ctx := t.Context()
	sha := func(c string) string { return strings.Repeat(c, 40) }
	for _, d := range []*slipway.Deployment{
		{ID: "d-hook", Project: "app", Ref: "refs/heads/main", Commit: sha("a"), Trigger: slipway.TriggerWebhook, DeliveryID: "one"},
		{ID: "d-hand", Project: "app", Ref: "main", Commit: sha("b"), Trigger: slipway.TriggerManual},
		{ID: "d-other", Project: "app", Ref: "refs/heads/other", Commit: sha("c"), Trigger: slipway.TriggerWebhook, DeliveryID: "two"},
		{ID: "d-keyed", Project: "app", Ref: "refs/heads/main", Commit: sha("e"), Trigger: slipway.TriggerWebhook, DeliveryID: "three/app"},
		{ID: "d-pr-gone", Project: "app", Ref: "refs/pull/3/head", Commit: sha("f"), Trigger: slipway.TriggerWebhook, DeliveryID: "four/app", Preview: 3},
		{ID: "d-pr", Project: "app", Ref: "refs/pull/3/head", Commit: sha("9"), Trigger: slipway.TriggerWebhook, DeliveryID: "five/app", Preview: 3},
	} {
		if _, _, err := store.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// A pull request closed while its head built: the build was cancelled.
	if err := store.FinishDeployment(ctx, "d-pr-gone", slipway.DeploymentResult{Status: slipway.StatusCancelled}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pr := func(commit, delivery string) slipway.DeployRequest {
		return slipway.DeployRequest{Project: "app", Ref: "refs/pull/3/head", Commit: commit, Trigger: slipway.TriggerWebhook, DeliveryID: delivery, Preview: 3}
	}
	if key := DeliveryKey(slipway.DeployRequest{Project: "app", DeliveryID: "three"}); key != "three/app" {
		t.Errorf("DeliveryKey = %q, want three/app", key)
	}
	hook := func(commit, delivery string, stale bool) slipway.DeployRequest {
		return slipway.DeployRequest{Project: "app", Ref: "refs/heads/main", Commit: commit, Trigger: slipway.TriggerWebhook, DeliveryID: delivery, Stale: stale}
	}
	for _, tc := range []struct {
		name    string
		req     slipway.DeployRequest
		want    string
		outcome slipway.DeployOutcome
	}{
		{"redelivery", hook(sha("a"), "one", false), "d-hook", slipway.DeployRedelivered},
		{"redelivery, recorded under its DeliveryKey", hook(sha("e"), "three", false), "d-keyed", slipway.DeployRedelivered},
		{"replay under a new id", hook(sha("a"), "new", false), "d-hook", slipway.DeployReplayed},
		{"stale, deployed by a webhook", hook(sha("a"), "new", true), "d-hook", slipway.DeployStale},
		{"stale, deployed by hand", hook(sha("b"), "new", true), "d-hand", slipway.DeployStale},
		{"fresh, deployed by hand", hook(sha("b"), "new", false), "", ""},
		{"stale, deployed from another branch", hook(sha("c"), "new", true), "", ""},
		{"new commit", hook(sha("d"), "new", false), "", ""},
		{"preview: head built before", pr(sha("9"), "new"), "d-pr", slipway.DeployReplayed},
		// Reopened, or pushed back to, after its build was cancelled or
		// superseded: a preview's replay cannot touch the project's
		// release, so the head builds again.
		{"preview: head whose build was cancelled", pr(sha("f"), "new"), "", ""},
		{"preview: redelivery of the cancelled build's delivery", pr(sha("f"), "four"), "d-pr-gone", slipway.DeployRedelivered},
		{"manual of a deployed commit", slipway.DeployRequest{Project: "app", Ref: "main", Commit: sha("a"), Trigger: slipway.TriggerManual}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, outcome, err := Earlier(ctx, store, tc.req)
			if err != nil || (d == nil) != (tc.want == "") || d != nil && d.ID != tc.want || outcome != tc.outcome {
				t.Fatalf("Earlier(%+v) = %v, %q, %v; want %q, %q", tc.req, d, outcome, err, tc.want, tc.outcome)
			}
			if d == nil {
				return
			}
			// No Temporal client: reaching it would panic, so this also
			// proves nothing was started.
			svc := NewService(ServiceConfig{Store: store, Registry: "reg"})
			got, outcome, err := svc.Deploy(ctx, tc.req)
			if err != nil || got.ID != tc.want || outcome != tc.outcome {
				t.Errorf("Deploy(%+v) = %v, %q, %v; want %s, %q", tc.req, got, outcome, err, tc.want, tc.outcome)
			}
		})
	}
}
