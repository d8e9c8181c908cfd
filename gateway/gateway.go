// Package gateway is the apps' gateway: an http.Handler, served on its own
// listener (--apps-listen), that routes a request by its host name
// (`<project>.<domain>`, a preview at `pr-<N>.<project>.<domain>`) to the
// project's running app, waking a sleeping app first and holding the
// request meanwhile, never answering 502 because an app was asleep.
//
// It passes HTTP/1.1, HTTP/2 (h2c on the listener; TLS is terminated in
// front), WebSocket upgrades and streaming responses and request bodies
// through net/http/httputil.ReverseProxy over one shared keep-alive
// transport, sets X-Forwarded-For/-Host/-Proto (trusting a client's own
// only from Config.TrustedProxies), and tells each app when a request or
// an upgraded connection starts and ends, so that an app sleeps only when
// nothing is open.
//
// It does not run apps: how an app is woken, frozen or stopped is the
// business of whatever implements Apps and App (the app runtime). It holds
// no state of its own beyond the wakes in flight.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"time"
)

// Apps finds the app a route names.
type Apps interface {
	// Lookup returns the app of route, or false when there is none (no
	// such project or preview): the gateway then answers 404. It is
	// called for every request, concurrently, and must not block. A wake
	// in flight is shared by route: Lookup returns the same App for a
	// route at least while the App wakes.
	Lookup(route Route) (App, bool)
}

// App is one project's app (or one preview) as the gateway sees it. Its
// methods are called concurrently from many requests.
type App interface {
	// Serving returns the address (host:port, e.g. 127.0.0.1:40123) of
	// the app's backend when the app serves now, without blocking or
	// waking it. It is on every request's path: it must be cheap.
	Serving() (addr string, ok bool)
	// Wake brings the app to serving (thaws, starts, health-checks it) and
	// returns its address and how long each step took. The gateway calls
	// it at most once at a time per app (requests that arrive meanwhile
	// wait for the same wake), with a context that ends at
	// Config.WakeTimeout (or at Close), and must return soon after that
	// context ends; an app that serves already returns at once.
	// An error whose chain holds a *slipway.Error with code
	// slipway.ENOTFOUND (e.g. nothing deployed yet) is answered 404 with
	// its message, a context error 504, any other 502; the pages show
	// slipway.ErrorMessage of the error (never the text of an internal
	// error) and the app's last output.
	Wake(ctx context.Context) (Woken, error)
	// Begin tells the app that a request starts (before it is woken, if it
	// must be); the app must not freeze or stop until the returned end
	// function is called, exactly once, when the request ends: for a
	// WebSocket or another upgraded connection, when the connection
	// closes; for a streamed response, when the last byte is sent. Both
	// calls mark the app's last activity: its idle timer starts when the
	// last open request ends.
	Begin() (end func())
	// LastOutput returns up to n of the app's last output lines (stdout
	// and stderr), oldest first, for the page that explains a failed wake.
	LastOutput(n int) []string
}

// Woken is the result of a wake.
type Woken struct {
	// Addr is the backend's address, host:port.
	Addr string
	// Phases are the steps the wake took, in order (e.g. "thaw", or
	// "start" and "health"), for the Server-Timing header. Empty when the
	// app was serving already.
	Phases []Phase
}

// Phase is one step of a wake and how long it took. Name is an HTTP token
// (letters, digits, '-', '_', '.'); other characters are dropped.
type Phase struct {
	Name string
	Dur  time.Duration
}

