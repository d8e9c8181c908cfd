package graphql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/graphql"
	"github.com/slipway-ci/slipway/sqlite"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type response struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
	raw    string
}

type env struct {
	url      string
	token    string     // an API token the server knows
	store    *sqlite.DB // also the token store
	deployer *sqlitetest.Deployer
	machines *fakeMachines
	logs     *bytes.Buffer
}

// newEnv serves the API over a real store on a real socket, with a
// Deployer that records deployments without building them.
func newEnv(t *testing.T, wrap func(slipway.Store) slipway.Store) *env {
	t.Helper()
	return newEnvWith(t, func(c *graphql.Config) {
		if wrap != nil {
			c.Store = wrap(c.Store)
		}
	})
}

// graphqlConfig is the API's configuration, for newEnvWith's callers.
type graphqlConfig = graphql.Config

// newEnvWith is newEnv with a last say on the configuration.
func newEnvWith(t *testing.T, configure func(*graphql.Config)) *env {
	t.Helper()
	store := sqlitetest.Open(t)
	e := &env{store: store, deployer: &sqlitetest.Deployer{Store: store}, machines: &fakeMachines{store: store}, logs: &bytes.Buffer{}}
	token, _, err := slipway.IssueToken(t.Context(), store, "test")
	if err != nil {
		t.Fatal(err)
	}
	e.token = token
	cfg := graphql.Config{
		Store:     store,
		Deployer:  e.deployer,
		Machines:  e.machines,
		Tokens:    store,
		PublicURL: "https://ci.example.com/",
		Logger:    slog.New(slog.NewTextHandler(e.logs, nil)),
	}
	configure(&cfg)
	mux := http.NewServeMux()
	mux.Handle("/graphql", graphql.NewHandler(cfg))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL + "/graphql"
	return e
}

func (e *env) do(t *testing.T, query string, vars map[string]any) response {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	r.raw = string(b)
	return r
}

// ok fails the test on GraphQL errors and decodes data into v.
func (r response) ok(t *testing.T, v any) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %s", r.raw)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.Data, err)
	}
}

