package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

var demo = Route{Project: "demo"}

// serverTimingRE matches the Server-Timing of a held request: how long
// it was held, then the fake app's phases (the space in "health check"
// dropped: not a token character).
var serverTimingRE = regexp.MustCompile(`^wake;dur=(\d+\.\d), start;dur=\d+\.\d, healthcheck;dur=\d+\.\d$`)

func TestHeldFirstRequestGets200WithServerTiming(t *testing.T) {
	app := &fakeApp{t: t, handler: echoBackend("demo"), delay: 200 * time.Millisecond}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})

	resp, body := tg.get(t, "http://demo.localhost/hello", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: status %d, want 200; body %q", resp.StatusCode, body)
	}
	if s := decodeSeen(t, body); s.App != "demo" || s.Path != "/hello" {
		t.Errorf("first request reached %q at %q, want demo at /hello", s.App, s.Path)
	}
	st := resp.Header.Get("Server-Timing")
	m := serverTimingRE.FindStringSubmatch(st)
	if m == nil {
		t.Fatalf("Server-Timing = %q, want it to match %s", st, serverTimingRE)
	}
	if held, _ := strconv.ParseFloat(m[1], 64); held < 200 {
		t.Errorf("Server-Timing wake;dur=%s ms, want at least the wake's 200 ms", m[1])
	}

	resp, _ = tg.get(t, "http://demo.localhost/again", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Server-Timing") != "" {
		t.Errorf("request to the awake app: status %d, Server-Timing %q; want 200 and none",
			resp.StatusCode, resp.Header.Get("Server-Timing"))
	}
	if n := app.wakes.Load(); n != 1 {
		t.Errorf("the app was woken %d times, want 1", n)
	}
}

func TestConcurrentRequestsDuringAWakeShareIt(t *testing.T) {
	const n = 50
	app := &fakeApp{t: t, handler: echoBackend("demo"), unblock: make(chan struct{})}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})

	statuses := make([]int, n)
	timings := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, _, err := tg.try(t, "http://demo.localhost/", nil)
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i], timings[i] = resp.StatusCode, resp.Header.Get("Server-Timing")
		})
	}
	waitFor(t, "50 requests held on the wake", func() bool { return tg.waiting(demo) == n })
	if o := app.open.Load(); o != n {
		t.Errorf("the waking app counts %d open requests, want the %d held (it must not sleep once woken for them)", o, n)
	}
	close(app.unblock)
	wg.Wait()

	for i := range n {
		if statuses[i] != http.StatusOK || !serverTimingRE.MatchString(timings[i]) {
			t.Errorf("request %d: status %d, Server-Timing %q; want 200 with the wake's timing", i, statuses[i], timings[i])
		}
	}
	if w := app.wakes.Load(); w != 1 {
		t.Errorf("the app was woken %d times, want 1", w)
	}
	if w := tg.waiting(demo); w != 0 {
		t.Errorf("%d requests still counted as held after the wake", w)
	}
}

func TestRequestsBeyondTheQueueGet503(t *testing.T) {
	app := &fakeApp{t: t, handler: echoBackend("demo"), unblock: make(chan struct{})}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}, MaxQueuedPerApp: 3})

	statuses := make(chan int, 3)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { statuses <- tg.status(t, "http://demo.localhost/") })
	}
	waitFor(t, "3 requests held on the wake", func() bool { return tg.waiting(demo) == 3 })

	resp, body := tg.get(t, "http://demo.localhost/", map[string]string{"Accept": "text/html"})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("4th request: status %d, Retry-After %q; want 503 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(body, "waiting for this app to start") {
		t.Errorf("503 page = %q, want it to say why", body)
	}
	close(app.unblock)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("a held request got %d, want 200", s)
		}
	}
}

