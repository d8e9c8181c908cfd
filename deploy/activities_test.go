package deploy

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite"
)

// A deployment's error is stored with the project's secrets masked: the
// credentials of its repository URL, in every form.
func TestFinishDeploymentRedactsError(t *testing.T) {
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	const token = "tok3n-Value/With+Chars"
	if err := store.CreateProject(ctx, &slipway.Project{Name: "app", Repo: "https://bot:tok3n-Value%2FWith+Chars@git.example.com/a.git", Branch: "main", Dockerfile: "Dockerfile", Context: "."}); err != nil {
		t.Fatal(err)
	}
	d := &slipway.Deployment{Project: "app", Ref: "main", Commit: strings.Repeat("a", 40)}
	if _, _, err := store.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
	acts := &ControlActivities{Store: store}
	msg := "build failed at STEP 2/2: RUN curl\ncurl -u bot:" + token + " https://bot:tok3n-Value%2FWith+Chars@git.example.com/"
	if err := acts.FinishDeployment(ctx, FinishInput{DeploymentID: d.ID, Result: slipway.DeploymentResult{Status: slipway.StatusFailed, Error: msg}}); err != nil {
		t.Fatal(err)
	}
	got, err := store.Deployment(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := "build failed at STEP 2/2: RUN curl\ncurl -u bot:[redacted] https://bot:[redacted]@git.example.com/"
	if got.Error != want {
		t.Errorf("stored error = %q, want %q", got.Error, want)
	}
}