// code returns the only error's code and message.
func (r response) code(t *testing.T) (code, msg string) {
	t.Helper()
	if len(r.Errors) != 1 {
		t.Fatalf("want exactly one error, got %s", r.raw)
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c, r.Errors[0].Message
}

const addProject = `mutation($in: AddProjectInput!) {
  addProject(input: $in) {
    project { name repo branch dockerfile context webhookURL createdAt }
    webhookURL webhookSecret
  }
}`

type addProjectData struct {
	AddProject struct {
		Project struct {
			Name, Repo, Branch, Dockerfile, Context, WebhookURL string
			CreatedAt                                           time.Time
		}
		WebhookURL, WebhookSecret string
	}
}

func TestAddProject(t *testing.T) {
	e := newEnv(t, nil)
	var got addProjectData
	e.do(t, addProject, map[string]any{"in": map[string]any{"name": "web", "repo": "file:///srv/git/web"}}).ok(t, &got)

	p := got.AddProject.Project
	if p.Name != "web" || p.Repo != "file:///srv/git/web" || p.Branch != "main" || p.Dockerfile != "Dockerfile" || p.Context != "." {
		t.Errorf("project = %+v, want defaults main, Dockerfile, .", p)
	}
	// The project's own webhook URL, named by its hook id.
	stored, err := e.store.Project(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	hook := "https://ci.example.com/webhooks/github/" + stored.HookID
	if stored.HookID == "" || got.AddProject.WebhookURL != hook || p.WebhookURL != hook {
		t.Errorf("webhookURL = %q / %q, want %q", got.AddProject.WebhookURL, p.WebhookURL, hook)
	}
	if time.Since(p.CreatedAt) > time.Minute {
		t.Errorf("createdAt = %v, want about now", p.CreatedAt)
	}
	secret := got.AddProject.WebhookSecret
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(secret) {
		t.Errorf("generated secret = %q, want 64 hex digits", secret)
	}
	if stored.WebhookSecret != secret {
		t.Errorf("stored secret = %q, want the returned %q", stored.WebhookSecret, secret)
	}

	// Every setting given, the secret included.
	e.do(t, addProject, map[string]any{"in": map[string]any{
		"name": "api", "repo": "git@github.com:acme/api.git", "branch": "release/1", "dockerfile": "build/Dockerfile",
		"context": "src", "webhookSecret": "s3cret",
	}}).ok(t, &got)
	p = got.AddProject.Project
	if p.Branch != "release/1" || p.Dockerfile != "build/Dockerfile" || p.Context != "src" || got.AddProject.WebhookSecret != "s3cret" {
		t.Errorf("addProject(api) = %+v", got.AddProject)
	}

	// The secret is never readable afterwards.
	r := e.do(t, `{ project(name: "api") { webhookSecret } }`, nil)
	if len(r.Errors) == 0 {
		t.Errorf("Project.webhookSecret is queryable: %s", r.raw)
	}

	var list struct{ Projects []struct{ Name string } }
	e.do(t, `{ projects { name } }`, nil).ok(t, &list)
	if len(list.Projects) != 2 || list.Projects[0].Name != "api" || list.Projects[1].Name != "web" {
		t.Errorf("projects = %+v, want api, web", list.Projects)
	}
}

func TestAddProjectInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]any
		want string // part of the message
	}{
		{"name", map[string]any{"name": "Web_App", "repo": "file:///r"}, "invalid project name"},
		{"empty name", map[string]any{"name": "", "repo": "file:///r"}, "invalid project name"},
		{"repo", map[string]any{"name": "web", "repo": "ftp://example.com/r"}, "invalid repository URL"},
		{"repo option", map[string]any{"name": "web", "repo": "--upload-pack=x"}, "invalid repository URL"},
		{"branch", map[string]any{"name": "web", "repo": "file:///r", "branch": "a..b"}, "invalid git ref"},
		{"dockerfile", map[string]any{"name": "web", "repo": "file:///r", "dockerfile": "../Dockerfile"}, "invalid dockerfile"},
		{"context", map[string]any{"name": "web", "repo": "file:///r", "context": "/etc"}, "invalid context"},
		{"secret", map[string]any{"name": "web", "repo": "file:///r", "webhookSecret": "a\nb"}, "invalid webhook secret"},
	}
	e := newEnv(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := e.do(t, addProject, map[string]any{"in": tt.in}).code(t)
			if code != slipway.EINVALID || !strings.Contains(msg, tt.want) {
				t.Errorf("addProject(%v) = code %q, message %q; want code %q, message containing %q", tt.in, code, msg, slipway.EINVALID, tt.want)
			}
		})
	}
	if ps, _ := e.store.Projects(t.Context()); len(ps) != 0 {
		t.Errorf("invalid input stored projects: %+v", ps)
	}
}

func TestAddProjectConflict(t *testing.T) {
	e := newEnv(t, nil)
	in := map[string]any{"in": map[string]any{"name": "web", "repo": "file:///r"}}
	e.do(t, addProject, in).ok(t, &addProjectData{})
	code, msg := e.do(t, addProject, in).code(t)
	if code != slipway.ECONFLICT || !strings.Contains(msg, "already exists") {
		t.Errorf("second addProject = code %q, message %q; want conflict", code, msg)
	}
}

