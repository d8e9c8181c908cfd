package registry_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/registry"
)

const manifestAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json"

func newRegistry(t *testing.T, token string) (*registry.Registry, string) {
	t.Helper()
	root := t.TempDir()
	reg, err := registry.New(t.Context(), registry.Config{RootDir: root, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg, root
}

func TestPushAndPullManifest(t *testing.T) {
	reg, root := newRegistry(t, "s3cret")
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

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

	req, _ := http.NewRequest("GET", srv.URL+"/v2/base/busybox/manifests/1", nil)
	req.Header.Set("Accept", manifestAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest: %s: %s", resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != digest {
		t.Errorf("Docker-Content-Digest = %q, want the pushed digest %q", got, digest)
	}
	var m struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Layers        []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("manifest: %v: %s", err, body)
	}
	if m.SchemaVersion != 2 || len(m.Layers) != 1 || m.Layers[0].Size == 0 {
		t.Errorf("manifest = %s, want schema 2 with one non-empty layer", body)
	}

	// The blob is served too, and lives under RootDir.
	resp, err = http.Get(srv.URL + "/v2/base/busybox/blobs/" + m.Layers[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n != m.Layers[0].Size {
		t.Errorf("GET blob: %s, %d bytes, want 200 and %d bytes", resp.Status, n, m.Layers[0].Size)
	}
	if _, err := os.Stat(filepath.Join(root, "docker", "registry", "v2", "repositories", "base", "busybox")); err != nil {
		t.Errorf("repository not stored under RootDir: %v", err)
	}

	// Tags list.
	resp, err = http.Get(srv.URL + "/v2/base/busybox/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"1"`) {
		t.Errorf("tags/list = %s, want tag 1", body)
	}
}

func TestAccessRule(t *testing.T) {
	reg, _ := newRegistry(t, "s3cret")
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	tests := []struct {
		name       string
		remoteAddr string
		auth       string
		want       int
	}{
		{"loopback v4", "127.0.0.1:1234", "", http.StatusOK},
		{"loopback v4 other", "127.9.8.7:1234", "", http.StatusOK},
		{"loopback v6", "[::1]:1234", "", http.StatusOK},
		{"remote without token", "10.1.2.3:1234", "", http.StatusUnauthorized},
		{"remote bearer", "10.1.2.3:1234", "Bearer s3cret", http.StatusOK},
		{"remote basic", "10.1.2.3:1234", basic("slipway", "s3cret"), http.StatusOK},
		{"remote wrong bearer", "10.1.2.3:1234", "Bearer nope", http.StatusUnauthorized},
		{"remote wrong basic", "10.1.2.3:1234", basic("slipway", "nope"), http.StatusUnauthorized},
		{"remote token as user", "10.1.2.3:1234", basic("s3cret", ""), http.StatusUnauthorized},
		{"remote v6", "[2001:db8::1]:1234", "", http.StatusUnauthorized},
		{"mapped v4 is not loopback", "[::ffff:10.1.2.3]:1234", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/v2/", nil)
			req.RemoteAddr = tt.remoteAddr
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("GET /v2/ from %s with %q = %d, want %d", tt.remoteAddr, tt.auth, rec.Code, tt.want)
			}
			if tt.want != http.StatusUnauthorized {
				return
			}
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			var body struct {
				Errors []struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Code != "UNAUTHORIZED" {
				t.Errorf("401 body = %s, want one UNAUTHORIZED error (%v)", rec.Body, err)
			}
		})
	}
}

func TestNoTokenRefusesRemote(t *testing.T) {
	reg, _ := newRegistry(t, "")
	req := httptest.NewRequest("GET", "/v2/", nil)
	req.RemoteAddr = "10.1.2.3:1234"
	req.Header.Set("Authorization", "Bearer ")
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("empty Token: remote request = %d, want 401", rec.Code)
	}
}

func TestRestartKeepsImages(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	reg, err := registry.New(ctx, registry.Config{RootDir: root})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	p := testenv.Builder(t)
	host := strings.TrimPrefix(srv.URL, "http://")
	testenv.BaseImage(t, p, host)
	srv.Close()
	reg.Close()

	// A second registry on the same directory serves what the first stored.
	reg2, err := registry.New(ctx, registry.Config{RootDir: root})
	if err != nil {
		t.Fatal(err)
	}
	defer reg2.Close()
	req := httptest.NewRequest("HEAD", "/v2/base/busybox/manifests/1", nil)
	req.RemoteAddr = "127.0.0.1:1234"
	req.Header.Set("Accept", manifestAccept)
	rec := httptest.NewRecorder()
	reg2.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("HEAD manifest after restart = %d, want 200", rec.Code)
	}
}

func TestRequiresRootDir(t *testing.T) {
	if _, err := registry.New(t.Context(), registry.Config{}); err == nil {
		t.Fatal("New without RootDir succeeded")
	}
}
