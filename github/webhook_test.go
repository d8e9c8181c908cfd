package github

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// The payloads in testdata are octokit/webhooks' recordings of real GitHub
// deliveries (see testdata/SOURCE.txt and testdata/LICENSE.octokit-webhooks).
// Their repository is Codertocat/Hello-World; push.with-new-branch pushes
// 6113728f… to refs/heads/master.
const (
	secret  = "It's a Secret to Everybody"
	repoURL = "https://github.com/Codertocat/Hello-World.git"
	commit  = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
)

// lookupsOnly is the real store, failing the test if the handler reads a
// project's whole history (Deployments): it must look a commit up
// (DeploymentOfCommit) instead.
type lookupsOnly struct {
	slipway.Store
	t *testing.T
}

func (s lookupsOnly) Deployments(ctx context.Context, project string, limit int) ([]*slipway.Deployment, error) {
	s.t.Errorf("the handler read the deployments of %s (limit %d)", project, limit)
	return s.Store.Deployments(ctx, project, limit)
}

// DeploymentOfCommit fails the test: whether a delivery needs a new
// deployment is the Deployer's to decide (deploy.Earlier), not the
// handler's.
func (s lookupsOnly) DeploymentOfCommit(ctx context.Context, project, branch, commit string) (*slipway.Deployment, error) {
	s.t.Errorf("the handler looked up earlier deployments of %s: the Deployer decides what a delivery needs", project)
	return s.Store.DeploymentOfCommit(ctx, project, branch, commit)
}

// failingLookups is the real store whose DeploymentOfCommit fails.
type failingLookups struct {
	slipway.Store
	err error
}

func (s failingLookups) DeploymentOfCommit(context.Context, string, string, string) (*slipway.Deployment, error) {
	return nil, s.err
}

// failingDeployer fails every Deploy with err, or panics when err is nil,
// and counts the calls. The handler calls nothing else.
type failingDeployer struct {
	slipway.Deployer
	err   error
	calls atomic.Int32
}

func (d *failingDeployer) Deploy(context.Context, slipway.DeployRequest) (*slipway.Deployment, slipway.DeployOutcome, error) {
	d.calls.Add(1)
	if d.err == nil {
		panic("deployer exploded")
	}
	return nil, "", d.err
}

// replayingDeployer answers every Deploy with an earlier deployment, as
// the real one answers the replay of a deployed commit under a new
// delivery id. The handler calls nothing else.
type replayingDeployer struct {
	slipway.Deployer
	earlier *slipway.Deployment
}

func (d replayingDeployer) Deploy(context.Context, slipway.DeployRequest) (*slipway.Deployment, slipway.DeployOutcome, error) {
	return d.earlier, slipway.DeployReplayed, nil
}

func webProject() *slipway.Project {
	return &slipway.Project{Name: "web", Repo: "https://github.com/codertocat/hello-world", Branch: "master", WebhookSecret: secret}
}

// newStore returns a real store holding projects.
func newStore(t *testing.T, projects ...*slipway.Project) *sqlite.DB {
	t.Helper()
	store := sqlitetest.Open(t)
	for _, p := range projects {
		sqlitetest.AddProject(t, store, *p)
	}
	return store
}

// newServer starts the handler on a real socket over a real store holding
// projects, with a Deployer that records deployments there.
func newServer(t *testing.T, cfg HandlerConfig, projects ...*slipway.Project) (string, *sqlitetest.Deployer) {
	t.Helper()
	store := newStore(t, projects...)
	dep := &sqlitetest.Deployer{Store: store}
	return serve(t, cfg, store, dep), dep
}

// serve starts the handler on a real socket with store and dep unless cfg
// has its own.
func serve(t *testing.T, cfg HandlerConfig, store slipway.Store, dep slipway.Deployer) string {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = lookupsOnly{store, t}
	}
	if cfg.Deployer == nil {
		cfg.Deployer = dep
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(NewHandler(cfg))
	t.Cleanup(srv.Close)
	return srv.URL + Path
}

