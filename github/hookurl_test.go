package github

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// hookServer serves the handler over a real store holding web and a
// second project of the same repository with another secret, and returns
// the shared URL, web's own webhook URL and the deployer.
func hookServer(t *testing.T, cfg HandlerConfig) (shared, own string, dep *sqlitetest.Deployer) {
	t.Helper()
	store := sqlitetest.Open(t)
	web := sqlitetest.AddProject(t, store, *webProject())
	sqlitetest.AddProject(t, store, slipway.Project{Name: "web-staging", Repo: web.Repo, Branch: "master", WebhookSecret: "another secret"})
	dep = &sqlitetest.Deployer{Store: store}
	shared = serve(t, cfg, store, dep)
	return shared, shared + "/" + web.HookID, dep
}

// TestHookURL: a delivery to a project's own webhook URL is verified with
// that project's secret before its JSON is parsed, deploys that project
// only, and an unknown id is answered as a wrong signature is.
func TestHookURL(t *testing.T) {
	const notJSON = `{"ref": "refs/heads/master", `
	badSig := "X-Hub-Signature-256 does not match the payload: the webhook's secret must be the project's webhook secret"
	tests := []struct {
		name        string
		hook        string // replaces web's hook id when set
		body        func(t *testing.T) []byte
		headers     func(body []byte) http.Header
		wantStatus  int
		wantMessage string
		wantDeploy  bool
	}{
		{
			name: "signed push", body: func(t *testing.T) []byte { return push(t, nil) }, headers: headers(),
			wantStatus: http.StatusAccepted, wantMessage: "queued", wantDeploy: true,
		},
		{
			name: "ping", body: func(t *testing.T) []byte { return fixture(t, "ping.payload.json", nil) }, headers: headers("X-GitHub-Event", "ping"),
			wantStatus: http.StatusOK, wantMessage: "pong: the webhook is set up; pushes to https://github.com/codertocat/hello-world deploy project web",
		},
		{
			name: "wrong signature", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("X-Hub-Signature-256", Sign("guess", push(t, nil))),
			wantStatus: http.StatusUnauthorized, wantMessage: badSig,
		},
		{
			name: "signed with the other project's secret", body: func(t *testing.T) []byte { return push(t, nil) },
			headers:    headers("X-Hub-Signature-256", Sign("another secret", push(t, nil))),
			wantStatus: http.StatusUnauthorized, wantMessage: badSig,
		},
		{
			name: "unknown hook id", hook: "0123456789abcdef0123456789abcdef",
			body: func(t *testing.T) []byte { return push(t, nil) }, headers: headers(),
			wantStatus: http.StatusUnauthorized, wantMessage: badSig,
		},
		{
			name: "hook id with a slash", hook: "x/y",
			body: func(t *testing.T) []byte { return push(t, nil) }, headers: headers(),
			wantStatus: http.StatusUnauthorized, wantMessage: badSig,
		},
		{
			name: "missing signature", body: func(t *testing.T) []byte { return push(t, nil) }, headers: headers("X-Hub-Signature-256", ""),
			wantStatus: http.StatusUnauthorized, wantMessage: "missing X-Hub-Signature-256 header",
		},
		{
			// Verified before parsed: broken JSON under a wrong signature
			// is a 401, not a 400.
			name: "malformed JSON, wrong signature", body: func(t *testing.T) []byte { return []byte(notJSON) },
			headers:    headers("X-Hub-Signature-256", Sign("guess", []byte(notJSON))),
			wantStatus: http.StatusUnauthorized, wantMessage: badSig,
		},
		{
			name: "malformed JSON, unknown hook id", hook: "0123456789abcdef0123456789abcdef",
			body: func(t *testing.T) []byte { return []byte(notJSON) }, headers: headers(),
			wantStatus: http.StatusUnauthorized, wantMessage: badSig,
		},
		{
			name: "malformed JSON, signed", body: func(t *testing.T) []byte { return []byte(notJSON) }, headers: headers(),
			wantStatus: http.StatusBadRequest, wantMessage: "malformed push payload",
		},
		{
			// Nor is a form body decoded before the signature is checked.
			name: "form without payload, wrong signature", body: func(t *testing.T) []byte { return []byte("x=1") },
			headers:    headers("Content-Type", "application/x-www-form-urlencoded", "X-Hub-Signature-256", Sign("guess", []byte("x=1"))),
			wantStatus: http.StatusUnauthorized, wantMessage: badSig,
		},
		{
			name: "form without payload, signed", body: func(t *testing.T) []byte { return []byte("x=1") },
			headers:    headers("Content-Type", "application/x-www-form-urlencoded"),
			wantStatus: http.StatusBadRequest, wantMessage: "form-encoded delivery without a payload field",
		},
		{
			name: "form-encoded push, signed", body: func(t *testing.T) []byte { return []byte("payload=" + url.QueryEscape(string(push(t, nil)))) },
			headers:    headers("Content-Type", "application/x-www-form-urlencoded"),
			wantStatus: http.StatusAccepted, wantMessage: "queued", wantDeploy: true,
		},
		{
			name: "branch filter mismatch", body: func(t *testing.T) []byte { return push(t, map[string]any{"ref": "refs/heads/feature"}) },
			headers:    headers(),
			wantStatus: http.StatusAccepted, wantMessage: "branch feature does not match project filter master",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shared, own, dep := hookServer(t, HandlerConfig{MaxAge: -1})
			target := own
			if tt.hook != "" {
				target = shared + "/" + tt.hook
			}
			body := tt.body(t)
			status, resp := send(t, http.MethodPost, target, tt.headers(body), body)
			if status != tt.wantStatus || !strings.Contains(resp.Message, tt.wantMessage) {
				t.Errorf("POST %s = %d %q, want %d %q", tt.name, status, resp.Message, tt.wantStatus, tt.wantMessage)
			}
			calls := dep.Requests()
			switch {
			case !tt.wantDeploy && len(calls) != 0:
				t.Errorf("POST %s: deployer called with %+v, want no call", tt.name, calls)
			case tt.wantDeploy && (len(calls) != 1 || calls[0].Project != "web"):
				t.Errorf("POST %s: deployer called with %+v, want one deployment of project web only", tt.name, calls)
			}
		})
	}
}