// Config configures a Gateway. The zero value of each field is replaced by
// its default in New.
type Config struct {
	// Apps finds the app of a request's host. Required.
	Apps Apps
	// Domain is the apps' domain: apps are served at <project>.<Domain>
	// and previews at pr-<N>.<project>.<Domain>. Default DefaultDomain.
	Domain string
	// WakeTimeout bounds a wake: a request whose app does not serve
	// within it is answered 504 with a page showing the app's last output.
	// Default 30 s.
	WakeTimeout time.Duration
	// MaxQueuedPerApp bounds the requests held while one app wakes;
	// beyond it a request is answered 503 with Retry-After. Default 100.
	MaxQueuedPerApp int
	// ConnectRetry is how long a refused connection to a backend is
	// retried (the app may still be binding its port) before the request
	// is answered 502. Default 2 s.
	ConnectRetry time.Duration
	// Dial connects to a backend's address (what App.Serving and
	// App.Wake return), e.g. the app runtime's DialContext, which enters
	// the app's own network namespace. Its refused connections must wrap
	// syscall.ECONNREFUSED (they are retried for ConnectRetry). Default:
	// a plain TCP dial.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdleConnsPerApp bounds the idle keep-alive connections kept to
	// each backend. Default 256.
	MaxIdleConnsPerApp int
	// OutputLines is how many of the app's last output lines a failed
	// wake's page shows. Default 20.
	OutputLines int
	// TrustedProxies are the peers (e.g. the TLS proxy in front, at
	// 127.0.0.1/32) whose X-Forwarded-For, -Host and -Proto (and
	// Forwarded) are passed on, the peer's address appended. From any
	// other peer they are replaced. Default: none.
	TrustedProxies []netip.Prefix
	// Logger receives wakes and failures. Default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c with its defaults filled in, or an error for a
// value that cannot work.
func (c Config) withDefaults() (Config, error) {
	if c.Apps == nil {
		return c, errors.New("gateway: Config.Apps is required")
	}
	d, err := normalDomain(c.Domain)
	if err != nil {
		return c, fmt.Errorf("gateway: %w", err)
	}
	c.Domain = d
	if c.WakeTimeout <= 0 {
		c.WakeTimeout = 30 * time.Second
	}
	if c.MaxQueuedPerApp <= 0 {
		c.MaxQueuedPerApp = 100
	}
	if c.ConnectRetry <= 0 {
		c.ConnectRetry = 2 * time.Second
	}
	if c.MaxIdleConnsPerApp <= 0 {
		c.MaxIdleConnsPerApp = 256
	}
	if c.OutputLines <= 0 {
		c.OutputLines = 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// flushInterval is how long a part of a response of known length may wait
// in the gateway's buffer.
const flushInterval = 100 * time.Millisecond

// Gateway is the apps' gateway, an http.Handler. Create it with New; Close
// it when its listener is closed.
type Gateway struct {
	cfg       Config
	proxy     *httputil.ReverseProxy
	transport *leanTransport

	// ctx ends at Close: it bounds the wakes in flight and the upgraded
	// connections.
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	wakes map[Route]*wake // the wakes in flight
}

// New returns a Gateway configured by cfg.
func New(cfg Config) (*Gateway, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, wakes: map[Route]*wake{}}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.transport = newTransport(cfg)
	g.proxy = &httputil.ReverseProxy{
		Rewrite:   g.rewrite,
		Transport: g.transport,
		// A streamed response (no length) or an event stream is flushed
		// after every write anyway; one of known length at least every
		// flushInterval, else when done: one write for a small answer,
		// where -1 cost a timer goroutine and a write for the headers
		// alone on every request.
		FlushInterval: flushInterval,
		BufferPool:    bufferPool{},
		ErrorHandler:  g.backendError,
		ErrorLog:      slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return g, nil
}

// Close ends the wakes in flight (their requests are answered 503) and
// the upgraded connections (WebSockets), and closes the idle connections
// to backends. It is safe to call more than once. Requests that arrive
// after it are answered 503.
func (g *Gateway) Close() {
	g.cancel()
	g.transport.CloseIdleConnections()
}

// CloseIdleConnections closes the idle keep-alive connections to all
// backends, e.g. after an app was stopped.
func (g *Gateway) CloseIdleConnections() { g.transport.CloseIdleConnections() }

// ServeHTTP routes r to its app, waking it first if it sleeps.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route, ok := parseHost(r.Host, g.cfg.Domain)
	if !ok {
		g.notFound(w, r)
		return
	}
	app, ok := g.cfg.Apps.Lookup(route)
	if !ok {
		g.notFound(w, r)
		return
	}
	if g.ctx.Err() != nil {
		g.unavailable(w, r, "The gateway is shutting down.", 0)
		return
	}
	end := app.Begin()
	defer end()
	addr, ok := app.Serving()
	if !ok {
		var served bool
		if addr, served = g.hold(w, r, route, app); !served {
			return
		}
	}
	g.forward(w, r, addr)
}

// forward proxies r to the backend at addr. An upgrade request's
// connection is cut when the gateway closes.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, addr string) {
	ctx := context.WithValue(r.Context(), targetKey{}, addr)
	if r.Header.Get("Upgrade") != "" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(g.ctx, cancel)
		defer stop()
	}
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}
