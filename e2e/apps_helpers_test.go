package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// marker returns a word no other process on this host has in its
// command line: an app given it (in its command) can be looked for in
// /proc.
func marker(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

// startAppsServer starts a server whose apps are served on a gateway at
// a free port, with extra flags, and pushes the base image to its
// registry: it returns the server, the gateway's address and the base
// image.
func startAppsServer(t *testing.T, extra ...string) (s *serverProc, addr, base string) {
	t.Helper()
	s = startServer(t, t.TempDir(), "127.0.0.1:0", append([]string{"--apps-listen", "127.0.0.1:0"}, extra...)...)
	return s, s.appsAddr(t), testenv.BaseImage(t, testenv.Builder(t), s.Host)
}

// httpdRepo makes a repository whose image serves body with busybox httpd
// on port 8000, from the base image at base.
func httpdRepo(t *testing.T, base, body string) (dir, sha string) {
	t.Helper()
	dockerfile := "FROM " + base + "\nCOPY index.html /app/index.html\nEXPOSE 8000\nCMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/app\"]\n"
	return testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfile, "index.html": body})
}

// echoRepo makes a repository whose image runs appecho (compiled here,
// statically) from the base image at base, answering GET / with say.
func echoRepo(t *testing.T, base, say string) (dir, sha string) {
	t.Helper()
	dockerfile := "FROM " + base + "\nCOPY appecho /appecho\nEXPOSE 8000\nCMD [\"/appecho\", \"-say\", \"" + say + "\"]\n"
	dir, _ = testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfile})
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "appecho"), "github.com/slipway-ci/slipway/e2e/appecho")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build appecho: %v\n%s", err, out)
	}
	return dir, testenv.Commit(t, dir, nil)
}

// processesWith returns the pids (and command lines) of the host's
// processes whose command line holds word.
func processesWith(word string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if err != nil || !strings.Contains(cmd, word) {
			continue
		}
		found = append(found, e.Name()+": "+cmd)
	}
	return found
}

// appInspect is a field of the container of project's app of release,
// by a podman inspect --format on the server's app runtime.
func appInspect(t *testing.T, s *serverProc, project, release, format string) string {
	t.Helper()
	out, err := appsPodman(s.DataDir, "inspect", "--format", format, "slipway-app-"+project+"-"+release).CombinedOutput()
	if err != nil {
		t.Fatalf("podman inspect %s of %s's app: %v: %s", format, project, err, out)
	}
	return strings.TrimSpace(string(out))
}

// cgroupsOf returns the cgroup directories (one per hierarchy) pid is in.
func cgroupsOf(t *testing.T, pid string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatalf("cgroups of the app's process %s: %v", pid, err)
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[2] == "/" {
			continue
		}
		ctrl := strings.TrimPrefix(strings.Split(parts[1], ",")[0], "name=")
		root := filepath.Join("/sys/fs/cgroup", ctrl)
		if parts[1] == "" {
			root = "/sys/fs/cgroup/unified"
		}
		if _, err := os.Stat(root); err != nil {
			continue
		}
		dirs = append(dirs, filepath.Join(root, parts[2]))
	}
	return dirs
}

// countLines counts the server's log lines matching re.
func countLines(s *serverProc, re string) int {
	return len(regexp.MustCompile(re).FindAllString(s.out.String(), -1))
}

// burstResult is one answer of a burst.
type burstResult struct {
	code   int
	body   string
	timing string
	err    error
}

// burst sends n concurrent GETs of / to host's app through the gateway at
// addr, released together, and returns their answers.
func burst(addr, host string, n int) []burstResult {
	res := make([]burstResult, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	c := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range res {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
			req.Host = host
			ready.Done()
			<-start
			resp, err := c.Do(req)
			if err != nil {
				res[i].err = err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			res[i] = burstResult{code: resp.StatusCode, body: string(b), timing: resp.Header.Get("Server-Timing"), err: err}
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return res
}
