package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// discard is the tests' logger.
var discard = slog.New(slog.DiscardHandler)

// fakeApp is an app whose backend is a real HTTP server on a real socket
// that its Wake starts (after delay, or once unblock is closed). It counts
// its wakes and its open requests.
type fakeApp struct {
	t       *testing.T
	handler http.Handler
	delay   time.Duration // a wake's time before the backend listens
	// unblock, when not nil, holds every wake until it is closed (or the
	// wake's context ends).
	unblock chan struct{}
	// bindLate, when positive, makes Wake return the backend's address
	// that long before the backend listens on it.
	bindLate time.Duration
	wakeErr  error
	output   []string

	wakes atomic.Int32
	open  atomic.Int32

	mu   sync.Mutex
	addr string
}

func (a *fakeApp) Serving() (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr, a.addr != ""
}

func (a *fakeApp) Wake(ctx context.Context) (Woken, error) {
	a.wakes.Add(1)
	if addr, ok := a.Serving(); ok {
		return Woken{Addr: addr}, nil
	}
	start := time.Now()
	if a.unblock != nil {
		select {
		case <-a.unblock:
		case <-ctx.Done():
			return Woken{}, ctx.Err()
		}
	}
	if a.wakeErr != nil {
		return Woken{}, a.wakeErr
	}
	select {
	case <-time.After(a.delay):
	case <-ctx.Done():
		return Woken{}, ctx.Err()
	}
	addr := a.startBackend()
	started := time.Since(start)
	a.mu.Lock()
	a.addr = addr
	a.mu.Unlock()
	return Woken{Addr: addr, Phases: []Phase{{"start", started}, {"health check", time.Since(start) - started}}}, nil
}

// startBackend starts the app's backend and returns its address; with
// bindLate, it returns a free address and listens on it later.
func (a *fakeApp) startBackend() string {
	if a.bindLate <= 0 {
		srv := httptest.NewServer(a.handler)
		a.t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.t.Errorf("reserve a port: %v", err)
		return "127.0.0.1:1"
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := httptest.NewUnstartedServer(a.handler)
	a.t.Cleanup(srv.Close)
	bound, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(bound)
		select {
		case <-time.After(a.bindLate):
		case <-stop:
			return
		}
		late, err := net.Listen("tcp", addr)
		if err != nil {
			a.t.Errorf("bind %s late: %v", addr, err)
			return
		}
		srv.Listener = late
		srv.Start()
	}()
	a.t.Cleanup(func() { <-bound })
	a.t.Cleanup(func() { close(stop) }) // runs first
	return addr
}

func (a *fakeApp) Begin() func() {
	a.open.Add(1)
	var once sync.Once
	return func() { once.Do(func() { a.open.Add(-1) }) }
}

func (a *fakeApp) LastOutput(n int) []string {
	if len(a.output) > n {
		return a.output[len(a.output)-n:]
	}
	return a.output
}

// fakeApps routes to the apps of a map, counting lookups.
type fakeApps map[Route]*fakeApp

func (m fakeApps) Lookup(r Route) (App, bool) {
	a, ok := m[r]
	if !ok {
		return nil, false
	}
	return a, true
}

// seen is what the test backend reports of the request it got.
type seen struct {
	App      string
	Proto    string
	Host     string
	Path     string
	Header   http.Header
	BodySize int
}

// echoBackend answers every request with a JSON `seen` (App set to name),
// and serves a WebSocket echo at /ws.
func echoBackend(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", wsEcho)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{App: name, Proto: r.Proto, Host: r.Host, Path: r.URL.Path,
			Header: r.Header, BodySize: len(body)})
	})
	return mux
}

// wsEcho echoes WebSocket messages until the peer closes.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, msg); err != nil {
			return
		}
	}
}

// testGateway is a Gateway served on a real listener, with a client whose
// every connection goes to that listener whatever the URL's host (so
// http://demo.localhost/ reaches the gateway with Host demo.localhost).
type testGateway struct {
	*Gateway
	srv    *Server
	client *http.Client
}

func startGateway(t *testing.T, cfg Config) *testGateway {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv, err := Listen("127.0.0.1:0", g, cfg.Logger)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	addr := srv.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close the gateway's server: %v", err)
		}
	})
	return &testGateway{Gateway: g, srv: srv, client: &http.Client{Transport: tr}}
}

// get sends a GET for url with the given headers (a "Host" entry sets the
// request's host) and returns the response and its body. It calls
// t.Fatal: call it on the test's goroutine only (else, try).
func (tg *testGateway) get(t *testing.T, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	resp, body, err := tg.try(t, url, header)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// try is get for any goroutine: it returns the error.
func (tg *testGateway) try(t *testing.T, url string, header map[string]string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("new request %s: %w", url, err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := tg.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", fmt.Errorf("GET %s: read the body: %w", url, err)
	}
	return resp, string(body), nil
}

// status GETs url from any goroutine and returns the response's status,
// or 0 after reporting an error.
func (tg *testGateway) status(t *testing.T, url string) int {
	resp, _, err := tg.try(t, url, nil)
	if err != nil {
		t.Error(err)
		return 0
	}
	return resp.StatusCode
}

// decodeSeen decodes the test backend's answer.
func decodeSeen(t *testing.T, body string) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("the backend's answer %q: %v", body, err)
	}
	return s
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(pause)
	}
}