// fixture returns a testdata payload, changed by edit, as JSON.
func fixture(t *testing.T, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if edit != nil {
		edit(m)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// push is the branch push fixture with fields set (nil deletes a field).
func push(t *testing.T, set map[string]any) []byte {
	return fixture(t, "push.with-new-branch.payload.json", func(m map[string]any) {
		for k, v := range set {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
	})
}

func withRepo(u string) func(map[string]any) {
	return func(m map[string]any) {
		repo := m["repository"].(map[string]any)
		repo["clone_url"], repo["html_url"] = u, strings.TrimSuffix(u, ".git")
		delete(repo, "ssh_url")
		delete(repo, "git_url")
	}
}

// headers builds a delivery's headers: kv are name, value pairs; a value
// of "" drops a header set by default. The signature is computed over the
// body actually sent unless overridden.
func headers(kv ...string) func(body []byte) http.Header {
	return func(body []byte) http.Header {
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("X-GitHub-Event", "push")
		h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		h.Set("X-Hub-Signature-256", Sign(secret, body))
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				h.Del(kv[i])
			} else {
				h.Set(kv[i], kv[i+1])
			}
		}
		return h
	}
}

func send(t *testing.T, method, target string, h http.Header, body []byte) (int, Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, target, ct)
	}
	var resp Response
	if err := json.Unmarshal(raw, &resp); err != nil {
		t.Fatalf("%s %s = %d %q: not a JSON response: %v", method, target, res.StatusCode, raw, err)
	}
	if resp.Message == "" {
		t.Errorf("%s %s = %d: empty message", method, target, res.StatusCode)
	}
	return res.StatusCode, resp
}