func TestWakeTimeoutGets504WithTheLastOutput(t *testing.T) {
	app := &fakeApp{t: t, handler: echoBackend("demo"), unblock: make(chan struct{}), output: []string{
		"listening on :3000?", `<script>alert("x")</script>`, "db: connection refused & retrying",
	}}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}, WakeTimeout: 200 * time.Millisecond})

	resp, body := tg.get(t, "http://demo.localhost/", map[string]string{"Accept": "text/html,application/xhtml+xml"})
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504; body %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q for a browser, want text/html", ct)
	}
	for _, want := range []string{"within 200ms", "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "refused &amp; retrying"} {
		if !strings.Contains(body, want) {
			t.Errorf("504 page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Errorf("504 page holds the app's output unescaped:\n%s", body)
	}

	resp, body = tg.get(t, "http://demo.localhost/", map[string]string{"Accept": "*/*"})
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("curl-like request: status %d, Content-Type %q; want 504 text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, `<script>alert("x")</script>`+"\n") {
		t.Errorf("text 504 page lacks the output line as it was:\n%s", body)
	}
}

func TestWakeErrors(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		status     int
		want, hide string
	}{
		{"not deployed", slipway.Errorf(slipway.ENOTFOUND, "demo has no release yet"), http.StatusNotFound, "demo has no release yet", ""},
		{"crashed", errors.New("podman start /var/lib/slipway/secret: exit 1"), http.StatusBadGateway, "could not start", "/var/lib/slipway"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := &fakeApp{t: t, handler: echoBackend("demo"), wakeErr: c.err, output: []string{"panic: no PORT"}}
			tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
			resp, body := tg.get(t, "http://demo.localhost/", nil)
			if resp.StatusCode != c.status || !strings.Contains(body, c.want) {
				t.Errorf("status %d, body %q; want %d with %q", resp.StatusCode, body, c.status, c.want)
			}
			if c.hide != "" && strings.Contains(body, c.hide) {
				t.Errorf("the page shows the internal error's %q: %q", c.hide, body)
			}
		})
	}
}

func TestRefusedConnectionRightAfterAWakeIsRetried(t *testing.T) {
	app := &fakeApp{t: t, handler: echoBackend("demo"), bindLate: 300 * time.Millisecond}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
	resp, body := tg.get(t, "http://demo.localhost/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 once the app binds; body %q", resp.StatusCode, body)
	}
}

func TestABackendThatNeverListensGets502(t *testing.T) {
	app := &fakeApp{t: t, handler: echoBackend("demo"), bindLate: time.Hour}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}, ConnectRetry: 300 * time.Millisecond})
	start := time.Now()
	resp, body := tg.get(t, "http://demo.localhost/", nil)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "did not answer") {
		t.Errorf("status %d, body %q; want 502 saying the app did not answer", resp.StatusCode, body)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("answered after %s, before the connect retry of 300ms", took)
	}
}

func TestAClientThatLeavesIsNoLongerHeld(t *testing.T) {
	app := &fakeApp{t: t, handler: echoBackend("demo"), unblock: make(chan struct{})}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})

	first := make(chan int, 1)
	go func() { first <- tg.status(t, "http://demo.localhost/") }()
	waitFor(t, "the first request held", func() bool { return tg.waiting(demo) == 1 })
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://demo.localhost/", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tg.client.Do(req)
		errc <- err
	}()
	waitFor(t, "the second request held", func() bool { return tg.waiting(demo) == 2 })
	cancel()
	<-errc
	waitFor(t, "the second request let go", func() bool { return tg.waiting(demo) == 1 })
	close(app.unblock)
	if s := <-first; s != http.StatusOK {
		t.Errorf("the first request got %d, want 200", s)
	}
	waitFor(t, "no request left open", func() bool { return app.open.Load() == 0 })
}

func TestCloseAnswersHeldRequests503(t *testing.T) {
	app := &fakeApp{t: t, handler: echoBackend("demo"), unblock: make(chan struct{})}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
	held := make(chan int, 1)
	go func() { held <- tg.status(t, "http://demo.localhost/") }()
	waitFor(t, "a request held on the wake", func() bool { return tg.waiting(demo) == 1 })
	tg.Gateway.Close()
	if s := <-held; s != http.StatusServiceUnavailable {
		t.Errorf("the held request got %d when the gateway closed, want 503", s)
	}
	if s := tg.status(t, "http://demo.localhost/"); s != http.StatusServiceUnavailable {
		t.Errorf("a request after Close got %d, want 503", s)
	}
}

// Config.Dial connects to the backend's address: the gateway dials
// nothing else, and a refused connection from it is retried as well.
func TestConfigDialConnectsToBackends(t *testing.T) {
	app := &fakeApp{t: t, handler: echoBackend("demo"), bindLate: 200 * time.Millisecond}
	var mu sync.Mutex
	var asked []string
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		asked = append(asked, addr)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}, Dial: dial})
	resp, body := tg.get(t, "http://demo.localhost/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %q; want 200 through Config.Dial", resp.StatusCode, body)
	}
	addr, _ := app.Serving()
	mu.Lock()
	defer mu.Unlock()
	if len(asked) < 2 || slices.ContainsFunc(asked, func(a string) bool { return a != addr }) {
		t.Errorf("Config.Dial was asked for %q; want %s, more than once (refused, then retried)", asked, addr)
	}
}
