package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/github"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/sqlite"
)

// prPayload is octokit's pull_request fixture of action, rewritten for
// pull request n of the repository at repoURL: its head at sha (on no
// branch: the forge keeps it at refs/pull/<n>/head), into main.
func prPayload(t *testing.T, action string, n int, repoURL, sha string) []byte {
	t.Helper()
	file := "pull_request.opened.payload.json"
	if action == "closed" || action == "synchronize" {
		file = "pull_request." + action + ".payload.json"
	}
	b, err := os.ReadFile(filepath.Join("..", "github", "testdata", file))
	if err != nil {
		t.Fatalf("read the pull_request fixture: %v", err)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	p["action"], p["number"] = action, n
	pr := p["pull_request"].(map[string]any)
	pr["number"] = n
	head, base := pr["head"].(map[string]any), pr["base"].(map[string]any)
	head["sha"], head["ref"], base["ref"] = sha, "topic", "main"
	for _, repo := range []map[string]any{p["repository"].(map[string]any), head["repo"].(map[string]any), base["repo"].(map[string]any)} {
		for _, k := range []string{"clone_url", "html_url", "git_url", "ssh_url", "url"} {
			repo[k] = repoURL
		}
		repo["default_branch"] = "main"
	}
	out, _ := json.Marshal(p)
	return out
}

// sendPR sends a pull_request delivery signed with secret to the shared
// webhook URL.
func (s *serverProc) sendPR(t *testing.T, secret, delivery string, body []byte) webhookAnswer {
	t.Helper()
	return s.sendEvent(t, s.URL+github.Path, "pull_request", secret, delivery, body)
}

// buildPR sends a pull_request delivery of action for pull request n at
// sha (signed with the test project's secret) and waits for the build it
// queues to succeed.
func (s *serverProc) buildPR(t *testing.T, action string, n int, repoURL, sha string) {
	t.Helper()
	a := s.sendPR(t, "s3cret", action+"-"+strconv.Itoa(n)+"-"+sha[:7], prPayload(t, action, n, repoURL, sha))
	if a.Status != http.StatusAccepted || a.Deployment == "" {
		t.Fatalf("%s #%d = %d %q, want 202 with a deployment", action, n, a.Status, a.Message)
	}
	if d := s.waitFinished(t, "web", a.Deployment, 5*time.Minute); d.Status != "succeeded" {
		t.Fatalf("the build of #%d at %s ended %s: %s\nagent:\n%s", n, sha, d.Status, d.Error, s.agentLog("web"))
	}
}

// previewContainers lists the names of the containers of pull request
// n's preview in the app runtime of the server with dataDir.
func previewContainers(t *testing.T, dataDir string, n int) []string {
	t.Helper()
	out, err := appsPodman(dataDir, "ps", "--all", "--filter", "label=slipway.preview="+strconv.Itoa(n), "--format", "{{.Names}}").CombinedOutput()
	if err != nil {
		t.Fatalf("podman ps: %v: %s", err, out)
	}
	return strings.Fields(string(out))
}

type previewJSON struct {
	Number     int     `json:"number"`
	State      string  `json:"state"`
	HeadSHA    string  `json:"headSha"`
	URL        *string `json:"url"`
	Deployment *string `json:"deployment"`
	Status     *string `json:"status"`
}

func (s *serverProc) previews(t *testing.T, project string) []previewJSON {
	t.Helper()
	out, code := s.cli(t, "previews", project, "--json")
	var ps []previewJSON
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil {
		t.Fatalf("slipway previews %s --json: exit %d\n%s", project, code, out)
	}
	return ps
}

// waitBody requests host's app until it answers 200 with want.
func waitBody(t *testing.T, s *serverProc, addr, host, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		code, body, _ := appGet(t, addr, host)
		if code == http.StatusOK && body == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %q, want 200 %q\nserver:\n%s", host, code, body, want, s.out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// A pull request's preview, from octokit's fixture payloads signed with
// the project's webhook secret: opened builds its head (on no branch,
// fetched by refs/pull/7/head) and serves it at pr-7.web.localhost while
// web.localhost serves production; synchronize serves the new head; a
// restart keeps it serving; closed answers 404 and leaves no container;
// reopened serves again; at a start, a preview container without a record
// is removed; an idle preview is removed after --preview-ttl.
func TestPreviews(t *testing.T) {
	dataDir, listen := t.TempDir(), freeAddr(t)
	s := startServer(t, dataDir, listen, "--apps-listen", "127.0.0.1:0")
	addr := s.appsAddr(t)
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	dockerfile := "FROM " + base + "\nCOPY index.html /app/index.html\nEXPOSE 8000\nCMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/app\"]\n"
	dir, prod := testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfile, "index.html": "production\n"})
	repoURL := "file://" + dir
	s.addProject(t, "web", repoURL, "--webhook-secret", "s3cret")
	s.deployWait(t, "web", prod)
	waitBody(t, s, addr, "web.localhost", "production\n")

	testenv.Git(t, dir, "checkout", "--quiet", "--detach")
	sha1 := testenv.Commit(t, dir, map[string]string{"index.html": "preview one\n"})
	testenv.Git(t, dir, "update-ref", "refs/pull/7/head", sha1)
	s.buildPR(t, "opened", 7, repoURL, sha1)
	waitBody(t, s, addr, "pr-7.web.localhost", "preview one\n")
	waitBody(t, s, addr, "web.localhost", "production\n")
	ps := s.previews(t, "web")
	if len(ps) != 1 || ps[0].Number != 7 || ps[0].HeadSHA != sha1 || ps[0].Status == nil || *ps[0].Status != "succeeded" ||
		ps[0].URL == nil || !strings.HasPrefix(*ps[0].URL, "http://pr-7.web.localhost:") {
		t.Errorf("slipway previews web = %+v, want #7 at %s, succeeded, at pr-7.web.localhost", ps, sha1)
	}
	if code, body, _ := appGet(t, addr, "pr-8.web.localhost"); code != http.StatusNotFound || !strings.Contains(body, "has no preview") {
		t.Errorf("a pull request without a preview: %d %q, want 404 saying so", code, body)
	}

	sha2 := testenv.Commit(t, dir, map[string]string{"index.html": "preview two\n"})
	testenv.Git(t, dir, "update-ref", "refs/pull/7/head", sha2)
	s.buildPR(t, "synchronize", 7, repoURL, sha2)
	waitBody(t, s, addr, "pr-7.web.localhost", "preview two\n")
	if deps, _ := s.cli(t, "deployments", "web"); !strings.Contains(deps, "(pr-7)") {
		t.Errorf("slipway deployments does not mark the preview's builds:\n%s", deps)
	}

	s.stop(t)
	s = startServer(t, dataDir, listen, "--apps-listen", "127.0.0.1:0")
	addr = s.appsAddr(t)
	waitBody(t, s, addr, "pr-7.web.localhost", "preview two\n")
	waitBody(t, s, addr, "web.localhost", "production\n")

	if n := len(previewContainers(t, dataDir, 7)); n == 0 {
		t.Fatal("no container of the preview before it closed: the check below would prove nothing")
	}
	if a := s.sendPR(t, "s3cret", "pr-closed", prPayload(t, "closed", 7, repoURL, sha2)); a.Status != http.StatusOK {
		t.Fatalf("closed = %d %q, want 200", a.Status, a.Message)
	}
	if code, body, _ := appGet(t, addr, "pr-7.web.localhost"); code != http.StatusNotFound || !strings.Contains(body, "has no preview") {
		t.Errorf("after closed: %d %q, want 404 saying there is no preview", code, body)
	}
	if left := previewContainers(t, dataDir, 7); len(left) != 0 {
		t.Errorf("after closed, the preview's containers are left: %v", left)
	}
	if ps := s.previews(t, "web"); len(ps) != 0 {
		t.Errorf("after closed, slipway previews lists %+v", ps)
	}
	waitBody(t, s, addr, "web.localhost", "production\n")

	// Reopened: its head was built already, so it serves at once.
	if a := s.sendPR(t, "s3cret", "pr-reopened", prPayload(t, "reopened", 7, repoURL, sha2)); a.Status/100 != 2 {
		t.Fatalf("reopened = %d %q, want 2xx", a.Status, a.Message)
	}
	waitBody(t, s, addr, "pr-7.web.localhost", "preview two\n")

	// Pull request 9's preview serves, then its record is lost while the
	// server is down: the next start removes its containers.
	testenv.Git(t, dir, "update-ref", "refs/pull/9/head", sha2)
	s.buildPR(t, "opened", 9, repoURL, sha2)
	waitBody(t, s, addr, "pr-9.web.localhost", "preview two\n")
	if len(previewContainers(t, dataDir, 9)) == 0 {
		t.Fatal("no container of preview #9: the check below would prove nothing")
	}
	s.stop(t)
	db, err := sqlite.Open(filepath.Join(dataDir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeletePreview(t.Context(), "web", 9); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = startServer(t, dataDir, listen, "--apps-listen", "127.0.0.1:0", "--preview-ttl", "5s")
	addr = s.appsAddr(t)
	if left := previewContainers(t, dataDir, 9); len(left) != 0 {
		t.Errorf("the containers of preview #9, which has no record, are left after a start: %v", left)
	}
	deadline := time.Now().Add(time.Minute)
	for len(s.previews(t, "web")) > 0 || len(previewContainers(t, dataDir, 7)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the idle preview is still there a minute after a restart with --preview-ttl 5s: %+v, containers %v\nserver:\n%s",
				s.previews(t, "web"), previewContainers(t, dataDir, 7), s.out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(s.out.String(), "preview idle past the preview TTL") {
		t.Errorf("the server did not log why it removed the preview:\n%s", s.out)
	}
	waitBody(t, s, addr, "web.localhost", "production\n")
}
