package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/registry"
)

const manifestAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json"

// The credentials of the tests' registries, each granting what a real
// holder of its kind gets (see server.registryAccess).
const (
	serverSecret   = "server-secret"
	agentPSecret   = "agent-p-secret"
	pushBaseSecret = "push-base-secret"
	pullBaseSecret = "pull-base-secret"
)

var (
	pull     = []registry.Action{registry.Pull}
	pushPull = []registry.Action{registry.Pull, registry.Push}
)

func authenticate(_ context.Context, secret string) (*registry.Access, error) {
	switch secret {
	case serverSecret:
		return &registry.Access{Who: "server", Rules: []registry.Rule{{Repo: "*", Actions: []registry.Action{registry.Pull, registry.Push, registry.Delete}}}}, nil
	case agentPSecret:
		return &registry.Access{Who: "agent of p", Rules: []registry.Rule{{Repo: "p", Actions: pushPull}, {Repo: "base/*", Actions: pull}}}, nil
	case pushBaseSecret:
		return &registry.Access{Who: "push:base/*", Rules: []registry.Rule{{Repo: "base/*", Actions: pushPull}}}, nil
	case pullBaseSecret:
		return &registry.Access{Who: "pull:base/*", Rules: []registry.Rule{{Repo: "base/*", Actions: pull}}}, nil
	}
	return nil, errors.New("unknown")
}

