package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// An idle app is frozen (its processes kept, paused by the cgroup
// freezer), then stopped: with --apps-stopped-bare none of its processes
// is left on the host (its command, conmon), and its cgroups, with the
// memory they held, are gone or empty. (By default a stopped app is
// primed: its own processes are gone, conmon and runc's init wait; see
// TestApps.)
func TestAppsSleepNoProcess(t *testing.T) {
	s, addr, base := startAppsServer(t, "--app-idle-timeout", "2s", "--app-stop-after", "4s", "--apps-stopped-bare")
	mark := marker(t, "sleeper")
	// httpd's realm (-r) is unused: it puts mark in the app's command line.
	dockerfile := "FROM " + base + "\nCOPY index.html /app/index.html\nEXPOSE 8000\nCMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/app\", \"-r\", \"" + mark + "\"]\n"
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfile, "index.html": "asleep soon\n"})
	s.addProject(t, "sleeper", dir)
	d := s.deployWait(t, "sleeper", sha)
	if code, body, _ := appGet(t, addr, "sleeper.localhost"); code != http.StatusOK || body != "asleep soon\n" {
		t.Fatalf("GET sleeper.localhost: %d %q, want 200\nserver:\n%s", code, body, s.out)
	}
	pid := appInspect(t, s, "sleeper", d.ID, "{{.State.Pid}}")
	conmon := appInspect(t, s, "sleeper", d.ID, "{{.State.ConmonPid}}")
	id := appInspect(t, s, "sleeper", d.ID, "{{.Id}}")
	cgroups := cgroupsOf(t, pid)
	if len(processesWith(mark)) == 0 || len(processesWith(id)) == 0 || len(cgroups) == 0 {
		t.Fatalf("the running app: processes with its command %q, with its id %q, cgroups %q; want all found (else the checks below prove nothing)",
			processesWith(mark), processesWith(id), cgroups)
	}
	t.Logf("the app's memory while it runs: %s bytes", cgroupFile(cgroups, "memory", "memory.usage_in_bytes"))

	waitAsleep(t, s, "sleeper", "frozen", 1)
	if st := cgroupFile(cgroups, "freezer", "freezer.state"); st != "FROZEN" {
		t.Errorf("a frozen app's freezer.state is %q, want FROZEN", st)
	}
	if len(processesWith(mark)) == 0 {
		t.Errorf("a frozen app has no process left: frozen must keep them (and their memory)")
	}

	waitAsleep(t, s, "sleeper", "stopped", 1)
	if st := appState(t, s, "sleeper", d.ID); st != "exited" {
		t.Errorf("a stopped app's container is %q, want exited", st)
	}
	testenv.WaitFor(t, 10*time.Second, "no process of the stopped app on the host", func() bool {
		return len(processesWith(mark)) == 0 && len(processesWith(id)) == 0
	})
	if b, err := os.ReadFile("/proc/" + conmon + "/cmdline"); err == nil && strings.Contains(string(b), id) {
		t.Errorf("the stopped app's conmon (pid %s) still runs: %q", conmon, b)
	}
	for _, dir := range cgroups {
		if procs, err := os.ReadFile(dir + "/cgroup.procs"); err == nil && strings.TrimSpace(string(procs)) != "" {
			t.Errorf("the stopped app's cgroup %s still holds processes %q", dir, procs)
		}
	}
	if m := cgroupFile(cgroups, "memory", "memory.usage_in_bytes"); m != "" && m != "0" {
		t.Errorf("the stopped app's memory cgroup still holds %s bytes, want it gone or empty", m)
	}
}

// cgroupFile reads file in the cgroup of controller among dirs ("" when
// it does not exist).
func cgroupFile(dirs []string, controller, file string) string {
	for _, dir := range dirs {
		if strings.HasPrefix(dir, "/sys/fs/cgroup/"+controller+"/") {
			b, err := os.ReadFile(dir + "/" + file)
			if err == nil {
				return strings.TrimSpace(string(b))
			}
		}
	}
	return ""
}

