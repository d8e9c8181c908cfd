package graphql_test

import (
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// A repository URL's credentials are masked wherever the API shows the
// project, and so is a credential quoted in a deployment's error.
func TestRepoCredentialsMasked(t *testing.T) {
	e := newEnv(t, nil)
	const token = "ghp_SuperSecretToken123"
	repo := "https://ci-bot:" + token + "@git.example.com/acme/web.git"
	var added addProjectData
	e.do(t, addProject, map[string]any{"in": map[string]any{"name": "web", "repo": repo}}).ok(t, &added)
	if got, want := added.AddProject.Project.Repo, "https://ci-bot:[redacted]@git.example.com/acme/web.git"; got != want {
		t.Errorf("addProject repo = %q, want %q", got, want)
	}
	ctx := t.Context()
	d := &slipway.Deployment{ID: "d-1", Project: "web", Ref: "refs/heads/main", Commit: strings.Repeat("a", 40), Status: slipway.StatusQueued, CreatedAt: time.Now()}
	if _, _, err := e.store.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	// Stored unredacted, as a deployment finished by an older version.
	if err := e.store.FinishDeployment(ctx, "d-1", slipway.DeploymentResult{Status: slipway.StatusFailed,
		Error: "fetch failed: fatal: unable to access '" + repo + "': 403\nAuthorization: Basic Y2ktYm90OmdocF9TdXBlclNlY3JldFRva2VuMTIz"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := e.do(t, `{ projects { repo } project(name: "web") { repo deployments { error } } deployment(id: "d-1") { error } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %s", r.raw)
	}
	if strings.Contains(r.raw, token) || strings.Contains(r.raw, "Y2ktYm90OmdocF9TdXBlclNlY3JldFRva2VuMTIz") || strings.Count(r.raw, "[redacted]") != 6 {
		t.Errorf("the token shows, or not every place is masked: %s", r.raw)
	}
}
