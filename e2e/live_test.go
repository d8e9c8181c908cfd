package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/client"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// api is a client of s's API with its admin token.
func (s *serverProc) api() *client.Client {
	return client.New(s.URL, nil).WithToken(s.Token)
}

// The API refuses requests without a valid token with 401 and a message
// saying how to get one; webhooks keep using their signatures.
func TestAPINeedsToken(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	st, err := os.Stat(filepath.Join(s.DataDir, "admin-token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("admin token file: %v, mode %v; want 0600", err, st.Mode())
	}
	if !strings.Contains(s.out.String(), filepath.Join(s.DataDir, "admin-token")) {
		t.Errorf("the server did not say where the admin token is:\n%s", s.out)
	}
	for _, tc := range []struct{ name, authorization, want string }{
		{"missing", "", "an API token is required"},
		{"wrong", "Bearer slw_not-a-token", "invalid API token"},
	} {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(`{"query": "{ projects { name repo } }"}`))
		req.Header.Set("Content-Type", "application/json")
		if tc.authorization != "" {
			req.Header.Set("Authorization", tc.authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct {
			Data   json.RawMessage
			Errors []struct {
				Message    string
				Extensions struct{ Code string }
			}
		}
		if err := json.Unmarshal(raw, &body); err != nil || resp.StatusCode != http.StatusUnauthorized || len(body.Errors) != 1 ||
			body.Errors[0].Extensions.Code != "unauthorized" || !strings.Contains(body.Errors[0].Message, tc.want) ||
			!strings.Contains(body.Errors[0].Message, "slipway token create") || body.Data != nil {
			t.Errorf("%s token: %d %s", tc.name, resp.StatusCode, raw)
		}
	}
	// The CLI without a token (and no ./slipway-data here) says what to do.
	cmd := exec.Command(slipwayBin, "--server", s.URL, "projects")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "slipway token create") {
		t.Errorf("slipway projects without a token: %v\n%s", err, out)
	}
	// A token made with `slipway token create` works; revoked, it does not.
	created, code := s.cli(t, "token", "create", "--name", "e2e")
	token := strings.Fields(created)[0]
	if code != 0 || !strings.HasPrefix(token, slipway.TokenPrefix) {
		t.Fatalf("token create: exit %d\n%s", code, created)
	}
	if _, err := client.New(s.URL, nil).WithToken(token).Projects(t.Context()); err != nil {
		t.Errorf("the new token is refused: %v", err)
	}
}

// A build that writes a line every 50 ms is followed by subscribers that
// join mid-build: `slipway logs -f` and a WebSocket client from line 1.
// Each sees every line exactly once, in order, the same as the stored log,
// and ends when the deployment does; `logs -f` exits with its result.
func TestFollowMidBuild(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	dir, sha := testenv.GitRepo(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN for i in $(seq 1 150); do echo \"live-line-$i\"; sleep 0.05; done\nCOPY f.txt /f.txt\n",
		"f.txt":      "x\n",
	})
	s.addProject(t, "live", dir)
	out, code := s.cli(t, "deploy", "live", "--commit", sha)
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, out)
	}
	id := strings.TrimSpace(out)
	s.waitLog(t, "live", id, "live-line-20")

	// Two subscribers join mid-build.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	follow := exec.CommandContext(ctx, slipwayBin, "--server", s.URL, "--token", s.Token, "logs", "-f", id)
	var followOut, followErr bytes.Buffer
	follow.Stdout, follow.Stderr = &followOut, &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	type got struct {
		lines []slipway.LogLine
		err   error
	}
	ws := make(chan got, 1)
	go func() {
		var g got
		g.err = s.api().FollowLogs(ctx, id, 1, func(l slipway.LogLine) error {
			g.lines = append(g.lines, l)
			return nil
		})
		ws <- g
	}()
	var g got
	select {
	case g = <-ws:
	case <-ctx.Done():
		t.Fatalf("the WebSocket follow did not end\nagent:\n%s", s.agentLog("live"))
	}
	if g.err != nil {
		t.Fatalf("WebSocket follow: %v", g.err)
	}
	if err := follow.Wait(); err != nil {
		t.Fatalf("slipway logs -f: %v\n%s", err, followErr.String())
	}
	d := s.waitFinished(t, "live", id, time.Minute)
	if d.Status != "succeeded" {
		t.Fatalf("deployment %s, want succeeded", d.Status)
	}
	s.checkLogComplete(t, d)

	stored, err := s.api().Logs(t.Context(), id, 0, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.lines) != len(stored) || len(stored) < 150 {
		t.Fatalf("the subscriber got %d lines, the store has %d (want at least 150)", len(g.lines), len(stored))
	}
	var want strings.Builder
	for i, l := range g.lines {
		if l.N != int64(i+1) || l.N != stored[i].N || l.Text != stored[i].Text {
			t.Fatalf("line %d: subscriber got %d %q, store has %d %q", i, l.N, l.Text, stored[i].N, stored[i].Text)
		}
		want.WriteString(l.Text + "\n")
	}
	for i := 1; i <= 150; i++ {
		if n := strings.Count(want.String(), fmt.Sprintf("live-line-%d\n", i)); n != 1 {
			t.Errorf("live-line-%d appears %d times, want once", i, n)
		}
	}
	if followOut.String() != want.String() {
		t.Errorf("slipway logs -f printed %d bytes, want the %d of the stored log", followOut.Len(), want.Len())
	}

	// A failing build: `deploy --follow` prints its lines and exits 1, as
	// does `logs -f` afterwards.
	sha2 := testenv.Commit(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo follow-about-to-fail && exit 4\n"})
	out, code = s.cli(t, "deploy", "live", "--commit", sha2, "--follow")
	if code != 1 || !strings.Contains(out, "follow-about-to-fail") || !strings.Contains(out, "failed") {
		t.Errorf("deploy --follow of a failing build: exit %d\n%s", code, out)
	}
	failed := s.deployments(t, "live")[0]
	s.checkLogComplete(t, failed)
	if out, code := s.cli(t, "deployment", failed.ID); code != 0 || !strings.Contains(out, fmt.Sprintf("complete, %d lines", failed.LogLines)) {
		t.Errorf("slipway deployment of a failed build does not show its complete log: exit %d\n%s", code, out)
	}
	if out, code := s.cli(t, "logs", "-f", failed.ID); code != 1 || !strings.Contains(out, "follow-about-to-fail") {
		t.Errorf("logs -f of a failed deployment: exit %d\n%s", code, out)
	}
	if out, code := s.cli(t, "logs", failed.ID, "--search", "ABOUT-TO-FAIL"); code != 0 || !strings.Contains(out, "follow-about-to-fail") || strings.Contains(out, "fetching") {
		t.Errorf("logs --search: exit %d\n%s", code, out)
	}
}