// A WebSocket through the gateway reaches a deployed app (woken by the
// upgrade itself) and echoes text and binary messages; while it is open
// the app is kept awake past the idle and stop timeouts, with no traffic;
// once it closes the app sleeps. A long streamed download keeps it awake
// the same way.
func TestAppsWebSocket(t *testing.T) {
	s, addr, base := startAppsServer(t, "--app-idle-timeout", "2s", "--app-stop-after", "4s")
	dir, sha := echoRepo(t, base, "echo here")
	s.addProject(t, "echo", dir)
	s.deployWait(t, "echo", sha)
	// The release started the app: let it sleep, so the upgrade wakes it.
	waitAsleep(t, s, "echo", "stopped", 1)
	asleep := `msg="app asleep" project=echo `
	slept := countLines(s, asleep)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{Host: "echo.localhost"})
	if err != nil {
		t.Fatalf("WebSocket to echo.localhost/ws through the gateway: %v (%v)\nserver:\n%s", err, resp, s.out)
	}
	defer c.CloseNow()
	if st := resp.Header.Get("Server-Timing"); !strings.Contains(st, "wake;dur=") {
		t.Errorf("the upgrade that woke the app: Server-Timing %q, want a wake", st)
	}
	echoes := func(when string) {
		t.Helper()
		big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 4096)
		for _, m := range []struct {
			typ websocket.MessageType
			msg []byte
		}{{websocket.MessageText, []byte("hello, " + when)}, {websocket.MessageBinary, big}} {
			if err := c.Write(ctx, m.typ, m.msg); err != nil {
				t.Fatalf("%s: write: %v", when, err)
			}
			typ, got, err := c.Read(ctx)
			if err != nil || typ != m.typ || !bytes.Equal(got, m.msg) {
				t.Fatalf("%s: echo of a %v message of %d bytes = %v, %d bytes, %v", when, m.typ, len(m.msg), typ, len(got), err)
			}
		}
	}
	echoes("at once")
	// Past both timeouts, with nothing sent: the open connection alone
	// keeps the app awake.
	time.Sleep(7 * time.Second)
	if n := countLines(s, asleep) - slept; n != 0 {
		t.Errorf("the app was put to sleep %d times while a WebSocket to it was open\nserver:\n%s", n, s.out)
	}
	echoes("after 7s")
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Errorf("close the WebSocket: %v", err)
	}
	waitAsleep(t, s, "echo", "frozen", 2)

	// A long download keeps it awake as well, until its last byte.
	lines := streamLines(t, addr, "echo.localhost", 7*time.Second)
	if n := countLines(s, asleep) - slept; n != 1 || lines < 20 {
		t.Errorf("a 7s download through the gateway: %d lines, and the app was put to sleep %d times in all, want about 28 lines and once (before it)\nserver:\n%s", lines, n, s.out)
	}
	waitAsleep(t, s, "echo", "frozen", 3)
}

// streamLines downloads /stream?for=d from host's app through the
// gateway at addr and returns how many lines came.
func streamLines(t *testing.T, addr, host string, d time.Duration) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/stream?for="+d.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("GET /stream of %s: %v", host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /stream of %s: %s, %v", host, resp.Status, err)
	}
	return strings.Count(string(b), "\n")
}

// An app that never answers its health path: its request gets, at
// --wake-timeout, a 504 page with the app's last output lines, and
// nothing of the app is left running.
//
// The image is healthy for its first 30 s after its build (so that a
// release that checks its health succeeds), then never again.
func TestAppsWakeTimeout(t *testing.T) {
	s, addr, base := startAppsServer(t, "--wake-timeout", "5s", "--app-idle-timeout", "1s", "--app-stop-after", "2s")
	mark := marker(t, "never")
	script := `echo ` + mark + ` booting; ` +
		`if [ $(( $(date +%s) - $(cat /built-at) )) -lt 30 ]; then exec httpd -f -p 8000 -h /app; fi; ` +
		`echo ` + mark + ` waiting for a database that never answers; sleep 3600; echo gave up`
	dockerfile := "FROM " + base + "\nRUN date +%s > /built-at\nCOPY index.html /app/index.html\nEXPOSE 8000\nCMD [\"sh\", \"-c\", \"" + script + "\"]\n"
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfile, "index.html": "healthy while young\n"})
	s.addProject(t, "never", dir)
	before := time.Now()
	d := s.deployWait(t, "never", sha)
	time.Sleep(time.Until(before.Add(31 * time.Second)))
	if st := appState(t, s, "never", d.ID); st == "running" {
		// A release that checks its app's health started it while it was
		// young: let it go to sleep, so that the request below wakes it.
		waitAsleep(t, s, "never", "stopped", 1)
	}

	var seen atomic.Bool // the app ran meanwhile: "nothing left" means something
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for !seen.Load() {
			seen.Store(len(processesWith(mark)) > 0)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t0 := time.Now()
	code, body, _ := appGet(t, addr, "never.localhost")
	took := time.Since(t0)
	close(stop)
	<-done
	if code != http.StatusGatewayTimeout || !strings.Contains(body, "within 5s") || !strings.Contains(body, mark+" waiting for a database that never answers") {
		t.Errorf("request to an app that never becomes healthy: %d after %s:\n%s\nwant a 504 saying 5s, with the app's last output\nserver:\n%s", code, took, body, s.out)
	}
	t.Logf("504 after %s", took)
	if !seen.Load() {
		t.Errorf("the app's process was never seen during its wake: the check that none is left proves nothing")
	}
	testenv.WaitFor(t, 10*time.Second, "no process of the app that timed out", func() bool {
		return len(processesWith(mark)) == 0 && len(processesWith("slipway-app-never-")) == 0
	})
}
