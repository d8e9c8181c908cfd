package github

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-ci/slipway"
)

// recordingPreviewer records what the handler asks of it. The handler's
// own work (verifying, parsing, choosing projects) runs for real over a
// real socket and store; the previews' side is server.previews' and is
// tested end to end in e2e TestPreviews.
type recordingPreviewer struct {
	mu     sync.Mutex
	opened []slipway.PreviewRequest
	closed []int
}

func (p *recordingPreviewer) OpenPreview(_ context.Context, req slipway.PreviewRequest) (*slipway.Deployment, slipway.DeployOutcome, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opened = append(p.opened, req)
	return &slipway.Deployment{ID: "dep-" + req.HeadSHA[:7], Project: req.Project, Preview: req.Number}, slipway.DeployCreated, nil
}

func (p *recordingPreviewer) ClosePreview(_ context.Context, project string, n int) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = append(p.closed, n)
	return true, nil
}

// giteaPullRequest is the shape of a Gitea (and Forgejo) pull_request
// delivery: "synchronized", the number at the top and in pull_request, the
// head's ref and sha, the base, and no X-Hub-Signature-256.
const giteaPullRequest = `{
  "action": "synchronized",
  "number": 4,
  "pull_request": {
    "id": 17, "number": 4, "title": "Try a thing", "state": "open", "merged": false,
    "head": {"label": "feature", "ref": "feature", "sha": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "repo": {"id": 3, "full_name": "someone/hello-world", "clone_url": "https://gitea.example/someone/hello-world.git"}},
    "base": {"label": "master", "ref": "master", "sha": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
      "repo": {"id": 2, "full_name": "codertocat/hello-world", "clone_url": "https://github.com/codertocat/hello-world.git"}}
  },
  "repository": {"id": 2, "full_name": "codertocat/hello-world", "clone_url": "https://github.com/codertocat/hello-world.git",
    "html_url": "https://github.com/codertocat/hello-world", "default_branch": "master"},
  "sender": {"login": "someone"}
}`