func TestDeploy(t *testing.T) {
	e := newEnv(t, nil)
	e.do(t, addProject, map[string]any{"in": map[string]any{"name": "web", "repo": "file:///r"}}).ok(t, &addProjectData{})

	const deploy = `mutation($in: DeployInput!) { deploy(input: $in) { id project ref commit trigger status } }`
	var got struct {
		Deploy struct{ ID, Project, Ref, Commit, Trigger, Status string }
	}
	sha := strings.Repeat("ab", 20)
	e.do(t, deploy, map[string]any{"in": map[string]any{"project": "web", "commit": sha}}).ok(t, &got)
	if got.Deploy.ID == "" || got.Deploy.Project != "web" || got.Deploy.Commit != sha || got.Deploy.Trigger != "manual" || got.Deploy.Status != "QUEUED" {
		t.Errorf("deploy = %+v", got.Deploy)
	}
	e.do(t, deploy, map[string]any{"in": map[string]any{"project": "web", "ref": "dev"}}).ok(t, &got)

	reqs := e.deployer.Requests()
	want := []slipway.DeployRequest{
		{Project: "web", Commit: sha, Trigger: slipway.TriggerManual},
		{Project: "web", Ref: "dev", Trigger: slipway.TriggerManual},
	}
	if len(reqs) != len(want) {
		t.Fatalf("deployer got %d requests, want %d", len(reqs), len(want))
	}
	for i := range want {
		if reqs[i] != want[i] {
			t.Errorf("request %d = %+v, want %+v", i, reqs[i], want[i])
		}
	}

	code, msg := e.do(t, deploy, map[string]any{"in": map[string]any{"project": "nope"}}).code(t)
	if code != slipway.ENOTFOUND || msg != `project "nope" not found` {
		t.Errorf("deploy(nope) = code %q, message %q; want not_found", code, msg)
	}
}

// seed stores project web with three deployments, the last one failed with
// four log lines.
func seed(t *testing.T, s slipway.Store) {
	t.Helper()
	ctx := t.Context()
	if err := s.CreateProject(ctx, &slipway.Project{Name: "web", Repo: "file:///r", Branch: "main", Dockerfile: "Dockerfile", Context: "."}); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, id := range []string{"d-1", "d-2", "d-3"} {
		d := &slipway.Deployment{ID: id, Project: "web", Ref: "refs/heads/main", Commit: strings.Repeat(string(rune('a'+i)), 40),
			Trigger: slipway.TriggerWebhook, Status: slipway.StatusQueued, CreatedAt: base.Add(time.Duration(i) * time.Minute)}
		if _, _, err := s.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.MarkBuilding(ctx, "d-1", base.Add(time.Second)))
	must(s.FinishDeployment(ctx, "d-1", slipway.DeploymentResult{Status: slipway.StatusSucceeded, Image: "localhost/web:" + strings.Repeat("a", 40),
		Digest: "sha256:" + strings.Repeat("0", 64), Timings: map[string]int64{"total": 9000, "build": 5000, "zeta": 1, "queue": 10, "deploy": 7, "fetch": 300},
		Steps: []slipway.BuildStep{
			{N: 1, Instruction: "STEP 1/2: FROM base", Cached: false, DurationMs: 40},
			{N: 2, Instruction: "STEP 2/2: RUN npm ci", Cached: true, DurationMs: 4900},
		}},
		base.Add(9*time.Second)))
	must(s.MarkBuilding(ctx, "d-3", base.Add(2*time.Minute+time.Second)))
	must(s.FinishDeployment(ctx, "d-3", slipway.DeploymentResult{Status: slipway.StatusFailed, Error: "RUN exit 1", FailedStep: "RUN false"},
		base.Add(2*time.Minute+4*time.Second)))
	must(s.AppendLogLines(ctx, []slipway.LogLine{
		{Deployment: "d-3", N: 0, Time: base, Stream: "stdout", Text: "fetching"},
		{Deployment: "d-3", N: 1, Time: base, Stream: "stdout", Step: "STEP 1/2: FROM base", Text: "STEP 1/2: FROM base"},
		{Deployment: "d-3", N: 2, Time: base, Stream: "stderr", Step: "STEP 2/2: RUN false", Text: "STEP 2/2: RUN false"},
		{Deployment: "d-3", N: 3, Time: base, Stream: "stderr", Step: "STEP 2/2: RUN false", Text: "Error: exit status 1"},
	}))
}

type deploymentData struct {
	ID, Status, Commit, Image, Digest string
	Error, FailedStep                 *string
	DurationMs                        *int
	Timings                           []struct {
		Phase string
		Ms    int
	}
	StartedAt, FinishedAt *time.Time
	Steps                 []stepData
}