// TestHookURLRefusesAppSecret: the GitHub App's secret verifies deliveries
// to the shared URL only.
func TestHookURLRefusesAppSecret(t *testing.T) {
	const appSecret = "app secret"
	_, own, dep := hookServer(t, HandlerConfig{AppSecret: appSecret, MaxAge: -1})
	body := push(t, nil)
	status, resp := send(t, http.MethodPost, own, headers("X-Hub-Signature-256", Sign(appSecret, body))(body), body)
	if status != http.StatusUnauthorized || len(dep.Requests()) != 0 {
		t.Errorf("POST %s signed by the app = %d %q, %d deploys; want 401 and none", own, status, resp.Message, len(dep.Requests()))
	}
}

// TestAppSecretUnknownRepository: whoever holds the app secret may learn
// that a repository is not registered (404), unlike anyone else (401).
func TestAppSecretUnknownRepository(t *testing.T) {
	const appSecret = "app secret"
	shared, _, _ := hookServer(t, HandlerConfig{AppSecret: appSecret, MaxAge: -1})
	body := fixture(t, "push.with-new-branch.payload.json", withRepo("https://github.com/someone/elsewhere.git"))
	for _, tc := range []struct {
		secret      string
		wantStatus  int
		wantMessage string
	}{
		{appSecret, http.StatusNotFound, "no project is registered for repository https://github.com/someone/elsewhere.git"},
		{secret, http.StatusUnauthorized, "X-Hub-Signature-256 does not match the payload"},
	} {
		status, resp := send(t, http.MethodPost, shared, headers("X-Hub-Signature-256", Sign(tc.secret, body))(body), body)
		if status != tc.wantStatus || !strings.HasPrefix(resp.Message, tc.wantMessage) {
			t.Errorf("push for an unknown repository signed with %q = %d %q, want %d %q", tc.secret, status, resp.Message, tc.wantStatus, tc.wantMessage)
		}
	}
}

// TestUnknownRepositoryLooksLikeWrongSignature: on the shared URL, a
// delivery for an unregistered repository and one with a wrong signature
// get the same status and message.
func TestUnknownRepositoryLooksLikeWrongSignature(t *testing.T) {
	shared, _, _ := hookServer(t, HandlerConfig{MaxAge: -1})
	unknown := fixture(t, "push.with-new-branch.payload.json", withRepo("https://github.com/someone/elsewhere.git"))
	s1, r1 := send(t, http.MethodPost, shared, headers()(unknown), unknown)
	known := push(t, nil)
	s2, r2 := send(t, http.MethodPost, shared, headers("X-Hub-Signature-256", Sign("guess", known))(known), known)
	if s1 != http.StatusUnauthorized || s1 != s2 || r1.Message != r2.Message {
		t.Errorf("unknown repository = %d %q, wrong signature = %d %q; want the same 401", s1, r1.Message, s2, r2.Message)
	}
}

// TestListBounds: deliveries whose repositories or commits lists pass
// MaxRepositories or MaxCommits are refused with 413, verified or not;
// at the bound they are accepted.
func TestListBounds(t *testing.T) {
	repos := func(n int) func(m map[string]any) {
		return func(m map[string]any) {
			list := make([]any, n)
			for i := range list {
				list[i] = map[string]any{"full_name": "codertocat/hello-world"}
			}
			m["repositories"] = list
		}
	}
	commits := func(n int) func(m map[string]any) {
		return func(m map[string]any) {
			c := m["commits"].([]any)[0]
			list := make([]any, n)
			for i := range list {
				list[i] = c
			}
			m["commits"] = list
		}
	}
	tests := []struct {
		name, event, fixture string
		edit                 func(m map[string]any)
		own                  bool
		wantStatus           int
		wantMessage          string
	}{
		{"installation at the bound", "installation", "installation.created.payload.json", repos(MaxRepositories), false, http.StatusAccepted, "accepted"},
		{"installation past the bound", "installation", "installation.created.payload.json", repos(MaxRepositories + 1), false, http.StatusRequestEntityTooLarge, "lists 1001 repositories, more than the 1000"},
		{"installation past the bound, own URL", "installation", "installation.created.payload.json", repos(MaxRepositories + 1), true, http.StatusRequestEntityTooLarge, "lists 1001 repositories"},
		{"push past the bound", "push", "push.with-new-branch.payload.json", commits(MaxCommits + 1), false, http.StatusRequestEntityTooLarge, "lists 10001 commits, more than the 10000"},
		{"push past the bound, own URL", "push", "push.with-new-branch.payload.json", commits(MaxCommits + 1), true, http.StatusRequestEntityTooLarge, "lists 10001 commits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shared, own, _ := hookServer(t, HandlerConfig{MaxAge: -1})
			target := shared
			if tt.own {
				target = own
			}
			body := fixture(t, tt.fixture, tt.edit)
			status, resp := send(t, http.MethodPost, target, headers("X-GitHub-Event", tt.event)(body), body)
			if status != tt.wantStatus || !strings.Contains(resp.Message, tt.wantMessage) {
				t.Errorf("POST %s = %d %q, want %d %q", tt.name, status, resp.Message, tt.wantStatus, tt.wantMessage)
			}
		})
	}
}