func newRegistry(t *testing.T) (*registry.Registry, string) {
	t.Helper()
	root := t.TempDir()
	reg, err := registry.New(t.Context(), registry.Config{RootDir: root, Authenticate: authenticate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg, root
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// call sends one request to h as the holder of secret ("" for none) from
// a loopback address, and returns the recorded answer.
func call(h http.Handler, method, target, secret string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	req.RemoteAddr = "127.0.0.1:4321"
	if secret != "" {
		req.Header.Set("Authorization", basic("anyone", secret))
	}
	if strings.Contains(target, "/manifests/") {
		req.Header.Set("Accept", manifestAccept)
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// image is a tiny OCI image: a config blob and a manifest naming it.
func image(t *testing.T, note string) (config, manifest []byte) {
	t.Helper()
	config = []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{"Labels":{"note":"` + note + `"}}}`)
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digestOf(config), "size": len(config)},
		"layers":        []any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return config, manifest
}

// push uploads an image to repo:tag as secret's holder and returns the
// status of the manifest's PUT (the blob's if that failed already).
func push(t *testing.T, h http.Handler, secret, repo, tag, note string) int {
	t.Helper()
	config, manifest := image(t, note)
	rec := call(h, "POST", "/v2/"+repo+"/blobs/uploads/", secret, nil)
	if rec.Code != http.StatusAccepted {
		return rec.Code
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", digestOf(config))
	rec = call(h, "PUT", loc.Path+"?"+q.Encode(), secret, config)
	if rec.Code != http.StatusCreated {
		return rec.Code
	}
	return call(h, "PUT", "/v2/"+repo+"/manifests/"+tag, secret, manifest).Code
}

// Every kind of credential may do what its holder needs and nothing else,
// checked against the real distribution behind the check.
func TestWhoMayDoWhat(t *testing.T) {
	reg, _ := newRegistry(t)
	for _, repo := range []string{"p", "q", "base/x"} {
		if code := push(t, reg, serverSecret, repo, "1", "by the server"); code != http.StatusCreated {
			t.Fatalf("the server's push to %s = %d, want 201", repo, code)
		}
	}
	_, manifest := image(t, "by the server")
	pDigest := digestOf(manifest)
	config, _ := image(t, "x")

	tests := []struct {
		name, secret, method, target string
		body                         []byte
		want                         int
	}{
		{"agent pings", agentPSecret, "GET", "/v2/", nil, http.StatusOK},
		{"agent lists the catalog", agentPSecret, "GET", "/v2/_catalog", nil, http.StatusOK},
		{"agent pulls its own", agentPSecret, "GET", "/v2/p/manifests/1", nil, http.StatusOK},
		{"agent pulls a base", agentPSecret, "GET", "/v2/base/x/manifests/1", nil, http.StatusOK},
		{"agent pulls another project's", agentPSecret, "GET", "/v2/q/manifests/1", nil, http.StatusForbidden},
		{"agent lists another project's tags", agentPSecret, "GET", "/v2/q/tags/list", nil, http.StatusForbidden},
		{"agent starts an upload to another project", agentPSecret, "POST", "/v2/q/blobs/uploads/", nil, http.StatusForbidden},
		{"agent pushes a base", agentPSecret, "POST", "/v2/base/x/blobs/uploads/?digest=" + digestOf(config), config, http.StatusForbidden},
		{"agent mounts another project's blob", agentPSecret, "POST", "/v2/p/blobs/uploads/?mount=" + digestOf(config) + "&from=q", nil, http.StatusForbidden},
		{"agent deletes its own manifest", agentPSecret, "DELETE", "/v2/p/manifests/" + pDigest, nil, http.StatusForbidden},
		{"push:base/* pulls another project's", pushBaseSecret, "GET", "/v2/p/manifests/1", nil, http.StatusForbidden},
		{"push:base/* pushes a project", pushBaseSecret, "POST", "/v2/p/blobs/uploads/", nil, http.StatusForbidden},
		{"push:base/* pulls a base", pushBaseSecret, "GET", "/v2/base/x/manifests/1", nil, http.StatusOK},
		{"push:base/* deletes a base", pushBaseSecret, "DELETE", "/v2/base/x/manifests/" + pDigest, nil, http.StatusForbidden},
		{"pull:base/* pulls a base", pullBaseSecret, "GET", "/v2/base/x/manifests/1", nil, http.StatusOK},
		{"pull:base/* pushes a base", pullBaseSecret, "POST", "/v2/base/x/blobs/uploads/", nil, http.StatusForbidden},
		{"nobody pings", "", "GET", "/v2/", nil, http.StatusUnauthorized},
		{"nobody pulls", "", "GET", "/v2/p/manifests/1", nil, http.StatusUnauthorized},
		{"nobody deletes", "", "DELETE", "/v2/p/manifests/" + pDigest, nil, http.StatusUnauthorized},
		{"nobody lists the catalog", "", "GET", "/v2/_catalog", nil, http.StatusUnauthorized},
		{"a wrong credential pings", "nope", "GET", "/v2/", nil, http.StatusUnauthorized},
		{"nobody asks outside the API", "", "GET", "/elsewhere", nil, http.StatusUnauthorized},
		// Last: the server deletes.
		{"the server deletes", serverSecret, "DELETE", "/v2/p/manifests/" + pDigest, nil, http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := call(reg, tt.method, tt.target, tt.secret, tt.body)
			if rec.Code != tt.want {
				t.Fatalf("%s %s = %d (%s), want %d", tt.method, tt.target, rec.Code, strings.TrimSpace(rec.Body.String()), tt.want)
			}
			if tt.want == http.StatusUnauthorized {
				wantChallenge(t, rec)
			}
		})
	}
	// The agent's push to its own repository works, and to another's not.
	if code := push(t, reg, agentPSecret, "p", "2", "by p's agent"); code != http.StatusCreated {
		t.Errorf("the agent's push to its own repository = %d, want 201", code)
	}
	if code := push(t, reg, agentPSecret, "q", "1", "by p's agent"); code != http.StatusForbidden {
		t.Errorf("the agent's push over another project's tag = %d, want 403", code)
	}
	if code := push(t, reg, pushBaseSecret, "base/y", "1", "by a user"); code != http.StatusCreated {
		t.Errorf("a push:base/* token's push to base/y = %d, want 201", code)
	}
	rec := call(reg, "GET", "/v2/q/manifests/1", serverSecret, nil)
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), manifest) {
		t.Errorf("q:1 after the denied overwrite = %d %s, want the server's manifest", rec.Code, rec.Body)
	}
}

// wantChallenge checks a 401: a basic-auth challenge (so podman and docker
// send their login's password) and one UNAUTHORIZED error.
func wantChallenge(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if got, want := rec.Header().Get("WWW-Authenticate"), `Basic realm="slipway"`; got != want {
		t.Errorf("WWW-Authenticate = %q, want %q", got, want)
	}
	var body struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Code != "UNAUTHORIZED" {
		t.Errorf("401 body = %s, want one UNAUTHORIZED error (%v)", rec.Body, err)
	}
}

// The credential may come as a bearer token or as the password of basic
// auth with any user name; loopback earns nothing.
func TestCredentialForms(t *testing.T) {
	reg, _ := newRegistry(t)
	tests := []struct {
		name, remote, auth string
		want               int
	}{
		{"bearer", "127.0.0.1:1", "Bearer " + serverSecret, http.StatusOK},
		{"basic", "10.1.2.3:1", basic("whoever", serverSecret), http.StatusOK},
		{"basic without user", "[::1]:1", basic("", serverSecret), http.StatusOK},
		{"secret as the user", "127.0.0.1:1", basic(serverSecret, ""), http.StatusUnauthorized},
		{"loopback without", "127.0.0.1:1", "", http.StatusUnauthorized},
		{"v6 loopback without", "[::1]:1", "", http.StatusUnauthorized},
		{"empty bearer", "127.0.0.1:1", "Bearer ", http.StatusUnauthorized},
		{"other scheme", "127.0.0.1:1", "Token " + serverSecret, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/v2/", nil)
			req.RemoteAddr = tt.remote
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("GET /v2/ from %s with %q = %d, want %d", tt.remote, tt.auth, rec.Code, tt.want)
			}
			if tt.want == http.StatusUnauthorized {
				wantChallenge(t, rec)
			}
		})
	}
}

func TestMatchRepo(t *testing.T) {
	tests := []struct {
		pattern, repo string
		want          bool
	}{
		{"base/*", "base/busybox", true},
		{"base/*", "base/a/b", true},
		{"base/*", "base", false},
		{"base/*", "basement/x", false},
		{"*", "anything/at/all", true},
		{"p", "p", true},
		{"p", "p/x", false},
		{"p", "pp", false},
		{"team-*/app", "team-a/app", true},
		{"team-*/app", "team-a/other", false},
	}
	for _, tt := range tests {
		if got := registry.MatchRepo(tt.pattern, tt.repo); got != tt.want {
			t.Errorf("MatchRepo(%q, %q) = %v, want %v", tt.pattern, tt.repo, got, tt.want)
		}
	}
}

// buildah pushes a real image with its login (an auth file) and the
// registry serves it back.
func TestPushAndPullManifest(t *testing.T) {
	reg, root := newRegistry(t)
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	testenv.LogIn(t, host, pushBaseSecret)

	p := testenv.Builder(t)
	start := time.Now()
	ref := testenv.BaseImage(t, p, host)
	t.Logf("import + push of the busybox base: %v", time.Since(start))

	// Push again: everything is there already, so this measures the no-op push.
	start = time.Now()
	digest, err := p.Push(t.Context(), ref, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("push of an unchanged image: %v (digest %s)", time.Since(start), digest)

	get := func(path string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Accept", manifestAccept)
		req.SetBasicAuth("x", pullBaseSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body
	}
	resp, body := get("/v2/base/busybox/manifests/1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest: %s: %s", resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != digest {
		t.Errorf("Docker-Content-Digest = %q, want the pushed digest %q", got, digest)
	}
	var m struct {
		SchemaVersion int `json:"schemaVersion"`
		Layers        []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("manifest: %v: %s", err, body)
	}
	if m.SchemaVersion != 2 || len(m.Layers) != 1 || m.Layers[0].Size == 0 {
		t.Fatalf("manifest = %s, want schema 2 with one non-empty layer", body)
	}
	if resp, body := get("/v2/base/busybox/blobs/" + m.Layers[0].Digest); resp.StatusCode != http.StatusOK || int64(len(body)) != m.Layers[0].Size {
		t.Errorf("GET blob: %s, %d bytes, want 200 and %d bytes", resp.Status, len(body), m.Layers[0].Size)
	}
	if _, err := os.Stat(filepath.Join(root, "docker", "registry", "v2", "repositories", "base", "busybox")); err != nil {
		t.Errorf("repository not stored under RootDir: %v", err)
	}
	if _, body := get("/v2/base/busybox/tags/list"); !strings.Contains(string(body), `"1"`) {
		t.Errorf("tags/list = %s, want tag 1", body)
	}
}

func TestRestartKeepsImages(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	reg, err := registry.New(ctx, registry.Config{RootDir: root, Authenticate: authenticate})
	if err != nil {
		t.Fatal(err)
	}
	if code := push(t, reg, serverSecret, "p", "1", "kept"); code != http.StatusCreated {
		t.Fatalf("push = %d", code)
	}
	reg.Close()

	// A second registry on the same directory serves what the first stored.
	reg2, err := registry.New(ctx, registry.Config{RootDir: root, Authenticate: authenticate})
	if err != nil {
		t.Fatal(err)
	}
	defer reg2.Close()
	if rec := call(reg2, "HEAD", "/v2/p/manifests/1", agentPSecret, nil); rec.Code != http.StatusOK {
		t.Fatalf("HEAD manifest after restart = %d, want 200", rec.Code)
	}
}

func TestRequiresRootDirAndAuthenticate(t *testing.T) {
	if _, err := registry.New(t.Context(), registry.Config{Authenticate: authenticate}); err == nil {
		t.Error("New without RootDir succeeded")
	}
	if _, err := registry.New(t.Context(), registry.Config{RootDir: t.TempDir()}); err == nil {
		t.Error("New without Authenticate succeeded: a registry that asks nobody")
	}
}
