package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/graphql"
	"github.com/slipway-ci/slipway/sqlite"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// scriptedStore is the real store, where each read of a deployment with
// a script first moves it one step along it (through the store's own
// writes, see sqlitetest.Advance), so `deploy --wait` sees it progress
// without a running workflow.
type scriptedStore struct {
	*sqlite.DB
	mu      sync.Mutex
	scripts map[string][]slipway.Deployment
}

func (s *scriptedStore) Deployment(ctx context.Context, id string) (*slipway.Deployment, error) {
	s.mu.Lock()
	next := s.scripts[id]
	if len(next) > 0 {
		s.scripts[id] = next[1:]
	}
	s.mu.Unlock()
	if len(next) > 0 {
		if err := sqlitetest.Advance(ctx, s.DB, next[0]); err != nil {
			return nil, err
		}
	}
	return s.DB.Deployment(ctx, id)
}

// scriptedDeployer records deployments in the store and gives each new
// one the script of the test.
type scriptedDeployer struct {
	*sqlitetest.Deployer
	store  *scriptedStore
	script func(d slipway.Deployment) []slipway.Deployment
}

func (f *scriptedDeployer) Deploy(ctx context.Context, req slipway.DeployRequest) (*slipway.Deployment, slipway.DeployOutcome, error) {
	d, outcome, err := f.Deployer.Deploy(ctx, req)
	if outcome.Created() && f.script != nil {
		f.store.mu.Lock()
		f.store.scripts[d.ID] = f.script(*d)
		f.store.mu.Unlock()
	}
	return d, outcome, err
}

type testServer struct {
	url      string
	token    string // a valid API token
	store    *sqlite.DB
	deployer *scriptedDeployer
}

// newServer serves the real GraphQL API over a real store on a real
// socket, with a Deployer that records deployments without building them.
func newServer(t *testing.T) *testServer {
	t.Helper()
	db := sqlitetest.Open(t)
	store := &scriptedStore{DB: db, scripts: map[string][]slipway.Deployment{}}
	ts := &testServer{store: db, deployer: &scriptedDeployer{Deployer: &sqlitetest.Deployer{Store: db}, store: store}}
	var err error
	if ts.token, _, err = slipway.IssueToken(t.Context(), db, "test"); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.Handle("/graphql", graphql.NewHandler(graphql.Config{
		Store: store, Deployer: ts.deployer, Tokens: db, Secrets: db, PublicURL: srv.URL, Previews: db,
		PreviewURL:   func(project string, n int) string { return fmt.Sprintf("http://pr-%d.%s.localhost:8081", n, project) },
		PollInterval: 10 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}))
	ts.url = srv.URL
	return ts
}

