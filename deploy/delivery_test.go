package deploy

import (
	"strings"
	"testing"

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
	} {
		if _, _, err := store.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
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
