package deploy_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

func ptr(s string) *string { return &s }

// Create fills in the defaults, generates a webhook secret and stamps the
// project, whoever calls it.
func TestProjectsCreateDefaults(t *testing.T) {
	store := sqlitetest.Open(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := deploy.NewProjects(deploy.ProjectsConfig{Store: store, Now: func() time.Time { return now }})
	p, err := s.Create(t.Context(), deploy.NewProject{Name: "app", Repo: "https://example.com/app.git"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Branch != "main" || p.Dockerfile != "Dockerfile" || p.Context != "." || !p.CreatedAt.Equal(now) {
		t.Errorf("Create = %+v, want branch main, Dockerfile, context . and created at %v", p, now)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.WebhookSecret) {
		t.Errorf("generated webhook secret %q, want 64 hex digits", p.WebhookSecret)
	}
	stored, err := store.Project(t.Context(), "app")
	if err != nil || stored.WebhookSecret != p.WebhookSecret || stored.Branch != "main" {
		t.Errorf("stored project = %+v, %v", stored, err)
	}
	other, err := s.Create(t.Context(), deploy.NewProject{Name: "app2", Repo: "https://example.com/app.git", WebhookSecret: "given secret"})
	if err != nil || other.WebhookSecret != "given secret" {
		t.Errorf("Create with a webhook secret = %+v, %v", other, err)
	}
	if _, err := s.Create(t.Context(), deploy.NewProject{Name: "app", Repo: "https://example.com/app.git"}); slipway.ErrorCode(err) != slipway.ECONFLICT {
		t.Errorf("Create of a taken name = %v, want %s", err, slipway.ECONFLICT)
	}
}

// Every field is checked before anything is stored.
func TestProjectsCreateValidates(t *testing.T) {
	ok := deploy.NewProject{Name: "app", Repo: "https://example.com/app.git"}
	for _, tc := range []struct {
		name   string
		change func(*deploy.NewProject)
		code   string
	}{
		{"name", func(np *deploy.NewProject) { np.Name = "App!" }, slipway.EINVALID},
		{"repo", func(np *deploy.NewProject) { np.Repo = "ftp://example.com/x" }, slipway.EINVALID},
		{"branch", func(np *deploy.NewProject) { np.Branch = "a..b" }, slipway.EINVALID},
		{"dockerfile", func(np *deploy.NewProject) { np.Dockerfile = "../Dockerfile" }, slipway.EINVALID},
		{"context", func(np *deploy.NewProject) { np.Context = "/abs" }, slipway.EINVALID},
		{"webhook secret", func(np *deploy.NewProject) { np.WebhookSecret = " padded" }, slipway.EINVALID},
		{"log age", func(np *deploy.NewProject) { np.MaxLogAge = ptr("soon") }, slipway.EINVALID},
		{"build arg", func(np *deploy.NewProject) { np.BuildArgs = []slipway.BuildArg{{Name: "1X", Value: "v"}} }, slipway.EINVALID},
		{"build arg twice", func(np *deploy.NewProject) {
			np.BuildArgs = []slipway.BuildArg{{Name: "X", Value: "1"}, {Name: "X", Value: "2"}}
		}, slipway.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := sqlitetest.Open(t)
			np := ok
			tc.change(&np)
			_, err := deploy.NewProjects(deploy.ProjectsConfig{Store: store}).Create(t.Context(), np)
			if slipway.ErrorCode(err) != tc.code {
				t.Errorf("Create(%+v) = %v, want %s", np, err, tc.code)
			}
			if ps, _ := store.Projects(t.Context()); len(ps) != 0 {
				t.Errorf("a refused project was stored: %+v", ps[0])
			}
		})
	}
}

// Deletion refuses a project with a deployment that has not ended and
// removes one whose deployments all ended.
func TestProjectsDelete(t *testing.T) {
	store := sqlitetest.Open(t)
	s := deploy.NewProjects(deploy.ProjectsConfig{Store: store})
	sqlitetest.AddProject(t, store, slipway.Project{Name: "app", Repo: "file:///r", Branch: "main"})
	sha := strings.Repeat("a", 40)
	d := sqlitetest.AddDeployment(t, store, slipway.Deployment{Project: "app", Ref: "main", Commit: sha, Status: slipway.StatusBuilding})
	if _, err := s.Delete(t.Context(), "app"); slipway.ErrorCode(err) != slipway.ECONFLICT || !strings.Contains(slipway.ErrorMessage(err), d.ID) {
		t.Fatalf("Delete with a building deployment = %v, want %s naming %s", err, slipway.ECONFLICT, d.ID)
	}
	d.Status = slipway.StatusSucceeded
	if err := sqlitetest.Advance(t.Context(), store, *d); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Delete(t.Context(), "app"); err != nil || n != 1 {
		t.Fatalf("Delete = %d, %v; want 1 deployment removed", n, err)
	}
	if _, err := store.Project(t.Context(), "app"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("project after Delete: %v, want %s", err, slipway.ENOTFOUND)
	}
	if _, err := s.Delete(t.Context(), "app"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("Delete of an unknown project = %v, want %s", err, slipway.ENOTFOUND)
	}
}

// Build secrets need a secret store; names and values are checked.
func TestProjectsSecrets(t *testing.T) {
	store := sqlitetest.Open(t)
	sqlitetest.AddProject(t, store, slipway.Project{Name: "app", Repo: "file:///r", Branch: "main"})
	if _, err := deploy.NewProjects(deploy.ProjectsConfig{Store: store}).SetSecret(t.Context(), "app", "tok", []byte("value")); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("SetSecret without a secret store = %v, want %s", err, slipway.EINVALID)
	}
	s := deploy.NewProjects(deploy.ProjectsConfig{Store: store, Secrets: store})
	if _, err := s.SetSecret(t.Context(), "app", "a,b", []byte("value")); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("SetSecret with a bad name = %v, want %s", err, slipway.EINVALID)
	}
	if _, err := s.SetSecret(t.Context(), "app", "tok", []byte("abc")); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("SetSecret with a short value = %v, want %s", err, slipway.EINVALID)
	}
	if _, err := s.SetSecret(t.Context(), "app", "tok", []byte("value")); err != nil {
		t.Fatal(err)
	}
	if list, err := s.Secrets(t.Context(), "app"); err != nil || len(list) != 1 || list[0].Name != "tok" {
		t.Errorf("Secrets = %v, %v", list, err)
	}
}

// A stored error that quotes the repository's credentials is shown
// masked.
func TestProjectsDeploymentError(t *testing.T) {
	store := sqlitetest.Open(t)
	sqlitetest.AddProject(t, store, slipway.Project{Name: "app", Repo: "https://user:hunter22@example.com/app.git", Branch: "main"})
	d := &slipway.Deployment{ID: "d-1", Project: "app", Error: "fetch https://user:hunter22@example.com/app.git: denied"}
	got, err := deploy.NewProjects(deploy.ProjectsConfig{Store: store}).DeploymentError(t.Context(), d)
	if err != nil || strings.Contains(got, "hunter22") || !strings.Contains(got, "denied") {
		t.Errorf("DeploymentError = %q, %v; want the password masked", got, err)
	}
}
