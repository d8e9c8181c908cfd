package client_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/client"
	"github.com/slipway-ci/slipway/graphql"
	"github.com/slipway-ci/slipway/sqlite"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

func newServer(t *testing.T) (*client.Client, *sqlite.DB, string) {
	t.Helper()
	return newServerWith(t, nil)
}

// newServerWith serves the real API over a real store (with a Deployer
// that records deployments without building them) on a real socket, with
// wrap around its handler if not nil, and returns a client with a valid
// token, the store and the server's URL.
func newServerWith(t *testing.T, wrap func(http.Handler) http.Handler) (*client.Client, *sqlite.DB, string) {
	t.Helper()
	store := sqlitetest.Open(t)
	token, _, err := slipway.IssueToken(t.Context(), store, "test")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	var h http.Handler = graphql.NewHandler(graphql.Config{
		Store: store, Deployer: &sqlitetest.Deployer{Store: store}, Tokens: store, PublicURL: srv.URL,
		PollInterval: 20 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if wrap != nil {
		h = wrap(h)
	}
	mux.Handle("/graphql", h)
	return client.New(srv.URL+"/", srv.Client()).WithToken(token), store, srv.URL
}

// addWeb stores project web.
func addWeb(t *testing.T, store slipway.Store) {
	t.Helper()
	sqlitetest.AddProject(t, store, slipway.Project{Name: "web", Repo: "file:///r", Branch: "main", Dockerfile: "Dockerfile", Context: "."})
}

func TestProjects(t *testing.T) {
	c, _, url := newServer(t)
	ctx := t.Context()
	res, err := c.AddProject(ctx, client.AddProjectInput{Name: "web", Repo: "file:///r", Context: "app"})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Project
	if p.Name != "web" || p.Repo != "file:///r" || p.Branch != "main" || p.Dockerfile != "Dockerfile" || p.Context != "app" || p.CreatedAt.IsZero() {
		t.Errorf("AddProject project = %+v", p)
	}
	if !strings.HasPrefix(res.WebhookURL, url+"/webhooks/github/") || len(res.WebhookSecret) != 64 || p.WebhookSecret != res.WebhookSecret {
		t.Errorf("AddProject = %+v", res)
	}
	if v, err := c.ProjectView(ctx, "web"); err != nil || v.Name != "web" || v.WebhookURL != res.WebhookURL {
		t.Errorf("ProjectView(web) = %+v, %v; want webhook URL %s", v, err, res.WebhookURL)
	}

	_, err = c.AddProject(ctx, client.AddProjectInput{Name: "web", Repo: "file:///r"})
	if slipway.ErrorCode(err) != slipway.ECONFLICT || err.Error() != `project "web" already exists (conflict)` {
		t.Errorf("duplicate AddProject error = %v (code %q), want conflict", err, slipway.ErrorCode(err))
	}
	_, err = c.AddProject(ctx, client.AddProjectInput{Name: "Bad Name", Repo: "file:///r"})
	if slipway.ErrorCode(err) != slipway.EINVALID || !strings.HasPrefix(slipway.ErrorMessage(err), "invalid project name") {
		t.Errorf("invalid AddProject error = %v, want invalid", err)
	}

	ps, err := c.Projects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Name != "web" || ps[0].Context != "app" || ps[0].WebhookSecret != "" {
		t.Errorf("Projects = %+v", ps)
	}
}

func TestDeployments(t *testing.T) {
	c, store, _ := newServer(t)
	ctx := t.Context()
	if _, err := c.AddProject(ctx, client.AddProjectInput{Name: "web", Repo: "file:///r"}); err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("c", 40)
	d, err := c.Deploy(ctx, client.DeployInput{Project: "web", Commit: sha})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID == "" || d.Status != slipway.StatusQueued || d.Commit != sha || d.Trigger != slipway.TriggerManual {
		t.Errorf("Deploy = %+v", d)
	}
	if _, err := c.Deploy(ctx, client.DeployInput{Project: "nope"}); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("Deploy(nope) error = %v, want not_found", err)
	}

	// Created after d, so listed first.
	start := time.Now().UTC().Add(time.Second).Truncate(time.Millisecond)
	end := start.Add(time.Second)
	sqlitetest.AddDeployment(t, store, slipway.Deployment{ID: "d-failed", Project: "web", Ref: "refs/heads/main", Commit: sha, Trigger: slipway.TriggerWebhook,
		Status: slipway.StatusFailed, Error: "exit 1", FailedStep: "RUN false", Timings: map[string]int64{"build": 5, "total": 9},
		Steps:     []slipway.BuildStep{{N: 1, Instruction: "STEP 1/2: FROM base", Cached: true, DurationMs: 2}, {N: 2, Instruction: "STEP 2/2: RUN false", DurationMs: 3}},
		CreatedAt: start, StartedAt: &start, FinishedAt: &end})

	ds, err := c.Deployments(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].ID != "d-failed" || ds[1].ID != d.ID {
		t.Fatalf("Deployments = %+v, want d-failed then %s", ds, d.ID)
	}
	f := ds[0]
	if f.Status != slipway.StatusFailed || f.Error != "exit 1" || f.FailedStep != "RUN false" || f.Timings["build"] != 5 || f.Timings["total"] != 9 ||
		!f.StartedAt.Equal(start) || !f.FinishedAt.Equal(end) || f.Trigger != slipway.TriggerWebhook || f.Ref != "refs/heads/main" {
		t.Errorf("failed deployment = %+v", f)
	}
	if len(f.Steps) != 2 || f.Steps[0] != (slipway.BuildStep{N: 1, Instruction: "STEP 1/2: FROM base", Cached: true, DurationMs: 2}) || f.Steps[1].Cached {
		t.Errorf("failed deployment's steps = %+v", f.Steps)
	}
	if ds[1].Steps != nil && len(ds[1].Steps) != 0 {
		t.Errorf("queued deployment's steps = %+v, want none", ds[1].Steps)
	}
	if ds, err := c.Deployments(ctx, "web", 1); err != nil || len(ds) != 1 {
		t.Errorf("Deployments(first 1) = %d, %v", len(ds), err)
	}
	if _, err := c.Deployments(ctx, "nope", 0); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("Deployments(nope) error = %v, want not_found", err)
	}

	got, err := c.Deployment(ctx, "d-failed")
	if err != nil || got.Status != slipway.StatusFailed {
		t.Errorf("Deployment(d-failed) = %+v, %v", got, err)
	}
	if _, err := c.Deployment(ctx, "d-404"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("Deployment(d-404) error = %v, want not_found", err)
	}
}