func TestPullRequestPreviews(t *testing.T) {
	const headSHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	for _, tc := range []struct {
		name        string
		body        func(t *testing.T) []byte
		headers     func([]byte) http.Header
		project     *slipway.Project
		wantStatus  int
		wantMessage string
		wantOpened  *slipway.PreviewRequest
		wantClosed  int
	}{
		{
			name: "opened", body: func(t *testing.T) []byte { return fixture(t, "pull_request.opened.payload.json", nil) },
			headers:    headers("X-GitHub-Event", "pull_request"),
			wantStatus: http.StatusAccepted, wantMessage: "preview of pull request #2 at ec26c3e57ca3: deployment dep-ec26c3e queued",
			wantOpened: &slipway.PreviewRequest{Project: "web", Number: 2, HeadSHA: headSHA, HeadBranch: "changes", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		},
		{
			name: "synchronize", body: func(t *testing.T) []byte { return fixture(t, "pull_request.synchronize.payload.json", nil) },
			headers:    headers("X-GitHub-Event", "pull_request"),
			wantStatus: http.StatusAccepted, wantMessage: "preview of pull request #2",
			wantOpened: &slipway.PreviewRequest{Project: "web", Number: 2, HeadSHA: headSHA, HeadBranch: "changes", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		},
		{
			name: "reopened", body: func(t *testing.T) []byte {
				return fixture(t, "pull_request.opened.payload.json", func(m map[string]any) { m["action"] = "reopened" })
			},
			headers:    headers("X-GitHub-Event", "pull_request"),
			wantStatus: http.StatusAccepted, wantMessage: "preview of pull request #2",
			wantOpened: &slipway.PreviewRequest{Project: "web", Number: 2, HeadSHA: headSHA, HeadBranch: "changes", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		},
		{
			name: "closed", body: func(t *testing.T) []byte { return fixture(t, "pull_request.closed.payload.json", nil) },
			headers:    headers("X-GitHub-Event", "pull_request"),
			wantStatus: http.StatusOK, wantMessage: "pull request #2 closed: its preview was removed", wantClosed: 2,
		},
		{
			name: "closed into another branch still cleans up", body: func(t *testing.T) []byte { return fixture(t, "pull_request.closed.payload.json", nil) },
			headers:    headers("X-GitHub-Event", "pull_request"),
			project:    &slipway.Project{Name: "web", Repo: "https://github.com/codertocat/hello-world", Branch: "release/*", WebhookSecret: secret},
			wantStatus: http.StatusOK, wantMessage: "its preview was removed", wantClosed: 2,
		},
		{
			name: "gitea synchronized", body: func(*testing.T) []byte { return []byte(giteaPullRequest) },
			headers: func(body []byte) http.Header {
				h := headers("X-GitHub-Event", "", "X-GitHub-Delivery", "", "X-Hub-Signature-256", "")(body)
				h.Set("X-Gitea-Event", "pull_request")
				h.Set("X-Gitea-Delivery", "4b9c1f52-0000-4000-8000-000000000004")
				h.Set("X-Gitea-Signature", strings.TrimPrefix(Sign(secret, body), "sha256="))
				return h
			},
			wantStatus: http.StatusAccepted, wantMessage: "preview of pull request #4 at aaaaaaaaaaaa",
			wantOpened: &slipway.PreviewRequest{Project: "web", Number: 4, HeadSHA: strings.Repeat("a", 40), HeadBranch: "feature", DeliveryID: "4b9c1f52-0000-4000-8000-000000000004"},
		},
		{
			name: "labeled", body: func(t *testing.T) []byte {
				return fixture(t, "pull_request.opened.payload.json", func(m map[string]any) { m["action"] = "labeled" })
			},
			headers:    headers("X-GitHub-Event", "pull_request"),
			wantStatus: http.StatusAccepted, wantMessage: `pull request #2: action "labeled" ignored`,
		},
		{
			name: "base the project does not deploy", body: func(t *testing.T) []byte { return fixture(t, "pull_request.opened.payload.json", nil) },
			headers:    headers("X-GitHub-Event", "pull_request"),
			project:    &slipway.Project{Name: "web", Repo: "https://github.com/codertocat/hello-world", Branch: "release/*", WebhookSecret: secret},
			wantStatus: http.StatusAccepted, wantMessage: "pull request #2 into master: no preview, the project deploys release/*",
		},
		{
			name: "head that is no SHA", body: func(t *testing.T) []byte {
				return fixture(t, "pull_request.opened.payload.json", func(m map[string]any) {
					m["pull_request"].(map[string]any)["head"].(map[string]any)["sha"] = "changes"
				})
			},
			headers:    headers("X-GitHub-Event", "pull_request"),
			wantStatus: http.StatusBadRequest, wantMessage: `invalid commit "changes" in the pull request's head.sha`,
		},
		{
			name: "no number", body: func(t *testing.T) []byte {
				return fixture(t, "pull_request.opened.payload.json", func(m map[string]any) {
					delete(m, "number")
					delete(m["pull_request"].(map[string]any), "number")
				})
			},
			headers:    headers("X-GitHub-Event", "pull_request"),
			wantStatus: http.StatusBadRequest, wantMessage: "without a pull request number",
		},
		{
			name: "wrong signature", body: func(t *testing.T) []byte { return fixture(t, "pull_request.opened.payload.json", nil) },
			headers:    headers("X-GitHub-Event", "pull_request", "X-Hub-Signature-256", Sign("not the secret", []byte("x"))),
			wantStatus: http.StatusUnauthorized, wantMessage: "does not match the payload",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prev := &recordingPreviewer{}
			project := tc.project
			if project == nil {
				project = webProject()
			}
			url, dep := newServer(t, HandlerConfig{Previews: prev}, project)
			body := tc.body(t)
			status, resp := send(t, http.MethodPost, url, tc.headers(body), body)
			if status != tc.wantStatus || !strings.Contains(resp.Message, tc.wantMessage) {
				t.Errorf("= %d %q, want %d and a message with %q", status, resp.Message, tc.wantStatus, tc.wantMessage)
			}
			switch {
			case tc.wantOpened == nil && len(prev.opened) > 0:
				t.Errorf("opened %+v, want nothing opened", prev.opened)
			case tc.wantOpened != nil && (len(prev.opened) != 1 || prev.opened[0] != *tc.wantOpened):
				t.Errorf("opened %+v, want %+v", prev.opened, *tc.wantOpened)
			}
			if want := tc.wantClosed; (want == 0 && len(prev.closed) > 0) || (want != 0 && (len(prev.closed) != 1 || prev.closed[0] != want)) {
				t.Errorf("closed %v, want %d (0: none)", prev.closed, want)
			}
			if n := len(dep.Requests()); n != 0 {
				t.Errorf("a pull request delivery asked the Deployer for %d deployments, want none (previews go through the Previewer)", n)
			}
		})
	}
}

// Without a Previewer a pull request delivery is verified and answered
// 202, and nothing happens.
func TestPullRequestWithoutPreviews(t *testing.T) {
	url, _ := newServer(t, HandlerConfig{}, webProject())
	body := fixture(t, "pull_request.opened.payload.json", nil)
	status, resp := send(t, http.MethodPost, url, headers("X-GitHub-Event", "pull_request")(body), body)
	if status != http.StatusAccepted || !strings.Contains(resp.Message, "this server builds no previews") {
		t.Errorf("= %d %q, want 202 saying no previews are built", status, resp.Message)
	}
}
