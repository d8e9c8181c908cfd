package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/redact"
)

// appLogSecret is the value of the app's SECRET_TOKEN (slipway env set).
const appLogSecret = "tok-e2e-Secret-9f3a"

// appHitScript is a CGI script of the app: each request writes a line to
// the container's stdout and one to its stderr (those of httpd, PID 1).
const appHitScript = `#!/bin/sh
echo "hit $QUERY_STRING secret=$SECRET_TOKEN" > /proc/1/fd/1
echo "oops $QUERY_STRING" > /proc/1/fd/2
echo "Content-Type: text/plain"
echo
echo "logged $QUERY_STRING"
`

// appRequest GETs path of host's app through the gateway at addr.
func appRequest(t *testing.T, addr, host, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = host
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("GET %s of %s: %v", path, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type appLogJSON struct {
	N       int64  `json:"n"`
	Release string `json:"release"`
	Stream  string `json:"stream"`
	Text    string `json:"text"`
}

// waitAppLogs runs `slipway app logs project --json` until its lines hold
// every text in want, and returns them.
func waitAppLogs(t *testing.T, s *serverProc, project string, want ...string) map[string]appLogJSON {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, code := s.cli(t, "app", "logs", project, "--json")
		got := map[string]appLogJSON{}
		for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			var line appLogJSON
			if code == 0 && json.Unmarshal([]byte(l), &line) == nil {
				got[line.Text] = line
			}
		}
		missing := false
		for _, w := range want {
			if _, ok := got[w]; !ok {
				missing = true
			}
		}
		if code == 0 && !missing {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("slipway app logs %s: exit %d\n%s\nwant lines %q\nserver:\n%s", project, code, out, want, s.out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// The output of a project's app goes through the log pipeline: `slipway
// app logs` shows each line with its release and stream, -f follows new
// lines live and ends cleanly on Ctrl-C, the runtime environment's
// values are masked, the API says what the app does, and the web UI shows
// it (checkAppUI).
func TestAppLogs(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0", "--apps-listen", "127.0.0.1:0", "--app-idle-timeout", "3s")
	addr := s.appsAddr(t)
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	dockerfile := "FROM " + base + "\nCOPY index.html /app/index.html\nCOPY hit /app/cgi-bin/hit\nRUN chmod +x /app/cgi-bin/hit\n" +
		"EXPOSE 8000\nCMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/app\"]\n"
	dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfile, "index.html": "ok\n", "hit": appHitScript})
	s.addProject(t, "web", dir)

	if out, code := s.cli(t, "app", "logs", "web"); code == 0 || !strings.Contains(out, "nothing deployed") || strings.Contains(out, "goroutine") {
		t.Errorf("app logs before a deployment: exit %d %q, want a clear error saying nothing is deployed", code, out)
	}
	if out, code := s.cli(t, "app", "logs", "nosuch"); code == 0 || !strings.Contains(out, "not found") {
		t.Errorf("app logs of an unknown project: exit %d %q, want not found", code, out)
	}
	env := exec.Command(slipwayBin, "--server", s.URL, "--token", s.Token, "env", "set", "web", "SECRET_TOKEN")
	env.Stdin = strings.NewReader(appLogSecret)
	if out, err := env.CombinedOutput(); err != nil {
		t.Fatalf("slipway env set: %v\n%s", err, out)
	}
	d := s.deployWait(t, "web", sha)

	if code, body := appRequest(t, addr, "web.localhost", "/cgi-bin/hit?one"); code != http.StatusOK || body != "logged one\n" {
		t.Fatalf("GET /cgi-bin/hit?one: %d %q, want 200 \"logged one\"\nserver:\n%s", code, body, s.out)
	}
	var hit string
	for deadline := time.Now().Add(time.Minute); hit == ""; time.Sleep(300 * time.Millisecond) {
		out, _ := s.cli(t, "app", "logs", "web", "--json")
		for l := range strings.SplitSeq(out, "\n") {
			var line appLogJSON
			if json.Unmarshal([]byte(l), &line) == nil && strings.HasPrefix(line.Text, "hit one") {
				hit = line.Text
			}
		}
		if hit == "" && time.Now().After(deadline) {
			t.Fatalf("no line \"hit one\" in slipway app logs web:\n%s\nserver:\n%s", out, s.out)
		}
	}
	got := waitAppLogs(t, s, "web", hit, "oops one")
	if l := got[hit]; l.Stream != "stdout" || l.Release != d.ID {
		t.Errorf("line %q: stream %s release %s, want stdout of %s", hit, l.Stream, l.Release, d.ID)
	}
	if l := got["oops one"]; l.Stream != "stderr" || l.Release != d.ID {
		t.Errorf("line \"oops one\": stream %s release %s, want stderr of %s", l.Stream, l.Release, d.ID)
	}
	checkAppSecret(t, hit)

	followAppLogs(t, s, addr)

	out, code := s.cli(t, "app", "logs", "web", "--tail", "1000")
	if code != 0 || strings.Contains(out, appLogSecret) || !strings.Contains(out, "stderr oops two") || !strings.Contains(out, d.ID) {
		t.Errorf("slipway app logs web: exit %d, want the lines with release and stream and never the secret:\n%s", code, out)
	}
	// Idle, the app freezes; a request wakes it, and the API says when.
	waitAPIState(t, s, "frozen")
	if code, _ := appRequest(t, addr, "web.localhost", "/cgi-bin/hit?woken"); code != http.StatusOK {
		t.Fatalf("GET /cgi-bin/hit?woken: %d", code)
	}
	checkAppStatus(t, s, d.ID, addr)
	checkAppUI(t, s, addr, d.ID)
}

// appStatusOf returns the API's appStatus of project web.
func appStatusOf(t *testing.T, s *serverProc) (appStatusJSON, string) {
	t.Helper()
	a := s.graphql(t, `{ project(name: "web") { appStatus { state release { id } lastWakeAt lastWakeMs url } } }`, nil)
	var data struct {
		Project struct{ AppStatus appStatusJSON }
	}
	if err := json.Unmarshal(a.Data, &data); err != nil {
		t.Fatalf("appStatus: %v: %s", err, a.Raw)
	}
	return data.Project.AppStatus, a.Raw
}

type appStatusJSON struct {
	State      string
	Release    struct{ ID string }
	LastWakeAt *time.Time
	LastWakeMs *float64
	URL        string
}

// waitAPIState waits until the API says web's app is in state.
func waitAPIState(t *testing.T, s *serverProc, state string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(250 * time.Millisecond) {
		st, raw := appStatusOf(t, s)
		if st.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("appStatus still %s after a minute, want %s", raw, state)
		}
	}
}

// checkAppSecret checks that the app line that printed SECRET_TOKEN
// (slipway env set) holds it masked.
func checkAppSecret(t *testing.T, line string) {
	t.Helper()
	if strings.Contains(line, appLogSecret) || !strings.HasSuffix(line, "secret="+redact.Mask) {
		t.Errorf("the app's line %q, want its SECRET_TOKEN masked as %s", line, redact.Mask)
	}
}

// followAppLogs runs `slipway app logs web -f`, sees a new request's line
// arrive live, then stops it with SIGINT: it ends at once, cleanly.
func followAppLogs(t *testing.T, s *serverProc, addr string) {
	t.Helper()
	cmd := exec.Command(slipwayBin, "--server", s.URL, "--token", s.Token, "app", "logs", "web", "-f", "--tail", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(time.Second) // let it subscribe; a line written before is not printed (--tail 0)
	if code, _ := appRequest(t, addr, "web.localhost", "/cgi-bin/hit?two"); code != http.StatusOK {
		t.Fatalf("GET /cgi-bin/hit?two: %d", code)
	}
	timeout := time.After(30 * time.Second)
	var seen []string
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("slipway app logs -f ended early: %s\nprinted %q", stderr.String(), seen)
			}
			seen = append(seen, l)
			if strings.Contains(l, "stdout hit two") {
				break wait
			}
		case <-timeout:
			t.Fatalf("slipway app logs -f did not print the new line within 30s; printed %q, stderr %s", seen, stderr.String())
		}
	}
	if strings.Contains(strings.Join(seen, "\n"), "hit one") {
		t.Errorf("-f --tail 0 printed an old line: %q", seen)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || strings.Contains(stderr.String(), "goroutine") {
			t.Errorf("slipway app logs -f after Ctrl-C: %v, stderr %q; want exit 0", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("slipway app logs -f still runs 10s after Ctrl-C")
	}
}

// checkAppStatus checks what the API says of the serving app.
func checkAppStatus(t *testing.T, s *serverProc, release, addr string) {
	t.Helper()
	st, raw := appStatusOf(t, s)
	wantURL := "http://web.localhost:" + strings.TrimPrefix(addr, "127.0.0.1:")
	if st.State != "serving" || st.Release.ID != release || st.URL != wantURL || st.LastWakeAt == nil || st.LastWakeMs == nil || *st.LastWakeMs <= 0 {
		t.Errorf("appStatus = %s, want serving %s at %s with its last wake", raw, release, wantURL)
	}
}