// gitHTTPServer serves the bare repository made from dir over git's smart
// HTTP protocol, only to user:password.
func gitHTTPServer(t *testing.T, dir, user, password string) string {
	t.Helper()
	root := t.TempDir()
	testenv.Git(t, root, "clone", "--quiet", "--bare", dir, filepath.Join(root, "repo.git"))
	backend := &cgi.Handler{
		Path: "/usr/lib/git-core/git-http-backend",
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, pw, ok := r.BasicAuth()
		if !ok || u != user || pw != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// streamText is every line the log stream holds for a deployment.
func (s *serverProc) streamText(t *testing.T, project, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.DataDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var state struct{ NATSPort int }
	if err := json.Unmarshal(b, &state); err != nil {
		t.Fatal(err)
	}
	// As the server's own client: its NATS credential from its key.
	creds, err := credential.Load(filepath.Join(s.DataDir, credential.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := creds.Server(credential.NATS)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, m := range testenv.StreamMsgs(t, fmt.Sprintf("nats://%s@127.0.0.1:%d", tok, state.NATSPort), project, id) {
		for _, l := range m.Lines {
			text.WriteString(l.Text + "\n")
		}
	}
	return text.String()
}

// lineBreak is a line's end and the next line's "[phase] " prefix in the
// agent's stdout.
var lineBreak = regexp.MustCompile(`\n(\[(fetch|build|push)\] )?`)

// A secret in the repository URL's credentials, printed by the build in
// plain, base64 and URL-encoded form, and across the 16 KiB cut of a long
// line, reaches none of the log's sinks: the stream, the store, the
// agent's stdout.
func TestRedactionInEverySink(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	const secret = "S3cr3t p@ss/word+x"
	encoded := url.QueryEscape(secret)
	b64 := base64.StdEncoding.EncodeToString([]byte(secret))
	// The build prints the secret from files, so that the Dockerfile's
	// own text (kept as the step list) does not hold it.
	dir, sha := testenv.GitRepo(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY s /s\nRUN cat /s/plain && echo && cat /s/urlenc && echo && base64 /s/plain && printf '%16380s' '' && cat /s/plain && printf '%70000s' '' && echo && echo redaction-done\n",
		"s/plain":    secret,
		"s/urlenc":   encoded,
	})
	gitURL := gitHTTPServer(t, dir, "ci", secret)
	repo := strings.Replace(gitURL, "http://", "http://ci:"+strings.ReplaceAll(encoded, "+", "%20")+"@", 1) + "/repo.git"
	s.addProject(t, "secretive", repo)
	d := s.deployWait(t, "secretive", sha)
	if d.Status != "succeeded" {
		t.Fatalf("deployment %s", d.Status)
	}
	forms := map[string]string{"plain": secret, "URL-encoded": encoded, "URL-encoded in the remote URL": strings.ReplaceAll(encoded, "+", "%20"), "base64": b64}
	stored, _ := s.cli(t, "logs", d.ID)
	sinks := map[string]string{
		"stored log":   stored,
		"stream":       s.streamText(t, "secretive", d.ID),
		"agent stdout": s.agentLog("secretive"),
	}
	for sink, text := range sinks {
		if !strings.Contains(text, "redaction-done") {
			t.Errorf("%s lacks the build's output:\n%s", sink, text)
			continue
		}
		// A line longer than 16 KiB is cut into several: the secret
		// printed across the cut must not show when they are joined.
		joined := lineBreak.ReplaceAllString(text, "")
		for form, v := range forms {
			if strings.Contains(text, v) || strings.Contains(joined, v) {
				t.Errorf("%s shows the secret %s (%q):\n%s", sink, form, v, text)
			}
		}
		if n := strings.Count(joined, "[redacted]"); n < 5 { // the mask itself may be cut
			t.Errorf("%s has %d [redacted] marks, want the fetch line's URL, the three printed forms and the secret across 16 KiB:\n%.2000s", sink, n, text)
		}
	}
}
