package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// appsAddr is the address of s's apps' gateway, from its banner.
func (s *serverProc) appsAddr(t *testing.T) string {
	t.Helper()
	m := appsRE.FindStringSubmatch(s.waitOutput(t, appsRE))
	return "127.0.0.1:" + m[1]
}

// appGet GETs / of host's app through the gateway at addr.
func appGet(t *testing.T, addr, host string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET / of %s: %v", host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// appsPodman is a podman command on the app runtime's storage of the
// server with dataDir.
func appsPodman(dataDir string, args ...string) *exec.Cmd {
	dir := dataDir + "/apps"
	cmd := exec.Command("podman", append([]string{"--root", dir + "/storage", "--runroot", dir + "/run", "--storage-driver", "overlay"}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+dir+"/conf/containers.conf")
	return cmd
}

// removeApps removes the apps a stopped server left running (they
// outlive the server on purpose), so that no test leaves a process.
func removeApps(t *testing.T, dataDir string) {
	if _, err := os.Stat(dataDir + "/apps/storage"); err != nil {
		return
	}
	if out, err := appsPodman(dataDir, "rm", "--all", "--force", "--time", "0").CombinedOutput(); err != nil {
		t.Errorf("remove the apps left running: %v: %s", err, out)
	}
}

// appState is the state podman reports for the container of project's
// app of release (deployment id), in the server's app runtime.
func appState(t *testing.T, s *serverProc, project, release string) string {
	t.Helper()
	out, err := appsPodman(s.DataDir, "inspect", "--format", "{{.State.Status}}", "slipway-app-"+project+"-"+release).CombinedOutput()
	if err != nil {
		return "absent: " + strings.TrimSpace(string(out))
	}
	return strings.TrimSpace(string(out))
}

// A deployed project's image serves at <project>.localhost on the apps'
// gateway: woken by its first request (Server-Timing says how), frozen
// then stopped when idle, woken again, switched to a new release by the
// next request after a deployment.
func TestApps(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0", "--apps-listen", "127.0.0.1:0", "--app-idle-timeout", "2s", "--app-stop-after", "5s")
	addr := s.appsAddr(t)
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	dockerfile := "FROM " + base + "\nCOPY index.html /app/index.html\nEXPOSE 8000\nCMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/app\"]\n"
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfile, "index.html": "version one\n"})
	s.addProject(t, "web", dir)
	if out, code := s.cli(t, "open", "web"); code != 0 || strings.TrimSpace(out) != "http://web.localhost:"+strings.TrimPrefix(addr, "127.0.0.1:") {
		t.Errorf("slipway open web: exit %d %q, want the app's URL on port %s", code, out, addr)
	}

	if code, body, _ := appGet(t, addr, "web.localhost"); code != http.StatusNotFound || !strings.Contains(body, "nothing deployed") {
		t.Errorf("before a deployment: %d %q, want 404 saying nothing is deployed", code, body)
	}
	if code, _, _ := appGet(t, addr, "nosuch.localhost"); code != http.StatusNotFound {
		t.Errorf("unknown project: %d, want 404", code)
	}
	d1 := s.deployWait(t, "web", sha)

	// The release phase started the app: the first request finds it
	// serving.
	code, body, h := appGet(t, addr, "web.localhost")
	if code != http.StatusOK || body != "version one\n" || strings.Contains(h.Get("Server-Timing"), "wake") {
		t.Fatalf("first request: %d %q Server-Timing %q, want 200 \"version one\" from the released app, no wake\nserver:\n%s", code, body, h.Get("Server-Timing"), s.out)
	}
	if code, body, h := appGet(t, addr, "web.localhost"); code != http.StatusOK || body != "version one\n" || strings.Contains(h.Get("Server-Timing"), "wake") {
		t.Errorf("second request: %d %q Server-Timing %q, want 200 without a wake", code, body, h.Get("Server-Timing"))
	}

	waitAsleep(t, s, "web", "frozen", 1)
	waitAsleep(t, s, "web", "stopped", 1)
	// Stopped and primed: created in runc, its processes not started.
	if st := appState(t, s, "web", d1.ID); st != "initialized" && st != "created" {
		t.Errorf("a stopped app's container is %q, want initialized or created (primed)", st)
	}
	code, body, h = appGet(t, addr, "web.localhost")
	if code != http.StatusOK || body != "version one\n" || !regexp.MustCompile(`wake;dur=.*start`).MatchString(h.Get("Server-Timing")) {
		t.Errorf("request to a stopped app: %d %q Server-Timing %q, want 200 woken by a start", code, body, h.Get("Server-Timing"))
	}
	t.Logf("stopped: Server-Timing: %s", h.Get("Server-Timing"))
	waitAsleep(t, s, "web", "frozen", 2)
	code, _, h = appGet(t, addr, "web.localhost")
	if code != http.StatusOK || !strings.Contains(h.Get("Server-Timing"), "thaw") {
		t.Errorf("request to a frozen app: %d Server-Timing %q, want 200 woken by a thaw", code, h.Get("Server-Timing"))
	}
	t.Logf("frozen: Server-Timing: %s", h.Get("Server-Timing"))

	sha2 := testenv.Commit(t, dir, map[string]string{"index.html": "version two\n"})
	d2 := s.deployWait(t, "web", sha2)
	if code, body, _ = appGet(t, addr, "web.localhost"); code != http.StatusOK || body != "version two\n" {
		t.Fatalf("after deployment %s: %d %q, want 200 \"version two\" at once\nserver:\n%s", d2.ID, code, body, s.out)
	}
	waitAppState(t, s, "web", d1.ID, "exited")
}

// waitAppState waits until the container of project's release is in
// state (podman's word: running, paused, exited...).
func waitAppState(t *testing.T, s *serverProc, project, release, state string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := appState(t, s, project, release)
		if st == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container of %s's release %s is %q, want %s\nserver:\n%s", project, release, st, state, s.out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitAsleep waits until the server has put project's app to sleep in
// state (frozen, stopped) n times.
func waitAsleep(t *testing.T, s *serverProc, project, state string, n int) {
	t.Helper()
	re := regexp.MustCompile(`msg="app asleep" project=` + project + ` release=\S+ state=` + state)
	deadline := time.Now().Add(time.Minute)
	for len(re.FindAllString(s.out.String(), -1)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("app %s not %s %d times within a minute\nserver:\n%s", project, state, n, s.out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
