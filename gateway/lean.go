package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// leanTransport is the gateway's transport to backends. A request
// without a body and without an upgrade (most of them: GET, HEAD) is sent
// over a kept-alive HTTP/1.1 connection of its own pool, written and its
// answer read in the calling goroutine: http.Transport hands every
// request to a writing and a reading goroutine of the connection, a cost
// that shows on a fast app (make bench-runtime). Any other request (a
// body to stream while the answer may come, a WebSocket) goes through
// std.
type leanTransport struct {
	std     *http.Transport
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle int           // idle connections kept per backend
	idleFor time.Duration // how long one is kept

	mu   sync.Mutex
	idle map[string][]*leanConn // by backend address, most recent last
}

// leanConn is one kept-alive connection to a backend.
type leanConn struct {
	addr  string
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time // idle since
}

// RoundTrip implements http.RoundTripper.
func (t *leanTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !leanable(req) {
		return t.std.RoundTrip(req)
	}
	for attempt := 0; ; attempt++ {
		pc, reused, err := t.get(req.Context(), req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := t.roundTrip(pc, req)
		if err == nil {
			return resp, nil
		}
		// A kept connection the backend closed meanwhile fails at once:
		// a request that may be sent twice goes again, on a new one.
		if !reused || attempt > 0 || req.Context().Err() != nil || !idempotent(req.Method) {
			return nil, err
		}
	}
}

// leanable says whether req goes through the lean path.
func leanable(req *http.Request) bool {
	return (req.Body == nil || req.Body == http.NoBody) && req.URL.Scheme == "http" &&
		req.Header.Get("Upgrade") == "" && len(req.Trailer) == 0
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// roundTrip writes req on pc and reads its answer's head; the body returned
// gives pc back to the pool once read to its end and closed. On an error
// pc is closed.
func (t *leanTransport) roundTrip(pc *leanConn, req *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(req.Context(), func() { pc.c.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.c.Close()
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	if err := req.Write(pc.bw); err != nil {
		return fail(err)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err)
	}
	for {
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			return fail(err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // an interim answer (100 Continue, 103 Early Hints)
		}
		reuse := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
		resp.Body = &leanBody{rc: resp.Body, pc: pc, t: t, stop: stop, reuse: reuse}
		return resp, nil
	}
}

// leanBody is an answer's body; closing it gives its connection back to
// the pool when it was read to its end, or closes the connection.
type leanBody struct {
	rc    io.ReadCloser
	pc    *leanConn
	t     *leanTransport
	stop  func() bool
	reuse bool

	once sync.Once
	eof  bool
}

func (b *leanBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *leanBody) Close() error {
	b.once.Do(func() {
		if !b.eof {
			// net/http's Close of an answer's body reads the rest: cut
			// the connection first, for a stream may not end.
			b.pc.c.Close()
		}
		_ = b.rc.Close()
		if b.stop() && b.eof && b.reuse {
			b.t.put(b.pc)
			return
		}
		b.pc.c.Close()
	})
	return nil
}

// get returns a kept connection to addr (reused true) or dials one.
func (t *leanTransport) get(ctx context.Context, addr string) (*leanConn, bool, error) {
	now := time.Now()
	t.mu.Lock()
	for pcs := t.idle[addr]; len(pcs) > 0; pcs = t.idle[addr] {
		pc := pcs[len(pcs)-1]
		t.idle[addr] = pcs[:len(pcs)-1]
		if now.Sub(pc.since) < t.idleFor {
			t.mu.Unlock()
			return pc, true, nil
		}
		pc.c.Close()
	}
	t.mu.Unlock()
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &leanConn{addr: addr, c: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096)}, false, nil
}

// put keeps pc for the next request to its backend, if there is room.
func (t *leanTransport) put(pc *leanConn) {
	pc.since = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idle == nil {
		t.idle = map[string][]*leanConn{}
	}
	if len(t.idle[pc.addr]) >= t.maxIdle {
		pc.c.Close()
		return
	}
	t.idle[pc.addr] = append(t.idle[pc.addr], pc)
}

// CloseIdleConnections closes the kept connections of both paths.
func (t *leanTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, pcs := range idle {
		for _, pc := range pcs {
			pc.c.Close()
		}
	}
	t.std.CloseIdleConnections()
}
