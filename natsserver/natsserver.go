// Package natsserver embeds a NATS server with JetStream on disk, so that
// `slipway server` needs no external message bus: the agents' log lines
// (stream natslog.StreamName), deployment events and build-secret requests
// all travel through it. Start makes sure the log stream exists with its
// limits. Every client authenticates with a credential of package
// credential, and an agent's connections may only do its own project's
// part of that (AgentPermissions, auth.go).
//
// It only starts and stops the server. It must not publish, consume or
// interpret messages (the packages that use the bus do), and nothing on
// the agent's side may import it: it links the whole nats-server, which
// the agent binary, built to start fast, must not carry.
package natsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/natslog"
)

// Config configures the embedded NATS server.
type Config struct {
	// StoreDir is where JetStream keeps the stream on disk (created if
	// missing). Restarting on the same StoreDir keeps every stored line.
	StoreDir string
	// Host is the address clients connect to; default 127.0.0.1.
	Host string
	// Port is the client port; 0 picks a free one (URL reports it).
	Port int
	// MaxAge is how long the log stream keeps a line; default
	// natslog.DefaultMaxAge.
	MaxAge time.Duration
	// Credentials checks every client's credential (a credential.NATS,
	// sent as the connection's token or password, see Check): the
	// server's own may do anything, an agent's only what AgentPermissions
	// allows its project. Required: no client connects without one.
	Credentials *credential.Issuer
	// Logger, when set, gets the server's warnings and errors (never its
	// notices or traces) and the clients it refused; default none.
	Logger *slog.Logger
}

// Server is an embedded NATS server with JetStream on disk and the log
// stream in place.
type Server struct {
	ns    *server.Server
	creds *credential.Issuer
	once  sync.Once
}

// readyTimeout bounds how long Start waits for the server to accept
// connections (JetStream recovers its store before that).
const readyTimeout = 10 * time.Second

// Start starts an embedded NATS server with JetStream storing in
// cfg.StoreDir, waits until it accepts connections, and makes sure the log
// stream exists with the configured limits. The server installs no signal
// handlers and prints nothing; its warnings and errors go to cfg.Logger if
// set. Call Shutdown to stop it.
func Start(cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("start nats: no store directory")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("start nats: no credential issuer to check clients with")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	ns, err := server.NewServer(&server.Options{
		ServerName:             "slipway",
		Host:                   cfg.Host,
		Port:                   cfg.Port,
		JetStream:              true,
		StoreDir:               cfg.StoreDir,
		NoSigs:                 true,
		NoLog:                  true,
		DisableJetStreamBanner: true,
		// Every client presents a credential (auth.go).
		CustomClientAuthentication: &authenticator{creds: cfg.Credentials, log: cfg.Logger},
	})
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	logger := &serverLogger{log: cfg.Logger, fatal: make(chan string, 1)}
	ns.SetLoggerV2(logger, false, false, false)
	s := &Server{ns: ns, creds: cfg.Credentials}
	go ns.Start()
	// Wait for the client port, but give up at once when the server
	// reports a fatal error (port in use, store unusable).
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(max(cfg.Port, 0)))
	for deadline := time.Now().Add(readyTimeout); !ns.ReadyForConnections(50 * time.Millisecond); {
		select {
		case msg := <-logger.fatal:
			s.Shutdown()
			return nil, fmt.Errorf("start nats on %s: %s", addr, msg)
		default:
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			return nil, fmt.Errorf("start nats on %s: not ready after %s", addr, readyTimeout)
		}
	}
	if !ns.JetStreamEnabled() {
		s.Shutdown()
		return nil, fmt.Errorf("start nats: JetStream did not start in %s", cfg.StoreDir)
	}
	if err := s.ensureStream(cfg.MaxAge); err != nil {
		s.Shutdown()
		return nil, fmt.Errorf("start nats: %w", err)
	}
	return s, nil
}

func (s *Server) ensureStream(maxAge time.Duration) error {
	tok, err := s.creds.Server(credential.NATS)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(s.URL(), nats.InProcessServer(s.ns), nats.Name("slipway-natslog-setup"), nats.Token(tok))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	return natslog.EnsureStream(ctx, js, maxAge)
}

// URL returns the client URL, with the real port when Port was 0.
func (s *Server) URL() string {
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until it has stopped. It is safe to
// call more than once.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}

// serverLogger keeps the embedded server quiet: it passes warnings and
// errors to an optional slog.Logger and reports the first fatal error to
// Start.
type serverLogger struct {
	log   *slog.Logger
	fatal chan string
}

func (l *serverLogger) Noticef(string, ...any) {}
func (l *serverLogger) Debugf(string, ...any)  {}
func (l *serverLogger) Tracef(string, ...any)  {}

func (l *serverLogger) Warnf(format string, v ...any) {
	if l.log != nil {
		l.log.Warn("nats: " + fmt.Sprintf(format, v...))
	}
}

func (l *serverLogger) Errorf(format string, v ...any) {
	if l.log != nil {
		l.log.Error("nats: " + fmt.Sprintf(format, v...))
	}
}

func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.Errorf("%s", msg)
	select {
	case l.fatal <- msg:
	default:
	}
}