func TestWebhook(t *testing.T) {
	formBody := func(t *testing.T) []byte {
		return []byte("payload=" + url.QueryEscape(string(push(t, nil))))
	}
	wrongSig := Sign("not the secret", push(t, nil))
	tests := []struct {
		name        string
		method      string // default POST
		body        func(t *testing.T) []byte
		headers     func(body []byte) http.Header
		maxBody     int64
		wantStatus  int
		wantMessage string
		wantDeploy  bool
	}{
		{
			name: "valid push", body: func(t *testing.T) []byte { return push(t, nil) }, headers: headers(),
			wantStatus: http.StatusAccepted, wantMessage: "deployment d-1 of master at 6113728f27ae queued", wantDeploy: true,
		},
		{
			name: "form-encoded push", body: formBody,
			headers:    headers("Content-Type", "application/x-www-form-urlencoded"),
			wantStatus: http.StatusAccepted, wantMessage: "deployment d-1 of master", wantDeploy: true,
		},
		{
			name: "gitea push without created, deleted, forced",
			body: func(t *testing.T) []byte {
				return push(t, map[string]any{"created": nil, "deleted": nil, "forced": nil, "base_ref": nil})
			},
			headers: func(body []byte) http.Header {
				return headers("X-GitHub-Event", "", "X-GitHub-Delivery", "", "X-Hub-Signature-256", "",
					"X-Gitea-Event", "push", "X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473",
					"X-Gitea-Signature", strings.TrimPrefix(Sign(secret, body), "sha256="))(body)
			},
			wantStatus: http.StatusAccepted, wantMessage: "deployment d-1 of master", wantDeploy: true,
		},
		{
			name: "gitea push signed with X-Hub-Signature-256",
			body: func(t *testing.T) []byte {
				return push(t, map[string]any{"created": nil, "deleted": nil, "forced": nil})
			},
			headers: headers("X-GitHub-Event", "", "X-GitHub-Delivery", "",
				"X-Gitea-Event", "push", "X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
			wantStatus: http.StatusAccepted, wantMessage: "queued", wantDeploy: true,
		},
		{
			name: "project without branch filter deploys the default branch",
			body: func(t *testing.T) []byte { return push(t, nil) }, headers: headers(),
			wantStatus: http.StatusAccepted, wantMessage: "queued", wantDeploy: true,
		},
		{
			name: "missing signature", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("X-Hub-Signature-256", ""),
			wantStatus: http.StatusUnauthorized, wantMessage: "missing X-Hub-Signature-256 header",
		},
		{
			name: "wrong signature", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("X-Hub-Signature-256", wrongSig),
			wantStatus: http.StatusUnauthorized, wantMessage: "X-Hub-Signature-256 does not match the payload",
		},
		{
			name: "signature over another body", body: func(t *testing.T) []byte { return push(t, map[string]any{"forced": true}) },
			headers:    headers("X-Hub-Signature-256", Sign(secret, push(t, nil))),
			wantStatus: http.StatusUnauthorized, wantMessage: "does not match",
		},
		{
			name: "sha1 signature", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("X-Hub-Signature-256", "sha1="+strings.Repeat("ab", 20)),
			wantStatus: http.StatusUnauthorized, wantMessage: "malformed X-Hub-Signature-256 header",
		},
		{
			name: "oversized body", body: func(t *testing.T) []byte { return push(t, nil) }, headers: headers(), maxBody: 1024,
			wantStatus: http.StatusRequestEntityTooLarge, wantMessage: "payload is larger than 1024 bytes",
		},
		{
			name: "malformed JSON", body: func(t *testing.T) []byte { return []byte(`{"ref": "refs/heads/master",`) }, headers: headers(),
			wantStatus: http.StatusBadRequest, wantMessage: "malformed push payload",
		},
		{
			name: "JSON of the wrong shape", body: func(t *testing.T) []byte { return []byte(`{"ref": 42}`) }, headers: headers(),
			wantStatus: http.StatusBadRequest, wantMessage: `field "ref" has the wrong type`,
		},
		{
			name: "JSON array", body: func(t *testing.T) []byte { return []byte(`[]`) }, headers: headers(),
			wantStatus: http.StatusBadRequest, wantMessage: "want a JSON object",
		},
		{
			name: "form without payload field", body: func(t *testing.T) []byte { return []byte("other=1") },
			headers:    headers("Content-Type", "application/x-www-form-urlencoded"),
			wantStatus: http.StatusBadRequest, wantMessage: "without a payload field",
		},
		{
			name: "wrong content type", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("Content-Type", "text/plain"),
			wantStatus: http.StatusUnsupportedMediaType, wantMessage: `unsupported Content-Type "text/plain"`,
		},
		{
			name: "missing content type", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("Content-Type", ""),
			wantStatus: http.StatusUnsupportedMediaType, wantMessage: "unsupported Content-Type",
		},
		{
			name: "missing event header", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("X-GitHub-Event", ""),
			wantStatus: http.StatusBadRequest, wantMessage: "missing X-GitHub-Event header",
		},
		{
			name: "missing delivery header", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("X-GitHub-Delivery", ""),
			wantStatus: http.StatusBadRequest, wantMessage: "missing X-GitHub-Delivery header",
		},
		{
			name: "hostile delivery id", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("X-GitHub-Delivery", strings.Repeat("x", 129)),
			wantStatus: http.StatusBadRequest, wantMessage: "invalid X-GitHub-Delivery header",
		},
		{
			name: "unknown event", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("X-GitHub-Event", "star"),
			wantStatus: http.StatusAccepted, wantMessage: `event "star" ignored`,
		},
		{
			name: "unknown event without repository", body: func(t *testing.T) []byte { return []byte(`{"action":"created"}`) },
			headers:    headers("X-GitHub-Event", "github_app_authorization", "X-Hub-Signature-256", ""),
			wantStatus: http.StatusAccepted, wantMessage: "ignored",
		},
		{
			name: "unknown event with a wrong signature", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("X-GitHub-Event", "star", "X-Hub-Signature-256", wrongSig),
			wantStatus: http.StatusUnauthorized, wantMessage: "does not match",
		},
		{
			name: "ping", body: func(t *testing.T) []byte { return fixture(t, "ping.payload.json", withRepo(repoURL)) },
			headers:    headers("X-GitHub-Event", "ping"),
			wantStatus: http.StatusOK, wantMessage: "pong",
		},
		{
			name: "unsigned ping", body: func(t *testing.T) []byte { return fixture(t, "ping.payload.json", withRepo(repoURL)) },
			headers:    headers("X-GitHub-Event", "ping", "X-Hub-Signature-256", ""),
			wantStatus: http.StatusUnauthorized, wantMessage: "missing X-Hub-Signature-256",
		},
		{
			name: "pull request", body: func(t *testing.T) []byte { return fixture(t, "pull_request.opened.payload.json", nil) },
			headers:    headers("X-GitHub-Event", "pull_request"),
			wantStatus: http.StatusAccepted, wantMessage: `event "pull_request" (action "opened") accepted but not acted on: this server builds no previews`,
		},
		{
			name: "installation", body: func(t *testing.T) []byte { return fixture(t, "installation.created.payload.json", nil) },
			headers:    headers("X-GitHub-Event", "installation"),
			wantStatus: http.StatusAccepted, wantMessage: `event "installation" (action "created") accepted but not acted on yet`,
		},
		{
			name: "branch deletion", body: func(t *testing.T) []byte {
				return push(t, map[string]any{"deleted": true, "created": false, "after": zeroSHA})
			},
			headers:    headers(),
			wantStatus: http.StatusAccepted, wantMessage: "ref refs/heads/master was deleted: nothing to deploy",
		},
		{
			name: "gitea branch deletion without deleted field", body: func(t *testing.T) []byte {
				return push(t, map[string]any{"deleted": nil, "created": nil, "forced": nil, "after": zeroSHA})
			},
			headers:    headers("X-GitHub-Event", "", "X-Gitea-Event", "push"),
			wantStatus: http.StatusAccepted, wantMessage: "was deleted",
		},
		{
			name: "tag deletion fixture", body: func(t *testing.T) []byte { return fixture(t, "push.payload.json", nil) },
			headers:    headers(),
			wantStatus: http.StatusAccepted, wantMessage: "ref refs/tags/simple-tag was deleted",
		},
		{
			name: "tag push", body: func(t *testing.T) []byte { return push(t, map[string]any{"ref": "refs/tags/v1.0.0"}) },
			headers:    headers(),
			wantStatus: http.StatusAccepted, wantMessage: "tag push refs/tags/v1.0.0 ignored",
		},
		{
			name: "branch filter mismatch", body: func(t *testing.T) []byte { return push(t, map[string]any{"ref": "refs/heads/feature"}) },
			headers:    headers(),
			wantStatus: http.StatusAccepted, wantMessage: "branch feature does not match project filter master",
		},
		{
			name: "unknown repository",
			body: func(t *testing.T) []byte {
				return fixture(t, "push.with-new-branch.payload.json", withRepo("https://github.com/someone/elsewhere.git"))
			},
			// The answer of a wrong signature: the endpoint does not say
			// which repositories are registered.
			headers:    headers(),
			wantStatus: http.StatusUnauthorized, wantMessage: "X-Hub-Signature-256 does not match the payload: the webhook's secret must be the project's webhook secret",
		},
		{
			name: "unknown repository, unsigned",
			body: func(t *testing.T) []byte {
				return fixture(t, "push.with-new-branch.payload.json", withRepo("https://github.com/someone/elsewhere.git"))
			},
			headers:    headers("X-Hub-Signature-256", ""),
			wantStatus: http.StatusUnauthorized, wantMessage: "missing X-Hub-Signature-256 header",
		},
		{
			name: "hostile ref with dot-dot", body: func(t *testing.T) []byte { return push(t, map[string]any{"ref": "refs/heads/../../x"}) },
			headers:    headers(),
			wantStatus: http.StatusBadRequest, wantMessage: `invalid git ref "refs/heads/../../x"`,
		},
		{
			name: "hostile ref with control character", body: func(t *testing.T) []byte { return push(t, map[string]any{"ref": "refs/heads/ma\x1bin"}) },
			headers:    headers(),
			wantStatus: http.StatusBadRequest, wantMessage: "invalid git ref",
		},
		{
			name: "invalid after", body: func(t *testing.T) []byte { return push(t, map[string]any{"after": "HEAD; rm -rf /"}) },
			headers:    headers(),
			wantStatus: http.StatusBadRequest, wantMessage: "invalid commit",
		},
		{
			name: "GET", method: http.MethodGet, body: func(t *testing.T) []byte { return nil }, headers: headers(),
			wantStatus: http.StatusMethodNotAllowed, wantMessage: "method GET is not allowed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := webProject()
			if strings.HasPrefix(tt.name, "project without branch filter") {
				p.Branch = ""
			}
			// The fixtures were pushed in 2019: no webhook window, or every push is stale.
			target, dep := newServer(t, HandlerConfig{MaxBodyBytes: tt.maxBody, MaxAge: -1}, p)
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			body := tt.body(t)
			h := tt.headers(body)
			status, resp := send(t, method, target, h, body)
			if status != tt.wantStatus || !strings.Contains(resp.Message, tt.wantMessage) {
				t.Errorf("%s %s = %d %q, want %d %q", method, tt.name, status, resp.Message, tt.wantStatus, tt.wantMessage)
			}
			calls := dep.Requests()
			if !tt.wantDeploy {
				if len(calls) != 0 {
					t.Errorf("%s %s: deployer called with %+v, want no call", method, tt.name, calls)
				}
				if resp.Deployment != "" {
					t.Errorf("%s %s: deployment %q, want none", method, tt.name, resp.Deployment)
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("%s %s: deployer called %d times, want 1", method, tt.name, len(calls))
			}
			delivery := firstNonEmpty(h.Get("X-GitHub-Delivery"), h.Get("X-Gitea-Delivery"))
			want := slipway.DeployRequest{Project: "web", Ref: "refs/heads/master", Commit: commit, Trigger: slipway.TriggerWebhook, DeliveryID: delivery}
			if calls[0] != want {
				t.Errorf("%s %s: Deploy(%+v), want Deploy(%+v)", method, tt.name, calls[0], want)
			}
			if resp.Deployment != "d-1" || len(resp.Deployments) != 1 || resp.Delivery != delivery {
				t.Errorf("%s %s: response %+v, want deployment d-1 for delivery %s", method, tt.name, resp, delivery)
			}
		})
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func TestRedelivery(t *testing.T) {
	// The window off: the fixture's push is years old.
	target, dep := newServer(t, HandlerConfig{MaxAge: -1}, webProject())
	body := push(t, nil)
	h := headers()(body)

	status, first := send(t, http.MethodPost, target, h, body)
	if status != http.StatusAccepted || first.Deployment == "" {
		t.Fatalf("POST %s = %d %q, want %d with a deployment", target, status, first.Message, http.StatusAccepted)
	}
	status, again := send(t, http.MethodPost, target, h, body)
	if status != http.StatusOK || !strings.Contains(again.Message, "redelivery") {
		t.Errorf("POST %s again = %d %q, want %d redelivery", target, status, again.Message, http.StatusOK)
	}
	if again.Deployment != first.Deployment {
		t.Errorf("redelivery deployment = %q, want the original %q", again.Deployment, first.Deployment)
	}
	if ds, err := dep.Store.Deployments(t.Context(), "web", 0); err != nil || len(ds) != 1 {
		t.Errorf("deployments created = %d (%v), want 1", len(ds), err)
	}

	// The same push under a new delivery id is a replay: the Deployer
	// answers it with the first deployment.
	h.Set("X-GitHub-Delivery", "another-delivery")
	status, other := send(t, http.MethodPost, target, h, body)
	if status != http.StatusOK || other.Deployment != first.Deployment || !strings.Contains(other.Message, "replay of an earlier push") {
		t.Errorf("POST %s new delivery = %d %+v, want %d replay of %s", target, status, other, http.StatusOK, first.Deployment)
	}
	if ds, err := dep.Store.Deployments(t.Context(), "web", 0); err != nil || len(ds) != 1 {
		t.Errorf("deployments after a replay = %d (%v), want 1", len(ds), err)
	}
}

func TestSeveralProjects(t *testing.T) {
	api := &slipway.Project{Name: "api", Repo: repoURL, Branch: "master", WebhookSecret: secret}
	docs := &slipway.Project{Name: "docs", Repo: "git@github.com:Codertocat/Hello-World.git", Branch: "release/*", WebhookSecret: secret}
	other := &slipway.Project{Name: "other", Repo: repoURL, Branch: "master", WebhookSecret: "a different secret"}
	target, dep := newServer(t, HandlerConfig{}, webProject(), api, docs, other)
	body := push(t, nil)
	h := headers()(body)

	status, resp := send(t, http.MethodPost, target, h, body)
	if status != http.StatusAccepted {
		t.Fatalf("POST %s = %d %q, want %d", target, status, resp.Message, http.StatusAccepted)
	}
	if len(resp.Deployments) != 2 || resp.Deployment != resp.Deployments[0] {
		t.Errorf("POST %s: deployments %q (first %q), want 2", target, resp.Deployments, resp.Deployment)
	}
	if !strings.Contains(resp.Message, "project docs: branch master does not match project filter release/*") {
		t.Errorf("POST %s: message %q, want the docs filter mismatch", target, resp.Message)
	}
	var got []string
	for _, c := range dep.Requests() {
		got = append(got, c.Project+"="+c.DeliveryID)
	}
	// The delivery id goes through as the forge sent it: the Deployer
	// records one deployment per project of it.
	want := []string{"api=" + h.Get("X-GitHub-Delivery"), "web=" + h.Get("X-GitHub-Delivery")} // the store's order: by name
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Deploy calls %q, want %q (the project whose secret differs is not deployed)", got, want)
	}

	status, again := send(t, http.MethodPost, target, h, body)
	if status != http.StatusOK || fmt.Sprint(again.Deployments) != fmt.Sprint(resp.Deployments) {
		t.Errorf("POST %s again = %d %+v, want %d with deployments %q", target, status, again, http.StatusOK, resp.Deployments)
	}
}

func TestAppSecret(t *testing.T) {
	const appSecret = "app secret"
	target, dep := newServer(t, HandlerConfig{AppSecret: appSecret}, webProject())

	body := push(t, nil)
	status, resp := send(t, http.MethodPost, target, headers("X-Hub-Signature-256", Sign(appSecret, body))(body), body)
	if status != http.StatusAccepted || len(dep.Requests()) != 1 {
		t.Errorf("POST %s signed by the app = %d %q, %d deploys, want %d and 1 deploy", target, status, resp.Message, len(dep.Requests()), http.StatusAccepted)
	}

	// An installation on an account with no registered project can only be
	// verified with the app secret.
	inst := fixture(t, "installation.created.payload.json", func(m map[string]any) {
		m["repositories"] = []any{map[string]any{"full_name": "someone/elsewhere"}}
	})
	for _, tc := range []struct {
		sig        string
		wantStatus int
	}{{Sign(appSecret, inst), http.StatusAccepted}, {Sign(secret, inst), http.StatusUnauthorized}} {
		status, resp := send(t, http.MethodPost, target, headers("X-GitHub-Event", "installation", "X-Hub-Signature-256", tc.sig)(inst), inst)
		if status != tc.wantStatus {
			t.Errorf("POST %s installation = %d %q, want %d", target, status, resp.Message, tc.wantStatus)
		}
	}
}

func TestDeployerErrors(t *testing.T) {
	tests := []struct {
		name        string
		err         error // nil: Deploy panics
		wantStatus  int
		wantMessage string
	}{
		{"conflict", slipway.Errorf(slipway.ECONFLICT, "project web is being deleted"), http.StatusConflict, "project web is being deleted"},
		{"invalid", fmt.Errorf("deploy: %w", slipway.Errorf(slipway.EINVALID, "bad ref")), http.StatusBadRequest, "bad ref"},
		{"internal", errors.New("temporal: dial tcp 127.0.0.1:7233: connection refused"), http.StatusInternalServerError, "internal error"},
		{"panic", nil, http.StatusInternalServerError, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dep := &failingDeployer{err: tt.err}
			target, _ := newServer(t, HandlerConfig{Deployer: dep}, webProject())
			body := push(t, nil)
			status, resp := send(t, http.MethodPost, target, headers()(body), body)
			if status != tt.wantStatus || resp.Message != tt.wantMessage {
				t.Errorf("POST %s = %d %q, want %d %q", target, status, resp.Message, tt.wantStatus, tt.wantMessage)
			}
			if n := dep.calls.Load(); n != 1 {
				t.Errorf("deployer called %d times, want 1", n)
			}
		})
	}
}

// TestUserMessage: the HTTP status of an error is slipway.HTTPStatus's
// (error_test.go); what the forge reads of an internal error is nothing.
func TestUserMessage(t *testing.T) {
	if got := userMessage(slipway.Errorf(slipway.EINTERNAL, "secret detail")); got != "internal error" {
		t.Errorf("userMessage(EINTERNAL) = %q, want %q", got, "internal error")
	}
	if got := userMessage(fmt.Errorf("wrapped: %w", slipway.Errorf(slipway.ENOTFOUND, "no x"))); got != "no x" {
		t.Errorf("userMessage(ENOTFOUND) = %q, want %q", got, "no x")
	}
}

func TestSign(t *testing.T) {
	// The example from GitHub's "Validating webhook deliveries" docs.
	got := Sign("It's a Secret to Everybody", []byte("Hello, World!"))
	want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got != want {
		t.Errorf("Sign(%q, %q) = %q, want %q", secret, "Hello, World!", got, want)
	}
	sum, _ := hex.DecodeString(strings.TrimPrefix(want, "sha256="))
	if verify("", []byte("Hello, World!"), mac("", []byte("Hello, World!"))) {
		t.Error("verify with an empty secret = true, want false")
	}
	if !verify(secret, []byte("Hello, World!"), sum) {
		t.Error("verify(the docs example) = false, want true")
	}
}

func TestBranchMatches(t *testing.T) {
	tests := []struct {
		filter, branch string
		want           bool
	}{
		{"main", "main", true},
		{"main", "mainline", false},
		{"release/*", "release/1.2", true},
		{"release/*", "release/1/2", false},
		{"", "anything", true},
		{"[", "[", true},
		{"[", "x", false},
	}
	for _, tt := range tests {
		if got := branchMatches(tt.filter, tt.branch); got != tt.want {
			t.Errorf("branchMatches(%q, %q) = %v, want %v", tt.filter, tt.branch, got, tt.want)
		}
	}
}

// TestDeliveryAge: a delivery older than the webhook window builds nothing
// when its commit was already deployed from its branch, whatever its
// delivery id; one whose commit is new still builds. The fixture's push
// (push.with-new-branch) has repository.pushed_at 1557933657
// (2019-05-15T15:20:57Z) and a head commit of 2019-05-15T15:19:25Z.
func TestDeliveryAge(t *testing.T) {
	pushedAt := time.Unix(1557933657, 0)
	known := &slipway.Deployment{ID: "d-known", Project: "web", Ref: "refs/heads/master", Commit: commit, Trigger: slipway.TriggerWebhook, DeliveryID: "first"}
	elsewhere := &slipway.Deployment{ID: "d-other-branch", Project: "web", Ref: "refs/heads/other", Commit: commit, Trigger: slipway.TriggerWebhook}
	manual := &slipway.Deployment{ID: "d-manual", Project: "web", Ref: "master", Commit: commit, Trigger: slipway.TriggerManual}
	otherCommit := &slipway.Deployment{ID: "d-old", Project: "web", Ref: "refs/heads/master", Commit: strings.Repeat("b", 40), Trigger: slipway.TriggerWebhook}
	noTimes := func(m map[string]any) {
		delete(m["repository"].(map[string]any), "pushed_at")
		delete(m, "head_commit")
		for _, c := range m["commits"].([]any) {
			delete(c.(map[string]any), "timestamp")
		}
	}
	tests := []struct {
		name        string
		maxAge      time.Duration
		now         time.Time
		deployed    []*slipway.Deployment
		edit        func(m map[string]any)
		wantStatus  int
		wantMessage string
		wantDeploy  bool
		wantID      string
		// wantStale: the handler tells the Deployer the push is past the
		// webhook window.
		wantStale bool
	}{
		{
			name: "stale, commit deployed from the branch", wantStale: true, maxAge: time.Hour, now: pushedAt.Add(2 * time.Hour), deployed: []*slipway.Deployment{otherCommit, known},
			wantStatus: http.StatusOK, wantID: "d-known",
			wantMessage: "stale delivery: its push is 2h0m0s old (pushed at 2019-05-15T15:20:57Z), past the webhook window of 1h0m0s, and commit 6113728f27ae of master was already deployed as d-known: nothing new was queued",
		},
		{
			name: "stale, commit deployed by hand from the branch", wantStale: true, maxAge: time.Hour, now: pushedAt.Add(2 * time.Hour), deployed: []*slipway.Deployment{manual},
			wantStatus: http.StatusOK, wantID: "d-manual", wantMessage: "already deployed as d-manual",
		},
		{
			name: "stale, commit new", wantStale: true, maxAge: time.Hour, now: pushedAt.Add(2 * time.Hour), deployed: []*slipway.Deployment{otherCommit},
			wantStatus: http.StatusAccepted, wantMessage: "queued", wantDeploy: true,
		},
		{
			name: "stale, commit deployed only from another branch", wantStale: true, maxAge: time.Hour, now: pushedAt.Add(2 * time.Hour), deployed: []*slipway.Deployment{elsewhere},
			wantStatus: http.StatusAccepted, wantMessage: "queued", wantDeploy: true,
		},
		{
			name: "within the window, commit deployed by a webhook: a replay", maxAge: time.Hour, now: pushedAt.Add(30 * time.Minute), deployed: []*slipway.Deployment{known},
			wantStatus: http.StatusOK, wantID: "d-known", wantMessage: "replay of an earlier push: commit 6113728f27ae of master was already deployed as d-known",
		},
		{
			name: "within the window, commit deployed by hand", maxAge: time.Hour, now: pushedAt.Add(30 * time.Minute), deployed: []*slipway.Deployment{manual},
			wantStatus: http.StatusAccepted, wantMessage: "queued", wantDeploy: true,
		},
		{
			name: "zero: the default window (DefaultMaxAge)", wantStale: true, maxAge: 0, now: pushedAt.Add(DefaultMaxAge + time.Minute), deployed: []*slipway.Deployment{manual},
			wantStatus: http.StatusOK, wantID: "d-manual", wantMessage: "already deployed as d-manual",
		},
		{
			name: "window off", maxAge: -1, now: pushedAt.Add(24 * 365 * time.Hour), deployed: []*slipway.Deployment{manual},
			wantStatus: http.StatusAccepted, wantMessage: "queued", wantDeploy: true,
		},
		{
			name: "pushed_at as an RFC 3339 string", wantStale: true, maxAge: time.Hour, now: pushedAt.Add(2 * time.Hour), deployed: []*slipway.Deployment{known},
			edit:       func(m map[string]any) { m["repository"].(map[string]any)["pushed_at"] = "2019-05-15T15:20:57Z" },
			wantStatus: http.StatusOK, wantID: "d-known", wantMessage: "pushed at 2019-05-15T15:20:57Z",
		},
		{
			name: "gitea: no pushed_at, the head commit's time", wantStale: true, maxAge: time.Hour, now: pushedAt.Add(2 * time.Hour), deployed: []*slipway.Deployment{known},
			edit:       func(m map[string]any) { delete(m["repository"].(map[string]any), "pushed_at") },
			wantStatus: http.StatusOK, wantID: "d-known", wantMessage: "pushed at 2019-05-15T15:19:25Z",
		},
		{
			name: "no head commit: the newest commit's time", wantStale: true, maxAge: time.Hour, now: pushedAt.Add(2 * time.Hour), deployed: []*slipway.Deployment{known},
			edit: func(m map[string]any) {
				delete(m["repository"].(map[string]any), "pushed_at")
				delete(m, "head_commit")
			},
			wantStatus: http.StatusOK, wantID: "d-known", wantMessage: "pushed at 2019-05-15T15:19:25Z",
		},
		{
			name: "no time at all: never stale", maxAge: time.Hour, now: pushedAt.Add(24 * time.Hour), deployed: []*slipway.Deployment{manual}, edit: noTimes,
			wantStatus: http.StatusAccepted, wantMessage: "queued", wantDeploy: true,
		},
		{
			name: "pushed in the future (clock skew)", maxAge: time.Hour, now: pushedAt.Add(-3 * time.Hour), deployed: []*slipway.Deployment{manual},
			wantStatus: http.StatusAccepted, wantMessage: "queued", wantDeploy: true,
		},
		{
			name: "pushed_at of the wrong type", maxAge: time.Hour, now: pushedAt, deployed: []*slipway.Deployment{known},
			edit:       func(m map[string]any) { m["repository"].(map[string]any)["pushed_at"] = map[string]any{"evil": 1} },
			wantStatus: http.StatusBadRequest, wantMessage: "malformed push payload",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			store := newStore(t, webProject())
			for _, d := range tt.deployed {
				sqlitetest.AddDeployment(t, store, *d)
			}
			dep := &sqlitetest.Deployer{Store: store}
			target := serve(t, HandlerConfig{MaxAge: tt.maxAge, Now: func() time.Time { return now }}, store, dep)
			body := fixture(t, "push.with-new-branch.payload.json", tt.edit)
			// A new delivery id: a replay of the push under another id.
			status, resp := send(t, http.MethodPost, target, headers("X-GitHub-Delivery", fmt.Sprintf("replayed-%d", i))(body), body)
			if status != tt.wantStatus || !strings.Contains(resp.Message, tt.wantMessage) {
				t.Errorf("POST %s = %d %q, want %d %q", tt.name, status, resp.Message, tt.wantStatus, tt.wantMessage)
			}
			if ds, _ := store.Deployments(t.Context(), "web", 0); (len(ds) > len(tt.deployed)) != tt.wantDeploy {
				t.Errorf("POST %s: %d deployments after %d, want a new one: %v", tt.name, len(ds), len(tt.deployed), tt.wantDeploy)
			}
			if calls := dep.Requests(); tt.wantStatus != http.StatusBadRequest && (len(calls) != 1 || calls[0].Stale != tt.wantStale) {
				t.Errorf("POST %s: Deploy calls %+v, want one, stale: %v", tt.name, calls, tt.wantStale)
			}
			if tt.wantID != "" && (resp.Deployment != tt.wantID || len(resp.Deployments) != 1) {
				t.Errorf("POST %s: deployments %q, want the earlier %s", tt.name, resp.Deployments, tt.wantID)
			}
		})
	}

	t.Run("store error", func(t *testing.T) {
		store := newStore(t, webProject())
		dep := &sqlitetest.Deployer{Store: failingLookups{store, errors.New("database is locked")}}
		target := serve(t, HandlerConfig{MaxAge: time.Hour, Now: func() time.Time { return pushedAt.Add(2 * time.Hour) }}, store, dep)
		body := push(t, nil)
		status, resp := send(t, http.MethodPost, target, headers()(body), body)
		if ds, _ := store.Deployments(t.Context(), "web", 0); status != http.StatusInternalServerError || resp.Message != "internal error" || len(ds) != 0 {
			t.Errorf("POST with a failing store = %d %q, %d deployments; want 500 internal error and none", status, resp.Message, len(ds))
		}
	})
}

