package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingBackend serves h and counts the connections it accepted.
func countingBackend(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int32) {
	var conns atomic.Int32
	backend := httptest.NewUnstartedServer(h)
	backend.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	backend.Start()
	t.Cleanup(backend.Close)
	return backend, &conns
}

// A kept connection that the backend closed while it was idle: the next
// GET goes again on a new connection and gets its answer.
func TestAGetOnAConnectionTheBackendClosedIsRetried(t *testing.T) {
	backend, conns := countingBackend(t, echoBackend("demo"))
	app := &fakeApp{t: t, addr: backend.Listener.Addr().String()}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
	if resp, body := tg.get(t, "http://demo.localhost/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	backend.CloseClientConnections() // the gateway's kept connection too
	if resp, body := tg.get(t, "http://demo.localhost/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the backend closed the kept connection: status %d, body %q; want 200", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("the backend accepted %d connections, want 2 (the first, closed; then a new one)", n)
	}
}

// An answer its client leaves half-read (a stream that does not end)
// closes the gateway's connection to the backend rather than keeping it
// with the stream's rest unread; the next request gets its own answer.
func TestAnAnswerLeftHalfReadIsNotKept(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := http.NewServeMux()
	h.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	h.Handle("/", echoBackend("demo"))
	backend, conns := countingBackend(t, h)
	app := &fakeApp{t: t, addr: backend.Listener.Addr().String()}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://demo.localhost/stream", nil)
	resp, err := tg.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(resp.Body).ReadString('\n'); line != "first\n" {
		t.Fatalf("first line %q", line)
	}
	resp.Body.Close()
	tg.client.CloseIdleConnections() // the client leaves
	waitFor(t, "the backend to see its stream's request end", func() bool {
		got, body := tg.get(t, "http://demo.localhost/", nil)
		return got.StatusCode == http.StatusOK && strings.Contains(body, `"App":"demo"`)
	})
	if n := conns.Load(); n < 2 {
		t.Errorf("the backend accepted %d connections, want a new one after the half-read stream", n)
	}
}

// A HEAD answer has no body, and an interim 103 Early Hints before the
// answer is passed over: the client gets the final answer.
func TestHeadAndInterimAnswers(t *testing.T) {
	h := http.NewServeMux()
	h.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "final\n")
	})
	h.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "6")
		_, _ = io.WriteString(w, "hello\n")
	})
	backend, conns := countingBackend(t, h)
	app := &fakeApp{t: t, addr: backend.Listener.Addr().String()}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
	for range 3 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodHead, "http://demo.localhost/", nil)
		resp, err := tg.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ContentLength != 6 || len(b) != 0 {
			t.Errorf("HEAD: %d, length %d, body %q; want 200, 6, none", resp.StatusCode, resp.ContentLength, b)
		}
	}
	resp, body := tg.get(t, "http://demo.localhost/hints", nil)
	if resp.StatusCode != http.StatusOK || body != "final\n" {
		t.Errorf("GET /hints: %d %q, want 200 final", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the backend accepted %d connections, want 1 kept alive", n)
	}
}

// A client that leaves while the gateway waits for the backend's answer
// ends the backend's request.
func TestAClientThatLeavesEndsTheBackendRequest(t *testing.T) {
	ended := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(ended)
	})
	backend, _ := countingBackend(t, h)
	app := &fakeApp{t: t, addr: backend.Listener.Addr().String()}
	tg := startGateway(t, Config{Apps: fakeApps{demo: app}})
	c := &http.Client{Transport: tg.client.Transport, Timeout: 300 * time.Millisecond}
	if _, err := c.Get("http://demo.localhost/slow"); err == nil {
		t.Fatal("the slow request answered")
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend's request did not end after its client left")
	}
}
