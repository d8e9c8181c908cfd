package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// secretCLI runs `slipway secret set` with the value on stdin.
func (s *serverProc) secretSet(t *testing.T, project, name, value string) (string, int) {
	t.Helper()
	cmd := exec.Command(slipwayBin, "--server", s.URL, "--token", s.Token, "secret", "set", project, name)
	cmd.Stdin = strings.NewReader(value + "\n")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// layerBlobs returns the uncompressed layers of host/repo:tag, fetched
// from the registry.
func layerBlobs(t *testing.T, host, repo, tag string) [][]byte {
	t.Helper()
	get := func(path string, accept string) []byte {
		resp := registryGet(t, host, "/v2/"+repo+path, accept)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	var m struct {
		Config struct{ Digest string }
		Layers []struct{ Digest, MediaType string }
	}
	raw := get("/manifests/"+tag, "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) == 0 {
		t.Fatalf("manifest: %v %s", err, raw)
	}
	out := [][]byte{get("/blobs/"+m.Config.Digest, "")}
	for _, l := range m.Layers {
		b := get("/blobs/"+l.Digest, "")
		if strings.Contains(l.MediaType, "gzip") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
		}
		out = append(out, b)
	}
	return out
}

// A project's build secret reaches a RUN --mount=type=secret step, and
// nothing else: not an image layer, not a log sink (stream, store, agent
// stdout), not a deployment's error, not Temporal's history, not the API.
// Changing it rebuilds instead of reusing the earlier image.
func TestBuildSecrets(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	const secret = "tok3n p@ss/w0rd+x"
	forms := map[string]string{
		"plain":       secret,
		"base64":      base64.StdEncoding.EncodeToString([]byte(secret)),
		"URL-encoded": strings.ReplaceAll(url.QueryEscape(secret), "+", "%20"),
	}
	// The step prints the value in plain, base64 and URL-encoded form (the
	// Dockerfile holds no form of it) and leaves only its length in the
	// image.
	print := "RUN --mount=type=secret,id=token cat /run/secrets/token && echo && base64 /run/secrets/token && " +
		`sed -e 's/%/%25/g; s/ /%20/g; s/@/%40/g; s#/#%2F#g; s/+/%2B/g' /run/secrets/token && echo && ` +
		"wc -c < /run/secrets/token > /secret-length && echo secret-step-done\n"
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\n" + print})
	s.addProject(t, "sec", dir)

	// Bad names and values are refused with a clear message.
	for name, value := range map[string]string{"a,b": secret, "id=x": secret, "../x": secret, "short": "abc"} {
		if out, code := s.secretSet(t, "sec", name, value); code == 0 || !strings.Contains(out, "invalid secret name") && !strings.Contains(out, "at least 4 bytes") {
			t.Errorf("secret set %q = %d %q; want a clear refusal", name, code, out)
		}
	}
	if out, code := s.secretSet(t, "sec", "token", secret); code != 0 {
		t.Fatalf("secret set: %d %s", code, out)
	}

	first := s.deployWait(t, "sec", sha)
	if first.Status != "succeeded" {
		t.Fatalf("build with a secret = %s", first.Status)
	}
	// The agent asked for the secrets once for the three phases, and let
	// go of them after the push.
	agentLines := strings.Split(s.agentLog("sec"), "\n")
	count := func(msg string) int {
		return len(slices.DeleteFunc(slices.Clone(agentLines), func(l string) bool {
			return !strings.Contains(l, msg) || !strings.Contains(l, "deployment="+first.ID)
		}))
	}
	if f, d := count(`msg="build secrets fetched"`), count(`msg="build secrets dropped"`); f != 1 || d != 1 {
		t.Errorf("the agent fetched the secrets %d times and dropped them %d times for one deployment, want 1 and 1:\n%s", f, d, s.agentLog("sec"))
	}
	checkNoSecret := func(what, text string) {
		t.Helper()
		for form, v := range forms {
			if strings.Contains(text, v) {
				t.Errorf("%s shows the secret (%s, %q):\n%s", what, form, v, text)
			}
		}
	}
	stored, _ := s.cli(t, "logs", first.ID)
	sinks := map[string]string{"stored log": stored, "stream": s.streamText(t, "sec", first.ID), "agent stdout": s.agentLog("sec")}
	for sink, text := range sinks {
		if !strings.Contains(text, "secret-step-done") {
			t.Errorf("%s lacks the build's output:\n%s", sink, text)
		}
		if n := strings.Count(text, "[redacted]"); n < 3 {
			t.Errorf("%s has %d [redacted] marks, want one per printed form:\n%s", sink, n, text)
		}
		checkNoSecret(sink, text)
	}

	// No layer (nor the config, with its history of commands) holds it.
	layers := layerBlobs(t, s.Host, "sec", sha)
	found := false
	for i, l := range layers {
		for form, v := range forms {
			if bytes.Contains(l, []byte(v)) {
				t.Errorf("blob %d of the pushed image holds the secret (%s)", i, form)
			}
		}
		found = found || bytes.Contains(l, []byte("secret-length"))
	}
	if !found {
		t.Errorf("no layer holds /secret-length: the layers checked are not the build's")
	}

	// The API lists names only.
	out, code := s.cli(t, "secrets", "sec", "--json")
	if code != 0 || !strings.Contains(out, `"name": "token"`) {
		t.Errorf("secrets --json = %d %s", code, out)
	}
	checkNoSecret("slipway secrets", out)
	checkNoSecret("the deployment's record", func() string { o, _ := s.cli(t, "deployment", first.ID, "--json"); return o }())

	// An unchanged secret: the identical build is reused. A changed one:
	// built again.
	second := s.deployWait(t, "sec", sha)
	if l, _ := s.cli(t, "logs", second.ID); !strings.Contains(l, "reusing its image without building") {
		t.Errorf("the second build of the same inputs was not reused:\n%s", l)
	}
	const secret2 = "n3w-t0ken-value"
	if out, code := s.secretSet(t, "sec", "token", secret2); code != 0 {
		t.Fatalf("secret set: %d %s", code, out)
	}
	third := s.deployWait(t, "sec", sha)
	l3, _ := s.cli(t, "logs", third.ID)
	if strings.Contains(l3, "reusing") || !strings.Contains(l3, "secret-step-done") {
		t.Errorf("after the secret changed the earlier image was reused, or nothing ran:\n%s", l3)
	}
	if strings.Contains(l3, secret2) {
		t.Errorf("the new value shows in the log:\n%s", l3)
	}

	// A failing step that prints the secret: the deployment's error (the
	// step's last lines) masks it.
	sha2 := testenv.Commit(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN --mount=type=secret,id=token cat /run/secrets/token && echo && base64 /run/secrets/token && exit 3\n"})
	out, _ = s.cli(t, "deploy", "sec", "--commit", sha2, "--wait")
	failed := s.deployments(t, "sec")[0]
	if failed.Status != "failed" || !strings.Contains(failed.Error, "[redacted]") {
		t.Errorf("failing build = %s, error %q; want failed with the value masked\n%s", failed.Status, failed.Error, out)
	}
	checkNoSecret2 := func(what, text string) {
		t.Helper()
		for _, v := range []string{secret2, base64.StdEncoding.EncodeToString([]byte(secret2))} {
			if strings.Contains(text, v) {
				t.Errorf("%s shows the new secret %q:\n%s", what, v, text)
			}
		}
	}
	checkNoSecret2("the failed deployment's error", failed.Error)
	l4, _ := s.cli(t, "logs", failed.ID)
	checkNoSecret2("the failed deployment's log", l4)

	// The values never went through Temporal (its history is in the data
	// directory), nor the server's own output; the store keeps them
	// encrypted.
	files, _ := filepath.Glob(filepath.Join(s.DataDir, "temporal", "*"))
	files = append(files, filepath.Join(s.DataDir, "slipway.db"), filepath.Join(s.DataDir, "slipway.db-wal"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, v := range []string{secret, secret2, base64.StdEncoding.EncodeToString([]byte(secret)), base64.StdEncoding.EncodeToString([]byte(secret2))} {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s holds a secret value %q", f, v)
			}
		}
	}
	checkNoSecret("the server's output", s.out.String())
	if fi, err := os.Stat(filepath.Join(s.DataDir, "secrets.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets.key: %v %v; want mode 0600", fi, err)
	}
	// The agent removed its secret files.
	if left, _ := filepath.Glob(filepath.Join(s.DataDir, "volumes", "sec", "work", "secrets-*")); len(left) != 0 {
		t.Errorf("secret files left on the volume: %v", left)
	}
}
