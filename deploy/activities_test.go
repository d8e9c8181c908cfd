package deploy

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
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

// fakeReleaser stands in for the app host.
type fakeReleaser struct{ err error }

func (f fakeReleaser) Release(ctx context.Context, in ReleaseInput, record func(context.Context) error) error {
	if f.err != nil {
		return f.err
	}
	return record(ctx)
}

// The Release activity records the project's current release once the
// app host took it; an unhealthy app is a non-retryable failure with its
// output, and nothing is recorded.
func TestReleaseActivity(t *testing.T) {
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	if err := store.CreateProject(ctx, &slipway.Project{Name: "app", Repo: "file:///r", Branch: "main", Dockerfile: "Dockerfile", Context: "."}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		d := &slipway.Deployment{Project: "app", Ref: "main", Commit: strings.Repeat("a", 40)}
		if _, _, err := store.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	release := func(acts *ControlActivities, id string) error {
		return acts.Release(ctx, ReleaseInput{Project: "app", DeploymentID: id, Image: "reg/app:x"})
	}
	current := func() string {
		p, err := store.Project(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		return p.Release
	}
	if err := release(&ControlActivities{Store: store}, ids[0]); err != nil || current() != ids[0] {
		t.Fatalf("without apps: %v, release %q; want %s recorded", err, current(), ids[0])
	}
	if err := release(&ControlActivities{Store: store, Apps: fakeReleaser{}}, ids[1]); err != nil || current() != ids[1] {
		t.Fatalf("with apps: %v, release %q; want %s recorded", err, current(), ids[1])
	}
	unhealthy := &ReleaseFailure{Message: "the new release did not become healthy: it exited with status 3", Output: []string{"panic: boom"}}
	err = release(&ControlActivities{Store: store, Apps: fakeReleaser{err: unhealthy}}, ids[2])
	var appErr *temporal.ApplicationError
	var details builder.FailureDetails
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || appErr.Details(&details) != nil || details.Step != "release" || len(details.Tail) != 1 {
		t.Fatalf("unhealthy: %v (details %+v), want a non-retryable failure at release with the output", err, details)
	}
	if current() != ids[1] {
		t.Errorf("after a failed release the current release is %q, want %s kept", current(), ids[1])
	}
}
