package sqlitetest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// A seeded deployment is what the store's own methods make of it, in
// every state; the Deployer names deployments past the seeded ones.
func TestSeeding(t *testing.T) {
	db := sqlitetest.Open(t)
	sqlitetest.AddProject(t, db, slipway.Project{Name: "web", Repo: "file:///web", Branch: "main"})
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	started, finished := t0.Add(time.Second), t0.Add(9*time.Second)
	tests := []struct {
		d    slipway.Deployment
		want string
	}{
		{slipway.Deployment{ID: "d-1", Status: slipway.StatusQueued}, "queued started false finished false"},
		{slipway.Deployment{ID: "d-2", Status: slipway.StatusBuilding, StartedAt: &started}, "building started true finished false"},
		{slipway.Deployment{ID: "d-3", Status: slipway.StatusSucceeded, StartedAt: &started, FinishedAt: &finished, Image: "img", Digest: "sha256:x"},
			"succeeded started true finished true"},
		{slipway.Deployment{ID: "d-4", Status: slipway.StatusCancelled, FinishedAt: &finished}, "cancelled started false finished true"},
	}
	for _, tt := range tests {
		tt.d.Project, tt.d.CreatedAt = "web", t0
		got := sqlitetest.AddDeployment(t, db, tt.d)
		if s := fmt.Sprintf("%s started %v finished %v", got.Status, got.StartedAt != nil, got.FinishedAt != nil); s != tt.want {
			t.Errorf("AddDeployment(%s) = %s, want %s", tt.d.ID, s, tt.want)
		}
		if got.Status.Terminal() && !got.FinishedAt.Equal(finished) || got.StartedAt != nil && !got.StartedAt.Equal(started) || got.Image != tt.d.Image {
			t.Errorf("AddDeployment(%s) = %+v, want the times and image given", tt.d.ID, got)
		}
	}
	dep := &sqlitetest.Deployer{Store: db}
	d, outcome, err := dep.Deploy(t.Context(), slipway.DeployRequest{Project: "web", DeliveryID: "x"})
	if err != nil || !outcome.Created() || d.ID != "d-5" || d.Ref != "main" || d.Trigger != slipway.TriggerManual {
		t.Errorf("Deploy = %+v, %s, %v; want d-5 of main, manual", d, outcome, err)
	}
	if again, outcome, err := dep.Deploy(t.Context(), slipway.DeployRequest{Project: "web", DeliveryID: "x"}); err != nil || outcome != slipway.DeployRedelivered || again.ID != "d-5" {
		t.Errorf("Deploy of the same delivery = %+v, %s, %v; want d-5 again, redelivered", again, outcome, err)
	}
	if _, err := dep.Cancel(t.Context(), "d-5"); err != nil {
		t.Errorf("Cancel(d-5) = %v", err)
	}
	if _, err := dep.Cancel(t.Context(), "d-5"); slipway.ErrorCode(err) != slipway.ECONFLICT {
		t.Errorf("Cancel of an ended deployment = %v, want conflict", err)
	}
	if n := len(dep.Requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}
