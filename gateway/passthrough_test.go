package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// awake returns an app that serves already (its backend started).
func awake(t *testing.T, h http.Handler) *fakeApp {
	app := &fakeApp{t: t, handler: h}
	if _, err := app.Wake(t.Context()); err != nil {
		t.Fatalf("start the backend: %v", err)
	}
	app.wakes.Store(0)
	return app
}

func TestWebSocketEchoKeepsTheAppOpenUntilItCloses(t *testing.T) {
	app := &fakeApp{t: t, handler: echoBackend("demo"), delay: 50 * time.Millisecond}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://demo.localhost/ws", &websocket.DialOptions{HTTPClient: tg.client})
	if err != nil {
		t.Fatalf("dial a WebSocket through the gateway (to a sleeping app): %v", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if !serverTimingRE.MatchString(resp.Header.Get("Server-Timing")) {
		t.Errorf("the upgrade that woke the app has Server-Timing %q", resp.Header.Get("Server-Timing"))
	}
	for _, msg := range []string{"hello", strings.Repeat("x", 100_000)} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatalf("write: %v", err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("echo of a %d-byte message: %d bytes, %v", len(msg), len(got), err)
		}
	}
	if n := app.open.Load(); n != 1 {
		t.Errorf("the app counts %d open requests while a WebSocket is open, want 1", n)
	}
	if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Errorf("close: %v", err)
	}
	waitFor(t, "the closed WebSocket to end its request", func() bool { return app.open.Load() == 0 })
}

func TestClosingTheGatewayEndsWebSockets(t *testing.T) {
	app := awake(t, echoBackend("demo"))
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
	c, _, err := websocket.Dial(t.Context(), "ws://demo.localhost/ws", &websocket.DialOptions{HTTPClient: tg.client})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := tg.srv.Close(ctx); err != nil {
		t.Errorf("close the server with a WebSocket open: %v", err)
	}
	if _, _, err := c.Read(ctx); err == nil || ctx.Err() != nil {
		t.Errorf("read after the gateway closed: %v (context: %v); want the connection cut", err, ctx.Err())
	}
	waitFor(t, "the cut WebSocket to end its request", func() bool { return app.open.Load() == 0 })
}

func TestStreamingResponseArrivesChunkByChunk(t *testing.T) {
	next := make(chan struct{})
	app := awake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	}))
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://demo.localhost/stream", nil)
	resp, err := tg.client.Do(req)
	if err != nil {
		t.Fatalf("GET /stream: %v", err)
	}
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	select {
	case l := <-lines:
		if l != "first" {
			t.Fatalf("first line %q, want first", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first chunk did not arrive before the response ended: the gateway buffers")
	}
	if n := app.open.Load(); n != 1 {
		t.Errorf("the app counts %d open requests during a streamed response, want 1", n)
	}
	close(next)
	if l := <-lines; l != "second" {
		t.Errorf("second line %q, want second", l)
	}
	waitFor(t, "the streamed response to end its request", func() bool { return app.open.Load() == 0 })
}

// A response of known length whose body comes slowly is not held until
// it ends: its first part arrives within the flush interval.
func TestSlowResponseOfKnownLengthIsFlushed(t *testing.T) {
	next := make(chan struct{})
	app := awake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "13")
		_, _ = io.WriteString(w, "first\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	}))
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://demo.localhost/slow", nil)
	resp, err := tg.client.Do(req)
	if err != nil {
		t.Fatalf("GET /slow: %v", err)
	}
	defer resp.Body.Close()
	defer close(next)
	if resp.ContentLength != 13 {
		t.Errorf("Content-Length %d, want 13", resp.ContentLength)
	}
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case l := <-got:
		if l != "first\n" {
			t.Errorf("first line %q, want first", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first part did not arrive before the response ended: the gateway holds it")
	}
}

func TestRequestBodyIsStreamed(t *testing.T) {
	gotFirst := make(chan struct{})
	app := awake(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil || string(buf) != "part1" {
			http.Error(w, "first part: "+string(buf), http.StatusBadRequest)
			return
		}
		close(gotFirst)
		rest, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, string(buf)+string(rest))
	}))
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})

	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://demo.localhost/upload", pr)
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := tg.client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{string(b), err}
	}()
	if _, err := io.WriteString(pw, "part1"); err != nil {
		t.Fatalf("write part 1: %v", err)
	}
	select {
	case <-gotFirst:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend did not get the body's first part before the body ended: the gateway buffers")
	}
	_, _ = io.WriteString(pw, "+part2")
	pw.Close()
	if r := <-done; r.err != nil || r.body != "part1+part2" {
		t.Errorf("upload answer %q, %v; want part1+part2", r.body, r.err)
	}
}

func TestHTTP2PriorKnowledge(t *testing.T) {
	app := awake(t, echoBackend("demo"))
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	addr := tg.srv.Addr().String()
	tr := &http.Transport{Protocols: &protocols, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://demo.localhost/h2")
	if err != nil {
		t.Fatalf("GET over h2c: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("status %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	if s := decodeSeen(t, string(body)); s.App != "demo" || s.Host != "demo.localhost" || s.Proto != "HTTP/1.1" {
		t.Errorf("the backend got %q from %q over %s, want demo.localhost's request over HTTP/1.1", s.Path, s.Host, s.Proto)
	}
}

func TestForwardedHeaders(t *testing.T) {
	forged := map[string]string{
		"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "bank.example.com", "X-Forwarded-Proto": "https",
		"Forwarded": "for=6.6.6.6", "X-Real-Ip": "6.6.6.6", "Connection": "X-Secret", "X-Secret": "hop",
	}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		want    map[string]string
	}{
		{"untrusted client", nil, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "demo.localhost", "X-Forwarded-Proto": "http",
			"Forwarded": "", "X-Real-Ip": "", "X-Secret": "",
		}},
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, map[string]string{
			"X-Forwarded-For": "6.6.6.6, 127.0.0.1", "X-Forwarded-Host": "bank.example.com", "X-Forwarded-Proto": "https",
			"Forwarded": "for=6.6.6.6", "X-Secret": "",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			app := awake(t, echoBackend("demo"))
			tg := startGateway(t, Config{Apps: fakeApps{demo: app}, TrustedProxies: c.trusted})
			_, body := tg.get(t, "http://demo.localhost/", forged)
			s := decodeSeen(t, body)
			for k, want := range c.want {
				if got := strings.Join(s.Header.Values(k), ", "); got != want {
					t.Errorf("the backend got %s %q, want %q", k, got, want)
				}
			}
			if s.Host != "demo.localhost" {
				t.Errorf("the backend got Host %q, want the client's demo.localhost", s.Host)
			}
		})
	}
}

func TestBackendConnectionsAreKeptAlive(t *testing.T) {
	var conns atomic.Int32
	backend := httptest.NewUnstartedServer(echoBackend("demo"))
	backend.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	backend.Start()
	t.Cleanup(backend.Close)
	app := &fakeApp{t: t, addr: backend.Listener.Addr().String()}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
	for range 50 {
		if resp, body := tg.get(t, "http://demo.localhost/", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("50 sequential requests opened %d connections to the backend, want 1 kept alive", n)
	}
}
