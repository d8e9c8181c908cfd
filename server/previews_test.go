package server

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/gateway"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// A preview's route finds its app by the preview's record: none or a
// closed one is a 404 saying so (and keeps no app), an open one serves
// its pull request's latest succeeded build, never the project's own nor
// another pull request's. The app runtime is not needed for this: e2e
// TestPreviews runs the containers.
func TestPreviewLookup(t *testing.T) {
	store := sqlitetest.Open(t)
	log := slog.New(slog.DiscardHandler)
	h := newAppHost(nil, store, nil, time.Minute, time.Hour, log)
	dep := &sqlitetest.Deployer{Store: store}
	h.previews = newPreviews(store, dep, time.Hour, log)
	ctx := t.Context()
	pr3 := gateway.Route{Project: "web", Preview: 3}
	if _, ok := h.Lookup(pr3); ok {
		t.Error("Lookup of a preview of an unknown project found an app")
	}
	sqlitetest.AddProject(t, store, slipway.Project{Name: "web", Repo: "file:///nowhere", Branch: "main"})
	app, ok := h.Lookup(pr3)
	if !ok {
		t.Fatal("Lookup of a preview of a known project found nothing: want an app whose wake says why there is none")
	}
	if _, err := app.Wake(ctx); slipway.ErrorCode(err) != slipway.ENOTFOUND || !strings.Contains(err.Error(), "pull request #3 of project web has no preview") {
		t.Errorf("Wake of a preview never opened = %v, want ENOTFOUND saying there is no preview", err)
	}
	if len(h.apps) != 0 {
		t.Errorf("a lookup of a missing preview kept %d apps, want none", len(h.apps))
	}

	sha := strings.Repeat("c", 40)
	d, outcome, err := h.previews.OpenPreview(ctx, slipway.PreviewRequest{Project: "web", Number: 3, HeadSHA: sha, HeadBranch: "topic", DeliveryID: "x-1"})
	if err != nil || !outcome.Created() || d.Preview != 3 || d.Ref != "refs/pull/3/head" {
		t.Fatalf("OpenPreview = %+v, %s, %v; want a created deployment of refs/pull/3/head with Preview 3", d, outcome, err)
	}
	app, _ = h.Lookup(pr3)
	if again, _ := h.Lookup(pr3); again != app {
		t.Error("a second Lookup of an open preview returned another app: wakes in flight would not be shared")
	}
	if _, err := app.Wake(ctx); slipway.ErrorCode(err) != slipway.ENOTFOUND || !strings.Contains(err.Error(), "no successful build yet") {
		t.Errorf("Wake while the preview builds = %v, want ENOTFOUND saying it has no build yet", err)
	}
	sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Commit: "p1", Status: slipway.StatusSucceeded, Image: "r/web:p1", Digest: "sha256:1"})
	built := sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Ref: slipway.PreviewRef(3), Commit: "c3", Status: slipway.StatusSucceeded, Image: "r/web:c3", Digest: "sha256:3", Preview: 3})
	sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Ref: slipway.PreviewRef(5), Commit: "c5", Status: slipway.StatusSucceeded, Image: "r/web:c5", Digest: "sha256:5", Preview: 5})
	sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Commit: "p2", Status: slipway.StatusSucceeded, Image: "r/web:p2", Digest: "sha256:2"})
	if got, err := app.(*projectApp).currentRelease(ctx); err != nil || got.ID != built.ID {
		t.Errorf("preview #3's release = %v, %v; want %s (its own build, not production's nor #5's)", got, err, built.ID)
	}
	// Pushed back to the head of an earlier build: that build serves,
	// though a later one exists.
	later := sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "web", Ref: slipway.PreviewRef(3), Commit: "c4", Status: slipway.StatusSucceeded, Image: "r/web:c4", Digest: "sha256:4", Preview: 3})
	if got, err := app.(*projectApp).currentRelease(ctx); err != nil || got.ID != later.ID {
		t.Errorf("preview #3's release with a newer build = %v, %v; want %s", got, err, later.ID)
	}
	if _, err := store.PutPreview(ctx, &slipway.Preview{Project: "web", Number: 3, HeadSHA: sha, Deployment: built.ID}); err != nil {
		t.Fatal(err)
	}
	if got, err := app.(*projectApp).currentRelease(ctx); err != nil || got.ID != built.ID {
		t.Errorf("preview #3's release, its head back at %s's commit = %v, %v; want %s", built.ID, got, err, built.ID)
	}
	if err := store.SetPreviewState(ctx, "web", 3, slipway.PreviewClosed); err != nil {
		t.Fatal(err)
	}
	if _, err := app.(*projectApp).currentRelease(ctx); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("a closed preview's release = %v, want ENOTFOUND", err)
	}
}

