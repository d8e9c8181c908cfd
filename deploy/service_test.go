package deploy

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite"
)

func TestRollbackTarget(t *testing.T) {
	sha := func(c byte) string { return strings.Repeat(string(c), 40) }
	ok := func(id string, c byte, digest string) *slipway.Deployment {
		return &slipway.Deployment{ID: id, Commit: sha(c), Status: slipway.StatusSucceeded, Image: "r/app:" + sha(c), Digest: digest}
	}
	failed := &slipway.Deployment{ID: "d-5", Commit: sha('e'), Status: slipway.StatusFailed}
	preview := ok("d-6", 'f', "sha256:6")
	preview.Preview = 3
	// Newest first, as the store lists them.
	ds := []*slipway.Deployment{preview, failed, ok("d-4", 'd', "sha256:4"), ok("d-3", 'd', "sha256:4"), ok("d-2", 'b', "sha256:2"), ok("d-1", 'a', "sha256:1")}
	for _, tc := range []struct {
		to      string
		want    string
		errCode string
	}{
		{to: "", want: "d-2"}, // the latest image is d-4's (= d-3's): the one before is d-2's
		{to: "d-1", want: "d-1"},
		{to: "aaaaaaa", want: "d-1"},
		{to: sha('b'), want: "d-2"},
		{to: "DDDDDDD", want: "d-4"},
		{to: "d-5", errCode: slipway.EINVALID},
		{to: "d-6", errCode: slipway.EINVALID}, // a pull request's preview
		{to: "fffffff", errCode: slipway.ENOTFOUND},
		{to: "eeeeeee", errCode: slipway.ENOTFOUND},
		{to: "d-9", errCode: slipway.ENOTFOUND},
		{to: "abc", errCode: slipway.ENOTFOUND},
	} {
		got, err := rollbackTarget(ds, tc.to, "")
		if tc.errCode != "" {
			if slipway.ErrorCode(err) != tc.errCode {
				t.Errorf("rollbackTarget(%q) = %v, %v; want error %s", tc.to, got, err, tc.errCode)
			}
			continue
		}
		if err != nil || got.ID != tc.want {
			t.Errorf("rollbackTarget(%q) = %v, %v; want %s", tc.to, got, err, tc.want)
		}
	}
	if _, err := rollbackTarget([]*slipway.Deployment{ok("d-1", 'a', "sha256:1")}, "", ""); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("rollback with a single successful deployment = %v, want not found", err)
	}
	// After a rollback to d-2 (the current release), the next one goes
	// further back, not forward to d-4.
	if got, err := rollbackTarget(ds, "", "d-2"); err != nil || got.ID != "d-1" {
		t.Errorf("rollback from the current release d-2 = %v, %v; want d-1", got, err)
	}
	if got, err := rollbackTarget(ds, "", "d-9"); err != nil || got.ID != "d-2" {
		t.Errorf("rollback with an unknown current release = %v, %v; want d-2 (from the latest)", got, err)
	}
}

// A webhook delivery for a commit the project already deployed from a
// webhook (a replay under a new delivery id) creates nothing new.
func TestWebhookReplayOfKnownCommit(t *testing.T) {
	store := storeWithApp(t)
	ctx := t.Context()
	sha := strings.Repeat("a", 40)
	first := &slipway.Deployment{Project: "app", Ref: "refs/heads/main", Commit: sha, Trigger: slipway.TriggerWebhook, DeliveryID: "one"}
	if _, _, err := store.CreateDeployment(ctx, first); err != nil {
		t.Fatal(err)
	}
	// No Temporal client: reaching it would panic, so the test also proves
	// nothing was started.
	svc := NewService(ServiceConfig{Store: store, Registry: "reg"})
	d, outcome, err := svc.Deploy(ctx, slipway.DeployRequest{Project: "app", Ref: "refs/heads/main", Commit: sha, Trigger: slipway.TriggerWebhook, DeliveryID: "two"})
	if err != nil || outcome != slipway.DeployReplayed || d.ID != first.ID {
		t.Fatalf("replayed delivery = %v, %s, %v; want the first deployment %s, %s", d, outcome, err, first.ID, slipway.DeployReplayed)
	}
	if ds, _ := store.Deployments(ctx, "app", 0); len(ds) != 1 {
		t.Errorf("%d deployments after a replay, want 1", len(ds))
	}
}

// storeWithApp is a new store holding project app (branch main), closed
// when the test ends.
func storeWithApp(t *testing.T) *sqlite.DB {
	t.Helper()
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.CreateProject(t.Context(), &slipway.Project{Name: "app", Repo: "file:///r", Branch: "main", Dockerfile: "Dockerfile", Context: "."}); err != nil {
		t.Fatal(err)
	}
	return store
}

func TestCheckPreview(t *testing.T) {
	for _, tc := range []struct {
		n    int
		ref  string
		want string
	}{
		{0, "refs/heads/main", ""},
		{0, "main", ""},
		{4, "refs/pull/4/head", ""},
		{4, "refs/pull/5/head", slipway.EINVALID},
		{4, "refs/heads/main", slipway.EINVALID},
		{0, "refs/pull/4/head", slipway.EINVALID},
		{-1, "main", slipway.EINVALID},
	} {
		if got := slipway.ErrorCode(checkPreview(tc.n, tc.ref)); got != tc.want {
			t.Errorf("checkPreview(%d, %q) = %q, want %q", tc.n, tc.ref, got, tc.want)
		}
	}
}

// A deployment's workflow input names the project's build secrets, but a
// pull request's preview gets none: its Dockerfile is the pull request's.
func TestInputSecrets(t *testing.T) {
	store := storeWithApp(t)
	ctx := t.Context()
	if _, err := store.SetSecret(ctx, "app", "NPM_TOKEN", []byte("s3cret-value")); err != nil {
		t.Fatal(err)
	}
	p, err := store.Project(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(ServiceConfig{Store: store, Secrets: store, Registry: "reg"})
	sha := strings.Repeat("a", 40)
	prod, err := svc.input(ctx, p, &slipway.Deployment{ID: "d-1", Project: "app", Ref: "refs/heads/main", Commit: sha}, nil)
	if err != nil || len(prod.Secrets) != 1 || prod.Secrets[0] != "NPM_TOKEN" || prod.SecretsToken == "" {
		t.Errorf("production input = secrets %v token %q, %v; want NPM_TOKEN and a token", prod.Secrets, prod.SecretsToken, err)
	}
	pr, err := svc.input(ctx, p, &slipway.Deployment{ID: "d-2", Project: "app", Ref: slipway.PreviewRef(4), Commit: sha, Preview: 4}, nil)
	if err != nil || len(pr.Secrets) != 0 || pr.SecretsToken != "" || pr.Preview != 4 || pr.Ref != "refs/pull/4/head" {
		t.Errorf("preview input = secrets %v token %q preview %d ref %s, %v; want no secrets, preview 4 of refs/pull/4/head", pr.Secrets, pr.SecretsToken, pr.Preview, pr.Ref, err)
	}
}