type stepData struct {
	N           int
	Instruction string
	Cached      bool
	DurationMs  int
}

const deploymentFields = `id status commit image digest error failedStep durationMs timings { phase ms } startedAt finishedAt
	steps { n instruction cached durationMs }`

func TestDeployments(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store)

	var got struct{ Deployments []deploymentData }
	e.do(t, `query($p: String!) { deployments(project: $p) { `+deploymentFields+` } }`, map[string]any{"p": "web"}).ok(t, &got)
	var ids []string
	for _, d := range got.Deployments {
		ids = append(ids, d.ID)
	}
	if strings.Join(ids, ",") != "d-3,d-2,d-1" {
		t.Fatalf("deployments = %v, want newest first d-3,d-2,d-1", ids)
	}
	failed, queued, ok := got.Deployments[0], got.Deployments[1], got.Deployments[2]
	if failed.Status != "FAILED" || failed.Error == nil || *failed.Error != "RUN exit 1" || failed.FailedStep == nil || *failed.FailedStep != "RUN false" {
		t.Errorf("failed deployment = %+v", failed)
	}
	if failed.DurationMs == nil || *failed.DurationMs != 4000 {
		t.Errorf("failed durationMs = %v, want finishedAt-createdAt 4000", failed.DurationMs)
	}
	if queued.Status != "QUEUED" || queued.Error != nil || queued.FailedStep != nil || queued.DurationMs != nil || queued.StartedAt != nil || queued.FinishedAt != nil {
		t.Errorf("queued deployment = %+v, want nulls", queued)
	}
	if ok.Status != "SUCCEEDED" || ok.DurationMs == nil || *ok.DurationMs != 9000 || ok.Digest == "" || ok.Image == "" || ok.FinishedAt == nil {
		t.Errorf("succeeded deployment = %+v", ok)
	}
	if len(queued.Steps) != 0 || len(failed.Steps) != 0 {
		t.Errorf("steps of deployments without a build = %+v, %+v; want []", queued.Steps, failed.Steps)
	}
	wantSteps := []stepData{{1, "STEP 1/2: FROM base", false, 40}, {2, "STEP 2/2: RUN npm ci", true, 4900}}
	if !slices.Equal(ok.Steps, wantSteps) {
		t.Errorf("steps = %+v, want %+v", ok.Steps, wantSteps)
	}
	var phases []string
	for _, tm := range ok.Timings {
		phases = append(phases, tm.Phase)
	}
	if got, want := strings.Join(phases, ","), "queue,fetch,build,total,deploy,zeta"; got != want {
		t.Errorf("timings phases = %s, want %s", got, want)
	}

	e.do(t, `{ deployments(project: "web", first: 1) { id } }`, nil).ok(t, &got)
	if len(got.Deployments) != 1 || got.Deployments[0].ID != "d-3" {
		t.Errorf("deployments(first: 1) = %+v, want d-3", got.Deployments)
	}
	var viaProject struct {
		Project struct{ Deployments []struct{ ID string } }
	}
	e.do(t, `{ project(name: "web") { deployments(first: 2) { id } } }`, nil).ok(t, &viaProject)
	if d := viaProject.Project.Deployments; len(d) != 2 || d[0].ID != "d-3" || d[1].ID != "d-2" {
		t.Errorf("project.deployments(first: 2) = %+v", d)
	}

	for _, tt := range []struct{ query, code string }{
		{`{ deployments(project: "nope") { id } }`, slipway.ENOTFOUND},
		{`{ deployments(project: "web", first: -1) { id } }`, slipway.EINVALID},
	} {
		if code, msg := e.do(t, tt.query, nil).code(t); code != tt.code {
			t.Errorf("%s = code %q (%s), want %q", tt.query, code, msg, tt.code)
		}
	}

	var none struct {
		Deployment *deploymentData
		Project    *struct{ Name string }
	}
	e.do(t, `{ deployment(id: "d-404") { id } project(name: "nope") { name } }`, nil).ok(t, &none)
	if none.Deployment != nil || none.Project != nil {
		t.Errorf("unknown deployment and project = %+v, want nulls", none)
	}
}