func TestMachines(t *testing.T) {
	c, store, _ := newServer(t)
	ctx := t.Context()
	if ms, err := c.Machines(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("Machines with none = %+v, %v", ms, err)
	}
	woke := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := []*slipway.Machine{
		{Project: "api", Provider: "process", State: slipway.MachineFailed, VolumeDir: "/v/api", VolumeBytes: 6 << 30,
			LastWokeAt: &woke, LastSleptAt: &woke, Error: "agent exited with status 1", UpdatedAt: woke},
		{Project: "web", Provider: "process", State: slipway.MachineBuilding, PID: 77, VolumeDir: "/v/web",
			LastWokeAt: &woke, LastWakeMs: 95, UpdatedAt: woke},
	}
	for _, m := range want {
		sqlitetest.AddProject(t, store, slipway.Project{Name: m.Project})
		if err := store.UpsertMachine(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Machines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Machines = %+v, want %+v", got, want)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("machine %d = %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestLogs(t *testing.T) {
	c, store, _ := newServer(t)
	ctx := t.Context()
	addWeb(t, store)
	sqlitetest.AddDeployment(t, store, slipway.Deployment{ID: "d-1", Project: "web", Status: slipway.StatusSucceeded})
	var lines []slipway.LogLine
	for n := range int64(5) {
		l := slipway.LogLine{Deployment: "d-1", N: n, Time: time.Now().UTC(), Stream: "stdout", Text: fmt.Sprintf("line %d", n)}
		if n == 3 {
			l.Step = "STEP 2/2"
		}
		lines = append(lines, l)
	}
	if err := store.AppendLogLines(ctx, lines); err != nil {
		t.Fatal(err)
	}
	page, err := c.Logs(ctx, "d-1", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].N != 2 || page[1].N != 3 || page[1].Text != "line 3" || page[1].Step != "STEP 2/2" || page[0].Step != "" || page[0].Deployment != "d-1" {
		t.Errorf("Logs(from 2, first 2) = %+v", page)
	}
	all, err := c.Logs(ctx, "d-1", 0, 0)
	if err != nil || len(all) != 5 {
		t.Errorf("Logs(all) = %d lines, %v; want 5", len(all), err)
	}
	if _, err := c.Logs(ctx, "d-404", 0, 0); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("Logs(d-404) error = %v, want not_found", err)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	_, err = client.New(url, nil).Projects(t.Context())
	want := "cannot reach the Slipway server at " + url + ": is `slipway server` running? (set --server or SLIPWAY_SERVER)"
	if err == nil || err.Error() != want {
		t.Errorf("Projects on a closed port: %v\nwant: %s", err, want)
	}
}

func TestNotSlipway(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	_, err := client.New(srv.URL, nil).Projects(t.Context())
	if err == nil || !strings.Contains(err.Error(), "unexpected answer from the Slipway server at "+srv.URL+": HTTP 404") {
		t.Errorf("Projects against a 404 server: %v", err)
	}
}
