package server

import (
	"regexp"
	"testing"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// The demo project is made by the project service, like one added through
// the API: the same defaults, a generated webhook secret and a creation
// time, and the same checks.
func TestDemoProjectLikeAnAPIProject(t *testing.T) {
	store := sqlitetest.Open(t)
	ctx := t.Context()
	repo := t.TempDir()
	if err := createDemoProject(ctx, store, repo); err != nil {
		t.Fatal(err)
	}
	demo, err := store.Project(ctx, demoProject)
	if err != nil {
		t.Fatal(err)
	}
	api, err := deploy.NewProjects(deploy.ProjectsConfig{Store: store}).Create(ctx, deploy.NewProject{Name: "api", Repo: "file://" + repo})
	if err != nil {
		t.Fatal(err)
	}
	if demo.Repo != api.Repo || demo.Branch != api.Branch || demo.Dockerfile != api.Dockerfile || demo.Context != api.Context {
		t.Errorf("demo project %+v, want the defaults of an API project %+v", demo, api)
	}
	if demo.CreatedAt.IsZero() || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(demo.WebhookSecret) {
		t.Errorf("demo project created at %v with webhook secret %q, want a time and 64 hex digits", demo.CreatedAt, demo.WebhookSecret)
	}
	// Again: the project exists and is kept as it is.
	if err := createDemoProject(ctx, store, repo); err != nil {
		t.Fatal(err)
	}
	if again, _ := store.Project(ctx, demoProject); again.WebhookSecret != demo.WebhookSecret {
		t.Errorf("a second set-up replaced the demo project")
	}
	// A repository the service refuses is refused for the demo too.
	other := sqlitetest.Open(t)
	if err := createDemoProject(ctx, other, repo+"\nx"); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("demo project on a bad repository = %v, want %s", err, slipway.EINVALID)
	}
}