// slipwayCmd runs the CLI against ts and returns its exit status and output.
func (ts *testServer) slipwayCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), append([]string{"--server", ts.url, "--token", ts.token}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func (ts *testServer) addProject(t *testing.T, name string) {
	t.Helper()
	if err := ts.store.CreateProject(t.Context(), &slipway.Project{Name: name, Repo: "file:///r", Branch: "main", Dockerfile: "Dockerfile", Context: "."}); err != nil {
		t.Fatal(err)
	}
}

var (
	shaA   = strings.Repeat("a", 40)
	shaB   = strings.Repeat("b", 40)
	digest = "sha256:" + strings.Repeat("0123456789", 6) + "abcd"
)

// seed adds project web with a succeeded and (newer) failed deployment.
func (ts *testServer) seed(t *testing.T) {
	t.Helper()
	ts.addProject(t, "web")
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	s1, f1 := t0.Add(time.Second), t0.Add(90*time.Second)
	sqlitetest.AddDeployment(t, ts.store, slipway.Deployment{ID: "d-ok", Project: "web", Ref: "refs/heads/main", Commit: shaA, Trigger: slipway.TriggerWebhook,
		Status: slipway.StatusSucceeded, Image: "127.0.0.1:8080/web:" + shaA, Digest: digest,
		Timings: map[string]int64{"queue": 12, "wake": 85, "fetch": 1200, "build": 80000, "push": 7703, "release": 480, "total": 89000},
		Steps: []slipway.BuildStep{
			{N: 1, Instruction: "STEP 1/3: FROM 127.0.0.1:8080/base/node:22", Cached: true, DurationMs: 4},
			{N: 2, Instruction: "STEP 2/3: RUN --mount=type=cache,target=/root/.npm npm ci", Cached: true, DurationMs: 310},
			{N: 3, Instruction: "STEP 3/3: RUN npm run build", DurationMs: 79500, Why: "follows step 2, which has no key"},
		},
		CreatedAt: t0, StartedAt: &s1, FinishedAt: &f1})
	t1 := t0.Add(30 * time.Minute)
	s2, f2 := t1.Add(time.Second), t1.Add(5*time.Second)
	sqlitetest.AddDeployment(t, ts.store, slipway.Deployment{ID: "d-bad", Project: "web", Ref: "refs/heads/main", Commit: shaB, Trigger: slipway.TriggerManual,
		Status: slipway.StatusFailed, Error: "RUN exit status 1\nmake: *** [all] Error 1", FailedStep: "STEP 2/3: RUN make",
		CreatedAt: t1, StartedAt: &s2, FinishedAt: &f2})
}

func TestDeploymentsJSON(t *testing.T) {
	ts := newServer(t)
	ts.seed(t)
	code, stdout, stderr := ts.slipwayCmd(t, "deployments", "web", "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not a JSON array: %v\n%s", err, stdout)
	}
	if len(got) != 2 {
		t.Fatalf("got %d deployments, want 2:\n%s", len(got), stdout)
	}
	for _, d := range got {
		for _, key := range []string{"id", "status", "commit", "image", "digest", "createdAt", "finishedAt",
			"ref", "trigger", "error", "failedStep", "timings", "steps", "startedAt", "durationMs"} {
			if _, ok := d[key]; !ok {
				t.Errorf("deployment %v has no key %q", d["id"], key)
			}
		}
	}
	bad, ok := got[0], got[1]
	if bad["id"] != "d-bad" || bad["status"] != "failed" || bad["failedStep"] != "STEP 2/3: RUN make" || bad["commit"] != shaB ||
		!strings.HasPrefix(bad["error"].(string), "RUN exit status 1") || bad["durationMs"] != float64(5000) {
		t.Errorf("failed deployment = %v", bad)
	}
	if ok["id"] != "d-ok" || ok["status"] != "succeeded" || ok["digest"] != digest || ok["image"] != "127.0.0.1:8080/web:"+shaA ||
		ok["error"] != nil || ok["durationMs"] != float64(89000) || ok["servingMs"] != float64(89000) || ok["timings"].(map[string]any)["build"] != float64(80000) {
		t.Errorf("succeeded deployment = %v", ok)
	}
	if steps := ok["steps"].([]any); len(steps) != 3 || steps[1].(map[string]any)["cached"] != true ||
		steps[2].(map[string]any)["durationMs"] != float64(79500) || steps[2].(map[string]any)["instruction"] != "STEP 3/3: RUN npm run build" {
		t.Errorf("succeeded deployment's steps = %v", ok["steps"])
	}
	if steps, isList := bad["steps"].([]any); !isList || len(steps) != 0 {
		t.Errorf("failed deployment's steps = %#v, want []", bad["steps"])
	}
	if _, err := time.Parse(time.RFC3339, ok["finishedAt"].(string)); err != nil {
		t.Errorf("finishedAt = %v: %v", ok["finishedAt"], err)
	}

	// A deployment still running has finishedAt null, not missing.
	sqlitetest.AddDeployment(t, ts.store, slipway.Deployment{ID: "d-new", Project: "web", Commit: shaA, Status: slipway.StatusBuilding})
	_, stdout, _ = ts.slipwayCmd(t, "deployments", "web", "--json")
	if !regexp.MustCompile(`"finishedAt": null`).MatchString(stdout) {
		t.Errorf("running deployment lacks finishedAt null:\n%s", stdout)
	}

	// No deployments is an empty array.
	ts.addProject(t, "empty")
	if _, stdout, _ = ts.slipwayCmd(t, "deployments", "empty", "--json"); strings.TrimSpace(stdout) != "[]" {
		t.Errorf("deployments of a new project = %q, want []", stdout)
	}
}