func TestDeploymentLogs(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store)
	type line struct {
		N      int
		Stream string
		Step   *string
		Text   string
		Time   time.Time
	}
	var got struct {
		Deployment struct{ Logs []line }
	}
	e.do(t, `{ deployment(id: "d-3") { logs { n time stream step text } } }`, nil).ok(t, &got)
	logs := got.Deployment.Logs
	if len(logs) != 4 {
		t.Fatalf("logs = %+v, want 4 lines", logs)
	}
	for i, l := range logs {
		if l.N != i {
			t.Errorf("line %d has n %d", i, l.N)
		}
	}
	if logs[0].Step != nil || logs[3].Step == nil || *logs[3].Step != "STEP 2/2: RUN false" || logs[3].Text != "Error: exit status 1" || logs[3].Stream != "stderr" {
		t.Errorf("logs = %+v", logs)
	}
	e.do(t, `{ deployment(id: "d-3") { logs(from: 1, first: 2) { n text } } }`, nil).ok(t, &got)
	if l := got.Deployment.Logs; len(l) != 2 || l[0].N != 1 || l[1].N != 2 {
		t.Errorf("logs(from: 1, first: 2) = %+v, want lines 1 and 2", l)
	}
}

// failingStore is the real store whose listing of projects fails with an
// error users must not see.
type failingStore struct{ slipway.Store }

func (failingStore) Projects(context.Context) ([]*slipway.Project, error) {
	return nil, errors.New("database is locked: /var/lib/secret/path.db")
}

// panickingDeployer panics in Deploy, for the API's recovery.
type panickingDeployer struct{ slipway.Deployer }

func (panickingDeployer) Deploy(context.Context, slipway.DeployRequest) (*slipway.Deployment, slipway.DeployOutcome, error) {
	panic("boom")
}

func TestInternalErrors(t *testing.T) {
	e := newEnvWith(t, func(c *graphql.Config) {
		c.Store, c.Deployer = failingStore{c.Store}, panickingDeployer{c.Deployer}
	})
	seed(t, e.store)

	r := e.do(t, `{ projects { name } }`, nil)
	if code, msg := r.code(t); code != slipway.EINTERNAL || msg != "internal error" {
		t.Errorf("store failure = code %q, message %q; want internal error", code, msg)
	}
	if strings.Contains(r.raw, "secret/path") {
		t.Errorf("response leaks the cause: %s", r.raw)
	}
	if !strings.Contains(e.logs.String(), "database is locked") {
		t.Errorf("the cause was not logged: %s", e.logs)
	}

	r = e.do(t, `mutation { deploy(input: {project: "web"}) { id } }`, nil)
	if code, msg := r.code(t); code != slipway.EINTERNAL || msg != "internal error" {
		t.Errorf("panic = code %q, message %q; want internal error", code, msg)
	}
	for _, leak := range []string{"boom", "goroutine", ".go:", "panic"} {
		if strings.Contains(r.raw, leak) {
			t.Errorf("response contains %q: %s", leak, r.raw)
		}
	}
	if !strings.Contains(e.logs.String(), "boom") {
		t.Errorf("the panic was not logged: %s", e.logs)
	}

	// GraphQL's own errors keep their message.
	r = e.do(t, `{ nosuchfield }`, nil)
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Message, "nosuchfield") {
		t.Errorf("validation error = %s", r.raw)
	}
}

func TestGET(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store)
	get := func(query string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.url+"?query="+url.QueryEscape(query), nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(`{ projects { name } }`); status != http.StatusOK || !strings.Contains(body, `"name":"web"`) {
		t.Errorf("GET query = %d %s", status, body)
	}
	if status, _ := get(`mutation { deploy(input: {project: "web"}) { id } }`); status == http.StatusOK {
		t.Errorf("GET mutation answered 200")
	}
	if n := len(e.deployer.Requests()); n != 0 {
		t.Errorf("GET mutation reached the deployer %d times", n)
	}
}
