package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"
)

// targetKey is the request context's key for the backend's address.
type targetKey struct{}

// newTransport returns the transport shared by every backend: HTTP/1.1
// with keep-alive (the apps speak plain HTTP/1.1), no transparent
// compression (the app's encoding passes through untouched), and a dialer
// that retries a refused connection for cfg.ConnectRetry; requests
// without a body take its lean path (leanTransport).
func newTransport(cfg Config) *leanTransport {
	d := &retryDialer{dial: cfg.Dial, retry: cfg.ConnectRetry}
	if d.dial == nil {
		nd := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		d.dial = nd.DialContext
	}
	std := &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          0, // no limit over all backends
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerApp,
		IdleConnTimeout:       idleConnTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	return &leanTransport{std: std, dial: d.DialContext, maxIdle: cfg.MaxIdleConnsPerApp, idleFor: idleConnTimeout}
}

// idleConnTimeout is how long a kept-alive connection to a backend stays
// unused before it is closed.
const idleConnTimeout = 90 * time.Second

// retryDialer dials a backend, retrying a refused connection: right after
// a wake the app may still be binding its port.
type retryDialer struct {
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	retry time.Duration
}

// DialContext dials addr, retrying while it is refused, for at most
// d.retry, and returns the last error then.
func (d *retryDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	deadline := time.Now().Add(d.retry)
	pause := 5 * time.Millisecond
	for {
		c, err := d.dial(ctx, network, addr)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
			return c, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, err
		}
		t := time.NewTimer(min(pause, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// rewrite makes the outbound request: to the backend chosen by
// ServeHTTP, with the client's Host kept, and X-Forwarded-* set.
// ReverseProxy has removed the hop-by-hop headers, Forwarded and the
// inbound X-Forwarded-For/-Host/-Proto from pr.Out already.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	addr, _ := pr.In.Context().Value(targetKey{}).(string)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = addr
	pr.Out.Host = pr.In.Host
	if g.trusted(pr.In.RemoteAddr) {
		forwardTrusted(pr)
		return
	}
	pr.Out.Header.Del("X-Real-Ip") // ReverseProxy removed Forwarded
	pr.SetXForwarded()
}

// forwardTrusted sets X-Forwarded-* for a request from a trusted proxy:
// its X-Forwarded-For with its own address appended, its X-Forwarded-Host,
// a valid X-Forwarded-Proto and its Forwarded kept.
func forwardTrusted(pr *httputil.ProxyRequest) {
	in := pr.In.Header
	if prior := in.Values("X-Forwarded-For"); len(prior) > 0 {
		pr.Out.Header.Set("X-Forwarded-For", strings.Join(prior, ", "))
	}
	pr.SetXForwarded() // appends the peer; sets -Host to Host, -Proto to http
	if fwd := in.Values("Forwarded"); len(fwd) > 0 {
		pr.Out.Header["Forwarded"] = fwd
	}
	if h := in.Get("X-Forwarded-Host"); h != "" {
		pr.Out.Header.Set("X-Forwarded-Host", h)
	}
	switch p := strings.ToLower(in.Get("X-Forwarded-Proto")); p {
	case "http", "https":
		pr.Out.Header.Set("X-Forwarded-Proto", p)
	}
}

// trusted reports whether the peer at remoteAddr (ip:port) is one of
// Config.TrustedProxies.
func (g *Gateway) trusted(remoteAddr string) bool {
	if len(g.cfg.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range g.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// backendError answers a request whose backend failed (refused after
// ConnectRetry, reset, timed out) with a 502 page. A client that left
// gets nothing and is not logged.
func (g *Gateway) backendError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	route, _ := parseHost(r.Host, g.cfg.Domain)
	g.cfg.Logger.Warn("app did not answer", slog.String("project", route.Project), slog.Int("preview", route.Preview),
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	g.page(w, r, page{status: http.StatusBadGateway, title: "The app did not answer",
		message: "The app is running but did not answer this request."})
}

// bufferPool lends ReverseProxy the buffers it copies bodies with, so that
// a request does not allocate its own 32 KB.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte { return *buffers.Get().(*[]byte) }

func (bufferPool) Put(b []byte) {
	if cap(b) >= 32<<10 {
		b = b[:cap(b)]
		buffers.Put(&b)
	}
}