func TestDeploymentsTable(t *testing.T) {
	ts := newServer(t)
	ts.seed(t)
	code, stdout, stderr := ts.slipwayCmd(t, "deployments", "web")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^ID\s+STATUS\s+COMMIT\s+IMAGE\s+DIGEST\s+DURATION\s+SERVING\s+CREATED\s+PHASES$`),
		regexp.MustCompile(`^d-bad\s+failed\s+bbbbbbbbbbbb\s+-\s+-\s+5s\s+-\s+30m ago\s+-$`),
		regexp.MustCompile(`^    failed step: STEP 2/3: RUN make$`),
		regexp.MustCompile(`^    RUN exit status 1$`),
		regexp.MustCompile(`^    make: \*\*\* \[all\] Error 1$`),
		regexp.MustCompile(`^d-ok\s+succeeded\s+aaaaaaaaaaaa\s+127\.0\.0\.1:8080/web:a{40}\s+sha256:012345678901\s+1m29s\s+in 1m29s\s+(59m|1h) ago\s+` +
			`queue 12ms wake 85ms fetch 1\.2s build 1m20s \(2/3 cached\) push 7\.7s release 480ms$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d = %q, want match for %s", i, lines[i], re)
		}
	}
	// The columns line up across the detail lines.
	if strings.Index(lines[1], "bbbb") != strings.Index(lines[5], "aaaa") {
		t.Errorf("columns are not aligned:\n%s", stdout)
	}

	code, _, stderr = ts.slipwayCmd(t, "deployments", "nope")
	if code != 1 || stderr != "error: project \"nope\" not found (not_found)\n" {
		t.Errorf("deployments nope = exit %d, stderr %q", code, stderr)
	}
}

func TestDeploy(t *testing.T) {
	ts := newServer(t)
	ts.addProject(t, "web")
	code, stdout, stderr := ts.slipwayCmd(t, "deploy", "web", "--commit", shaA)
	if code != 0 || stdout != "d-1\n" {
		t.Fatalf("deploy = exit %d, stdout %q, stderr %q; want d-1", code, stdout, stderr)
	}
	if code, _, stderr = ts.slipwayCmd(t, "deploy", "web", "--ref", "dev"); code != 0 {
		t.Fatalf("deploy --ref = exit %d, stderr %q", code, stderr)
	}
	want := []slipway.DeployRequest{
		{Project: "web", Commit: shaA, Trigger: slipway.TriggerManual},
		{Project: "web", Ref: "dev", Trigger: slipway.TriggerManual},
	}
	if got := ts.deployer.Requests(); !slices.Equal(got, want) {
		t.Errorf("deploy requests = %+v, want %+v", got, want)
	}
}

