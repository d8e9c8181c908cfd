package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// A server restarted on the same data directory keeps its apps: a
// running app is adopted and keeps serving (the same process, never
// started again), a frozen one is thawed and a stopped one started by its
// next request, after a crash as well. Clients hitting two apps across
// the restart get an error only while the gateway's listener is down, and
// never the other app's answer.
func TestAppsRestart(t *testing.T) {
	dataDir := t.TempDir()
	flags := []string{"--apps-listen", freeAddr(t), "--app-idle-timeout", "3s", "--app-stop-after", "10s"}
	s := startServer(t, dataDir, "127.0.0.1:0", flags...)
	addr := s.appsAddr(t)
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	release := map[string]string{}
	for _, p := range []string{"alpha", "beta"} {
		dir, sha := httpdRepo(t, base, p+"\n")
		s.addProject(t, p, dir)
		release[p] = s.deployWait(t, p, sha).ID
	}
	l := startLoop(addr, "alpha", "beta")
	testenv.WaitFor(t, time.Minute, "both apps serving the loop", func() bool { return l.served("alpha") > 0 && l.served("beta") > 0 })
	ids := map[string]string{}
	for p, r := range release {
		ids[p] = appInspect(t, s, p, r, "{{.Id}} {{.State.Pid}} {{.State.StartedAt}}")
	}

	down := time.Now()
	s.stop(t)
	s = startServer(t, dataDir, "127.0.0.1:0", flags...)
	if a := s.appsAddr(t); a != addr {
		t.Fatalf("the restarted server's gateway is at %s, want %s (--apps-listen)", a, addr)
	}
	up := time.Now()
	served := l.served("alpha") + l.served("beta")
	testenv.WaitFor(t, time.Minute, "the loop served after the restart", func() bool { return l.served("alpha")+l.served("beta") > served+10 })
	l.stop()
	l.check(t, down, up)
	for p, r := range release {
		if now := appInspect(t, s, p, r, "{{.Id}} {{.State.Pid}} {{.State.StartedAt}}"); now != ids[p] {
			t.Errorf("%s's app after the restart: id, pid, start %q, want %q (adopted, not started again)", p, now, ids[p])
		}
	}
	if n := countLines(s, `msg="(app started|apps: starting|app woke)"`); n != 0 {
		t.Errorf("the restarted server started or woke %d apps that were serving, want none\nserver:\n%s", n, s.out)
	}

	// Asleep across a restart: alpha frozen, beta stopped.
	waitAsleep(t, s, "beta", "stopped", 1)
	if code, body, _ := appGet(t, addr, "alpha.localhost"); code != http.StatusOK || body != "alpha\n" {
		t.Fatalf("alpha after it stopped: %d %q, want 200", code, body)
	}
	waitAsleep(t, s, "alpha", "frozen", 2)
	s.kill9(t) // a crash, this time
	s = startServer(t, dataDir, "127.0.0.1:0", flags...)
	for _, c := range []struct{ project, phase string }{{"alpha", "thaw"}, {"beta", "start"}} {
		code, body, h := appGet(t, addr, c.project+".localhost")
		if code != http.StatusOK || body != c.project+"\n" || !regexp.MustCompile(`wake;dur=.*`+c.phase).MatchString(h.Get("Server-Timing")) {
			t.Errorf("%s after a crash: %d %q Server-Timing %q, want 200 woken by a %s\nserver:\n%s", c.project, code, body, h.Get("Server-Timing"), c.phase, s.out)
		}
	}
	// The crashed server's podman API service went with it.
	if ps := processesWith(" system service "); countWith(ps, dataDir) != 1 {
		t.Errorf("podman API services of this data directory after a crash: %q, want one", ps)
	}
}

// countWith counts the strings of ss that hold word.
func countWith(ss []string, word string) int {
	n := 0
	for _, s := range ss {
		if strings.Contains(s, word) {
			n++
		}
	}
	return n
}

// loop sends GETs to apps through a gateway, one client per app, until
// stopped, and keeps what each got.
type loop struct {
	wg   sync.WaitGroup
	quit chan struct{}

	mu  sync.Mutex
	ok  map[string]int
	bad []string // answers other than 200 with the app's name
	// errs are the times the requests that got no answer failed (a
	// request sent just before the listener closed fails after), and why.
	errs []loopErr
}

type loopErr struct {
	at  time.Time
	err error
}

func startLoop(addr string, projects ...string) *loop {
	l := &loop{quit: make(chan struct{}), ok: map[string]int{}}
	for _, p := range projects {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: time.Minute}
			for {
				select {
				case <-l.quit:
					return
				case <-time.After(20 * time.Millisecond):
				}
				l.get(c, addr, p)
			}
		}()
	}
	return l
}

// get sends one GET to project's app and records its answer.
func (l *loop) get(c *http.Client, addr, project string) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = project + ".localhost"
	resp, err := c.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		l.errs = append(l.errs, loopErr{time.Now(), err})
	case resp.StatusCode != http.StatusOK || string(body) != project+"\n":
		l.bad = append(l.bad, project+": "+resp.Status+" "+strings.TrimSpace(string(body)))
	default:
		l.ok[project]++
	}
}

func (l *loop) served(project string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok[project]
}

func (l *loop) stop() {
	close(l.quit)
	l.wg.Wait()
}

// check fails t for any answer but the right app's 200, and for any
// request without an answer sent outside [down, up], when the gateway's
// listener was down.
func (l *loop) check(t *testing.T, down, up time.Time) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bad {
		t.Errorf("during the restart a request got %s, want 200 from its own app", b)
	}
	outside := 0
	for _, e := range l.errs {
		if e.at.Before(down) || e.at.After(up) {
			outside++
			t.Errorf("a request at %s (restart from %s to %s) failed outside the restart: %v", e.at.Format(time.StampMilli), down.Format(time.StampMilli), up.Format(time.StampMilli), e.err)
		}
	}
	t.Logf("restart: %d answers, %d requests refused while the gateway was down (%s)", l.ok["alpha"]+l.ok["beta"], len(l.errs)-outside, up.Sub(down).Round(time.Millisecond))
}
