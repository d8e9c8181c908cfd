package server

import (
	"log/slog"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/gateway"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// The adapter finds apps by the store: an unknown project has none
// (404), a known one's wake says nothing is deployed (ENOTFOUND, a 404
// page) until a deployment succeeds, and its current release is the
// newest succeeded deployment with an image that is no preview.
func TestAppHostReleases(t *testing.T) {
	store := sqlitetest.Open(t)
	h := newAppHost(nil, store, time.Minute, time.Hour, slog.New(slog.DiscardHandler))
	if _, ok := h.Lookup(gateway.Route{Project: "nosuch"}); ok {
		t.Error("Lookup of an unknown project found an app")
	}
	sqlitetest.AddProject(t, store, slipway.Project{Name: "web", Repo: "file:///nowhere"})
	app, ok := h.Lookup(gateway.Route{Project: "web"})
	if !ok {
		t.Fatal("Lookup of a project found no app")
	}
	if _, err := app.Wake(t.Context()); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("Wake with nothing deployed = %v, want ENOTFOUND", err)
	}
	if again, _ := h.Lookup(gateway.Route{Project: "web"}); again != app {
		t.Error("a second Lookup returned another app: wakes in flight would not be shared")
	}
	ok1 := sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Commit: "c1", Status: slipway.StatusSucceeded, Image: "r/web:c1", Digest: "sha256:1"})
	sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Commit: "c2", Status: slipway.StatusFailed, Error: "boom"})
	sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Ref: slipway.PreviewRef(4), Commit: "c3", Status: slipway.StatusSucceeded, Image: "r/web:c3", Digest: "sha256:3", Preview: 4})
	d, err := app.(*projectApp).currentRelease(t.Context())
	if err != nil || d.ID != ok1.ID {
		t.Errorf("current release = %v, %v; want the succeeded deployment %s, not the newer failed one nor the preview", d, err, ok1.ID)
	}
	if _, ok := app.Serving(); ok {
		t.Error("an app never woken says it serves")
	}
}
