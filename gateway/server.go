package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultListen is the gateway's listen address when --apps-listen is not
// given: loopback only; put a TLS proxy in front to expose the apps.
const DefaultListen = "127.0.0.1:8081"

// Server serves a Gateway on its own listener. Create it with Listen and
// stop it with Close.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	gw   *Gateway
	done chan struct{} // closed when Serve has returned
	err  error         // Serve's error, other than ErrServerClosed

	closeOnce sync.Once
	closeErr  error
}

// Listen listens on addr (host:port; port 0 picks one) and serves gw there
// in a goroutine the Server owns, until Close. The listener speaks
// HTTP/1.1 and HTTP/2 without TLS (h2c with prior knowledge). Its
// timeouts bound only what a client may take to send its request's
// headers and how long an idle keep-alive connection stays: no read or
// write timeout, which would cut long uploads, streamed responses and
// WebSockets.
func Listen(addr string, gw *Gateway, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("apps gateway: listen on %s: %w", addr, err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s := &Server{
		srv: &http.Server{
			Handler:           gw,
			Protocols:         &protocols,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    1 << 20,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		gw:   gw,
		done: make(chan struct{}),
	}
	go s.serve()
	return s, nil
}

func (s *Server) serve() {
	defer close(s.done)
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		s.err = fmt.Errorf("apps gateway: serve on %s: %w", s.ln.Addr(), err)
	}
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server: it stops listening, closes the gateway (wakes
// in flight and WebSockets end), lets the requests in flight finish until
// ctx ends, then cuts the connections left, and waits for the serving
// goroutine. It returns Serve's error, if Serve failed, or ctx's if the
// requests did not finish in time. It is safe to call more than once.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.gw.Close()
		err := s.srv.Shutdown(ctx)
		if err != nil {
			_ = s.srv.Close()
		}
		<-s.done
		s.closeErr = errors.Join(s.err, err)
	})
	return s.closeErr
}