// The sweep writes a preview's last request to the store and removes a
// preview idle past the TTL (its record, and its unfinished builds are
// cancelled), counting from its last request, not its creation.
func TestPreviewSweep(t *testing.T) {
	store := sqlitetest.Open(t)
	log := slog.New(slog.DiscardHandler)
	dep := &sqlitetest.Deployer{Store: store}
	s := newPreviews(store, dep, time.Hour, log)
	ctx := t.Context()
	sqlitetest.AddProject(t, store, slipway.Project{Name: "web", Repo: "file:///nowhere", Branch: "main"})
	idle, _, err := s.OpenPreview(ctx, slipway.PreviewRequest{Project: "web", Number: 3, HeadSHA: strings.Repeat("a", 40)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.OpenPreview(ctx, slipway.PreviewRequest{Project: "web", Number: 6, HeadSHA: strings.Repeat("b", 40)}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.requested(gateway.Route{Project: "web", Preview: 6})
	s.seen["pr-6.web"].last.Store(now.Add(time.Hour).UnixNano()) // a request an hour from now

	s.sweep(ctx, now.Add(90*time.Minute))
	if _, err := store.Preview(ctx, "web", 3); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("preview #3, idle 90m past a TTL of 1h: %v, want it removed", err)
	}
	if d, _ := store.Deployment(ctx, idle.ID); d.Status != slipway.StatusCancelled {
		t.Errorf("the removed preview's build is %s, want cancelled", d.Status)
	}
	p6, err := store.Preview(ctx, "web", 6)
	if err != nil {
		t.Fatalf("preview #6, requested 30m before the sweep: %v, want it kept", err)
	}
	if p6.LastRequestAt == nil || !p6.LastRequestAt.Equal(time.Unix(0, now.Add(time.Hour).UnixNano())) {
		t.Errorf("preview #6's recorded last request = %v, want %v", p6.LastRequestAt, now.Add(time.Hour))
	}
	s.sweep(ctx, now.Add(3*time.Hour))
	if _, err := store.Preview(ctx, "web", 6); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("preview #6, idle 2h past its last request: %v, want it removed", err)
	}
}

// Stopping the server writes the last requests the sweep has not written
// yet: the TTL counts from them after a restart.
func TestPreviewsCloseWritesLastRequest(t *testing.T) {
	store := sqlitetest.Open(t)
	s := newPreviews(store, &sqlitetest.Deployer{Store: store}, time.Hour, slog.New(slog.DiscardHandler))
	sqlitetest.AddProject(t, store, slipway.Project{Name: "web", Repo: "file:///nowhere", Branch: "main"})
	if _, _, err := s.OpenPreview(t.Context(), slipway.PreviewRequest{Project: "web", Number: 2, HeadSHA: strings.Repeat("a", 40)}); err != nil {
		t.Fatal(err)
	}
	s.start(nil)
	before := time.Now()
	s.requested(gateway.Route{Project: "web", Preview: 2})
	s.close()
	s.close() // safe twice
	p, err := store.Preview(t.Context(), "web", 2)
	if err != nil || p.LastRequestAt == nil || p.LastRequestAt.Before(before) {
		t.Errorf("after close: %+v, %v; want the request at %v recorded", p, err, before)
	}
}
