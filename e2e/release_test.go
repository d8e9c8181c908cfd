package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// loadLoop requests host's app through the gateway at addr from a few
// clients in a loop until stop is called, which returns how many requests
// it made and the failures: any answer but a 200 whose body starts with
// "version ".
func loadLoop(addr, host string, clients int) (stop func() (n int64, failures []string)) {
	var (
		n    atomic.Int64
		mu   sync.Mutex
		errs []string
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	fail := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, s)
	}
	for range clients {
		wg.Go(func() {
			c := &http.Client{Timeout: time.Minute}
			for {
				select {
				case <-done:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
				req.Host = host
				resp, err := c.Do(req)
				n.Add(1)
				if err != nil {
					fail(fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "version ") {
					fail(fmt.Sprintf("%s: %d %q %v", time.Now().Format("15:04:05.000"), resp.StatusCode, b, err))
				}
			}
		})
	}
	return func() (int64, []string) {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return n.Load(), errs
	}
}

// A release switches without a failed request: a client loop across five
// deployments and one release that never becomes healthy gets only 200s;
// each deployment serves the moment it is recorded succeeded; the failed
// one ends failed at phase release with the app's output while the
// previous release keeps serving; a rollback wakes the kept container of
// the earlier release instead of building or starting a new one.
func TestReleaseUnderLoad(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0", "--apps-listen", "127.0.0.1:0", "--app-idle-timeout", "5m")
	addr := s.appsAddr(t)
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	serve := "FROM " + base + "\nCOPY index.html /app/index.html\nEXPOSE 8000\nCMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/app\"]\n"
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": serve, "index.html": "version 1\n"})
	s.addProject(t, "web", dir)
	s.deployWait(t, "web", sha)
	if code, body, _ := appGet(t, addr, "web.localhost"); code != http.StatusOK || body != "version 1\n" {
		t.Fatalf("after the first deployment: %d %q, want version 1\nserver:\n%s", code, body, s.out)
	}

	stop := loadLoop(addr, "web.localhost", 4)
	var ids []string
	for v := 2; v <= 6; v++ {
		sha := testenv.Commit(t, dir, map[string]string{"index.html": fmt.Sprintf("version %d\n", v)})
		d := s.deployWait(t, "web", sha)
		ids = append(ids, d.ID)
		if code, body, _ := appGet(t, addr, "web.localhost"); code != http.StatusOK || body != fmt.Sprintf("version %d\n", v) {
			t.Errorf("once deployment %s succeeded: %d %q, want version %d", d.ID, code, body, v)
		}
	}

	bad := testenv.Commit(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nEXPOSE 8000\nCMD [\"sh\", \"-c\", \"echo boom-marker: no DATABASE_URL >&2; exit 3\"]\n"})
	if out, code := s.cli(t, "deploy", "web", "--commit", bad, "--wait"); code == 0 {
		t.Errorf("deploy of an app that exits at once: exit 0, want a failure:\n%s", out)
	}
	failed := s.deployments(t, "web")[0]
	if failed.Status != "failed" || failed.FailedStep != "release" || !strings.Contains(failed.Error, "boom-marker: no DATABASE_URL") {
		t.Errorf("failed release recorded %+v, want failed at release with the app's output", failed)
	}
	if code, body, _ := appGet(t, addr, "web.localhost"); code != http.StatusOK || body != "version 6\n" {
		t.Errorf("after a failed release: %d %q, want version 6 still serving", code, body)
	}
	n, failures := stop()
	t.Logf("%d requests across 5 deployments and a failed release", n)
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed across releases, want 0; first: %v\nserver:\n%s", len(failures), n, failures[:min(len(failures), 5)], s.out)
	}
	if n < 100 {
		t.Errorf("only %d requests made: the load loop did not run", n)
	}

	// Roll back to version 5: its container is kept (stopped) and woken.
	t0 := time.Now()
	if out, code := s.cli(t, "rollback", "web", "--wait"); code != 0 {
		t.Fatalf("rollback: exit %d:\n%s", code, out)
	}
	code, body, _ := appGet(t, addr, "web.localhost")
	t.Logf("rollback: command → serving %v", time.Since(t0))
	if code != http.StatusOK || body != "version 5\n" {
		t.Fatalf("after the rollback: %d %q, want version 5", code, body)
	}
	v5 := ids[3]
	if st := appState(t, s, "web", v5); st != "running" {
		t.Errorf("the container of version 5 (%s) is %q after the rollback, want running (woken, not replaced)", v5, st)
	}
	rb := s.deployments(t, "web")[0]
	if st := appState(t, s, "web", rb.ID); !strings.HasPrefix(st, "absent") {
		t.Errorf("the rollback %s made a container of its own (%q), want the kept one reused", rb.ID, st)
	}
	waitAppState(t, s, "web", ids[4], "exited")
	// Older releases than the last three lose their containers.
	if st := appState(t, s, "web", ids[0]); !strings.HasPrefix(st, "absent") {
		t.Errorf("the container of version 2 is %q, want removed (only the last releases are kept)", st)
	}
}
