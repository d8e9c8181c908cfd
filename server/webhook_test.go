package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/github"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// TestMountWebhooks: the shared URL and a project's own URL both reach the
// webhook handler; a ping signed with the project's secret is a pong on
// both, and an unknown hook id is a 401.
func TestMountWebhooks(t *testing.T) {
	store := sqlitetest.Open(t)
	p := sqlitetest.AddProject(t, store, slipway.Project{Name: "web", Repo: "https://github.com/acme/web", WebhookSecret: "s3cret"})
	mux := http.NewServeMux()
	mountWebhooks(mux, github.NewHandler(github.HandlerConfig{Store: store, Deployer: &sqlitetest.Deployer{Store: store}, Logger: slog.New(slog.DiscardHandler)}))
	mux.Handle("/", http.NotFoundHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	body := []byte(`{"zen": "Keep it logically awesome.", "hook_id": 1, "repository": {"clone_url": "https://github.com/acme/web.git"}}`)
	for _, tc := range []struct {
		path       string
		wantStatus int
	}{
		{github.Path, http.StatusOK},
		{github.Path + "/" + p.HookID, http.StatusOK},
		{github.Path + "/0123456789abcdef0123456789abcdef", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+tc.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "ping")
		req.Header.Set("X-GitHub-Delivery", "d-1")
		req.Header.Set("X-Hub-Signature-256", github.Sign("s3cret", body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var r github.Response
		if err := json.Unmarshal(raw, &r); err != nil || resp.StatusCode != tc.wantStatus {
			t.Errorf("POST %s = %d %q, want %d and the webhook handler's JSON", tc.path, resp.StatusCode, raw, tc.wantStatus)
		}
	}
}
