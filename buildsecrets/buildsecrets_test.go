package buildsecrets_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/buildsecrets"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/sqlite"
)

// The server hands a project's secrets to the agent of one of its
// deployments while it builds, with the deployment's token; to nobody else.
func TestFetch(t *testing.T) {
	url, db, building, queued, others := setUp(t)
	ctx := t.Context()
	token := func(d string) string { tok, _ := db.BuildToken(d); return tok }

	vals, err := buildsecrets.Fetch(ctx, url, "app", building, token(building))
	if err != nil || len(vals) != 1 || vals[0].Name != "token" || string(vals[0].Value) != "the-value-42" || vals[0].Digest == "" {
		t.Fatalf("Fetch = %+v, %v", vals, err)
	}
	for name, tc := range map[string]struct{ project, deployment, token, want string }{
		"wrong token":        {"app", building, token(queued), "wrong build token"},
		"no token":           {"app", building, "", "wrong build token"},
		"not building":       {"app", queued, token(queued), "not building"},
		"another project's":  {"app", others, token(others), "is not one of app's"},
		"unknown deployment": {"app", "d-nope", token("d-nope"), "not found"},
	} {
		_, err := buildsecrets.Fetch(ctx, url, tc.project, tc.deployment, tc.token)
		if !errors.Is(err, buildsecrets.ErrRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Fetch = %v; want a refusal with %q", name, err, tc.want)
		}
	}
}

// Without a server answering, Fetch fails with an error a retry may fix.
func TestFetchNoServer(t *testing.T) {
	dir := t.TempDir()
	ns := logtest.StartServer(t, natsserver.Config{StoreDir: filepath.Join(dir, "nats")})
	if _, err := buildsecrets.Fetch(t.Context(), ns.URL(), "app", "d-1", "x"); err == nil || errors.Is(err, buildsecrets.ErrRefused) {
		t.Errorf("Fetch with no server answering = %v; want a retryable error", err)
	}
}

// What fetching the secrets costs each build phase: connect, ask, answer
// (token check, store reads, decryption), on loopback.
func BenchmarkFetch(b *testing.B) {
	url, db, building, _, _ := setUp(b)
	token, _ := db.BuildToken(building)
	for b.Loop() {
		if _, err := buildsecrets.Fetch(b.Context(), url, "app", building, token); err != nil {
			b.Fatal(err)
		}
	}
}

// setUp serves secrets from a store with projects app (with one secret)
// and other, and deployments of app building and queued and of other
// building.
func setUp(t testing.TB) (url string, db *sqlite.DB, building, queued, others string) {
	dir := t.TempDir()
	ns := logtest.StartServer(t, natsserver.Config{StoreDir: filepath.Join(dir, "nats")})
	db, err := sqlite.Open(filepath.Join(dir, "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	for _, p := range []string{"app", "other"} {
		if err := db.CreateProject(ctx, &slipway.Project{Name: p, Repo: "file:///r", Branch: "main"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SetSecret(ctx, "app", "token", []byte("the-value-42")); err != nil {
		t.Fatal(err)
	}
	deploy := func(project string, building bool) string {
		d := &slipway.Deployment{Project: project, Ref: "main", Commit: strings.Repeat("a", 40)}
		if _, _, err := db.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
		if building {
			if err := db.MarkBuilding(ctx, d.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		return d.ID
	}
	building, queued, others = deploy("app", true), deploy("app", false), deploy("other", true)
	srv, err := buildsecrets.Serve(buildsecrets.ServerConfig{URL: ns.URL(), Store: db, Secrets: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return ns.URL(), db, building, queued, others
}