func TestDeployWait(t *testing.T) {
	old := pollInterval
	pollInterval = 5 * time.Millisecond
	t.Cleanup(func() { pollInterval = old })

	finish := func(d slipway.Deployment, r slipway.DeploymentResult) slipway.Deployment {
		end := d.CreatedAt.Add(2500 * time.Millisecond)
		d.Status, d.Image, d.Digest, d.Error, d.FailedStep, d.Timings, d.FinishedAt = r.Status, r.Image, r.Digest, r.Error, r.FailedStep, r.Timings, &end
		return d
	}
	tests := []struct {
		name       string
		result     slipway.DeploymentResult
		wantCode   int
		wantLast   string
		wantStderr string
	}{
		{
			name:     "succeeded",
			result:   slipway.DeploymentResult{Status: slipway.StatusSucceeded, Image: "reg/web:" + shaA, Digest: digest, Timings: map[string]int64{"total": 2500}},
			wantCode: 0,
			wantLast: "deployment d-1 succeeded in 2.5s: reg/web:" + shaA + "@" + digest,
		},
		{
			name:       "failed",
			result:     slipway.DeploymentResult{Status: slipway.StatusFailed, Error: "exit status 1", FailedStep: "RUN false"},
			wantCode:   1,
			wantLast:   "deployment d-1 failed",
			wantStderr: "error: deployment d-1 failed at step \"RUN false\": exit status 1 (see 'slipway logs d-1')\n",
		},
		{
			name:       "superseded",
			result:     slipway.DeploymentResult{Status: slipway.StatusSuperseded},
			wantCode:   1,
			wantLast:   "deployment d-1 superseded",
			wantStderr: "error: deployment d-1 superseded (see 'slipway logs d-1')\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newServer(t)
			ts.addProject(t, "web")
			ts.deployer.script = func(d slipway.Deployment) []slipway.Deployment {
				queued := d
				building := d
				building.Status = slipway.StatusBuilding
				return []slipway.Deployment{queued, building, building, finish(building, tt.result)}
			}
			code, stdout, stderr := ts.slipwayCmd(t, "deploy", "web", "--wait")
			wantOut := "deployment d-1 queued\ndeployment d-1 building\n" + tt.wantLast + "\n"
			if code != tt.wantCode || stdout != wantOut || stderr != tt.wantStderr {
				t.Errorf("deploy --wait = exit %d\nstdout:\n%s\nstderr: %q\nwant exit %d\nstdout:\n%s\nstderr: %q", code, stdout, stderr, tt.wantCode, wantOut, tt.wantStderr)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	ts := newServer(t)
	ts.addProject(t, "web")
	tests := []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"deploy", "web", "--commit", "a", "--ref", "b"}, "[commit ref] were all set"},
		{[]string{"deploy"}, "takes 1 argument(s) (NAME), got 0"},
		{[]string{"deploy", "web", "--nope"}, "unknown flag: --nope"},
		{[]string{"project", "add", "x"}, `required flag(s) "repo" not set`},
		{[]string{"deployments", "web", "extra"}, "takes 1 argument(s)"},
		{[]string{"logs"}, "takes 1 argument(s) (DEPLOYMENT)"},
		{[]string{"deployment"}, "takes 1 argument(s) (ID)"},
		{[]string{"nosuchcommand"}, `unknown command "nosuchcommand"`},
		{[]string{"deployments", "web", "--limit", "-1"}, "--limit must not be negative"},
	}
	for _, tt := range tests {
		code, stdout, stderr := ts.slipwayCmd(t, tt.args...)
		if code != 2 || !strings.HasPrefix(stderr, "error: ") || !strings.Contains(stderr, tt.want) || stdout != "" {
			t.Errorf("slipway %s = exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
	if n := len(ts.deployer.Requests()); n != 0 {
		t.Errorf("usage errors reached the deployer %d times", n)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	ts := &testServer{url: url}
	code, _, stderr := ts.slipwayCmd(t, "deployments", "web")
	want := "error: cannot reach the Slipway server at " + url + ": is `slipway server` running? (set --server or SLIPWAY_SERVER)\n"
	if code != 1 || stderr != want {
		t.Errorf("deployments against a closed port = exit %d, stderr %q; want 1, %q", code, stderr, want)
	}

	// SLIPWAY_SERVER is the default for --server.
	t.Setenv("SLIPWAY_SERVER", url)
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"projects"}, &out, &errOut); code != 1 || errOut.String() != want {
		t.Errorf("projects with SLIPWAY_SERVER = exit %d, stderr %q; want 1, %q", code, errOut.String(), want)
	}
}

func TestProjectAdd(t *testing.T) {
	ts := newServer(t)
	code, stdout, stderr := ts.slipwayCmd(t, "project", "add", "web", "--repo", "file:///srv/web", "--webhook-secret", "s3cret", "--context", "app")
	if code != 0 {
		t.Fatalf("project add = exit %d, stderr %q", code, stderr)
	}
	p, err := ts.store.Project(t.Context(), "web")
	if err != nil || p.WebhookSecret != "s3cret" || p.Context != "app" || p.Dockerfile != "Dockerfile" {
		t.Errorf("stored project = %+v, %v", p, err)
	}
	// The project's own webhook URL, named by its hook id.
	hook := ts.url + "/webhooks/github/" + p.HookID
	for _, want := range []string{"Project web added.", "file:///srv/web", "branch:", "main", "context:", "app",
		"webhook URL:     " + hook, "webhook secret:  s3cret", "Payload URL to " + hook, "application/json", `"Just the push event"`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("project add output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = ts.slipwayCmd(t, "project", "show", "web")
	if code != 0 || !regexp.MustCompile(`\n  webhook URL: +`+regexp.QuoteMeta(hook)+`\n`).MatchString(stdout) {
		t.Errorf("project show = exit %d, want the webhook URL %s:\n%s", code, hook, stdout)
	}

	code, stdout, _ = ts.slipwayCmd(t, "project", "add", "api", "--repo", "https://example.com/api.git", "--json")
	var got struct {
		Project       map[string]any
		WebhookURL    string
		WebhookSecret string
	}
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("project add --json = exit %d, %v:\n%s", code, err, stdout)
	}
	api, err := ts.store.Project(t.Context(), "api")
	if err != nil {
		t.Fatal(err)
	}
	if got.Project["name"] != "api" || got.Project["branch"] != "main" || got.WebhookURL != ts.url+"/webhooks/github/"+api.HookID || len(got.WebhookSecret) != 64 {
		t.Errorf("project add --json = %+v", got)
	}

	code, _, stderr = ts.slipwayCmd(t, "project", "add", "api", "--repo", "https://example.com/api.git")
	if code != 1 || stderr != "error: project \"api\" already exists (conflict)\n" {
		t.Errorf("duplicate project add = exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = ts.slipwayCmd(t, "project", "add", "x", "--repo", "file:///r", "--dockerfile", "../Dockerfile")
	if code != 1 || !strings.HasPrefix(stderr, `error: invalid dockerfile "../Dockerfile"`) {
		t.Errorf("project add with a bad dockerfile = exit %d, stderr %q", code, stderr)
	}

	_, stdout, _ = ts.slipwayCmd(t, "projects")
	if !regexp.MustCompile(`(?m)^NAME\s+REPO\s+BRANCH\s+DOCKERFILE\s+CONTEXT\s+CREATED\n(.*\n)?web\s+file:///srv/web\s+main\s+Dockerfile\s+app\s+\ds ago$`).MatchString(stdout) {
		t.Errorf("projects =\n%s", stdout)
	}
	_, stdout, _ = ts.slipwayCmd(t, "projects", "--json")
	var ps []map[string]any
	if err := json.Unmarshal([]byte(stdout), &ps); err != nil || len(ps) != 2 || ps[0]["name"] != "api" || ps[1]["name"] != "web" {
		t.Errorf("projects --json = %v, %s", err, stdout)
	}
	if strings.Contains(stdout, "s3cret") {
		t.Errorf("projects --json shows a secret:\n%s", stdout)
	}
}

func TestLogs(t *testing.T) {
	ts := newServer(t)
	ts.seed(t)
	var want strings.Builder
	var lines []slipway.LogLine
	for n := range int64(2345) {
		text := fmt.Sprintf("line %d", n)
		lines = append(lines, slipway.LogLine{Deployment: "d-bad", N: n, Time: time.Now(), Stream: "stdout", Text: text})
		want.WriteString(text + "\n")
	}
	if err := ts.store.AppendLogLines(t.Context(), lines); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := ts.slipwayCmd(t, "logs", "d-bad")
	if code != 0 || stdout != want.String() {
		t.Errorf("logs = exit %d (stderr %q), %d bytes of stdout, want %d", code, stderr, len(stdout), want.Len())
	}
	code, _, stderr = ts.slipwayCmd(t, "logs", "d-404")
	if code != 1 || stderr != "error: deployment \"d-404\" not found (not_found)\n" {
		t.Errorf("logs d-404 = exit %d, stderr %q", code, stderr)
	}
}