// A Deployer that returns an earlier deployment made for another delivery
// (the replay of a deployed commit under a new id) is answered 200 with a
// message saying so.
func TestReplayUnderNewID(t *testing.T) {
	store := newStore(t, webProject())
	first := sqlitetest.AddDeployment(t, store, slipway.Deployment{ID: "d-first", Project: "web", Ref: "refs/heads/master", Commit: commit,
		Trigger: slipway.TriggerWebhook, DeliveryID: "original"})
	// The window off: the Deployer, not the window, spots this replay.
	target := serve(t, HandlerConfig{Deployer: replayingDeployer{earlier: first}, MaxAge: -1}, store, nil)
	body := push(t, nil)
	status, resp := send(t, http.MethodPost, target, headers("X-GitHub-Delivery", "replayed")(body), body)
	if status != http.StatusOK || resp.Deployment != "d-first" ||
		resp.Message != "replay of an earlier push: commit 6113728f27ae of master was already deployed as d-first, nothing new was queued" {
		t.Errorf("replay = %d %+v, want 200 naming d-first", status, resp)
	}
}

// A push of MaxCommits (10,000) commits, ~10 MB, is one deployment of
// its head commit; the commits array is not walked beyond finding the
// push's time. (One more commit is refused: TestListBounds.)
func TestHugeCommitsArray(t *testing.T) {
	body := fixture(t, "push.with-new-branch.payload.json", func(m map[string]any) {
		c := m["commits"].([]any)[0]
		commits := make([]any, MaxCommits)
		for i := range commits {
			commits[i] = c
		}
		m["commits"] = commits
	})
	t.Logf("payload of %d bytes", len(body))
	target, dep := newServer(t, HandlerConfig{MaxAge: time.Hour}, webProject())
	status, resp := send(t, http.MethodPost, target, headers()(body), body)
	if status != http.StatusAccepted || len(dep.Requests()) != 1 || dep.Requests()[0].Commit != commit {
		t.Errorf("POST a push of %d commits = %d %q, Deploy calls %+v; want 202 and one deployment of %s", MaxCommits, status, resp.Message, dep.Requests(), commit)
	}
}
