// Package logtest holds what the tests of the log pipeline (packages
// natslog, natslog/publish, natslog/archive, natsserver, events) share: an
// embedded NATS server per test, publishers and archivers that stop with
// the test, the real store with the test's deployments (Store), and
// helpers that check what reached the stream or the store.
//
// It is for tests only; no package outside tests may import it.
package logtest

import (
	"crypto/rand"
	"net/url"
	"strconv"
	"testing"

	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/natsserver"
)

// Project is the project the tests' deployments belong to.
const Project = "demo"

// Credentials is the issuer every test NATS server of the process checks
// its clients with (unless the test passes its own): one key, so that a
// server restarted on the same port accepts the clients of the one before.
var Credentials = newIssuer()

func newIssuer() *credential.Issuer {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	i, err := credential.New(key)
	if err != nil {
		panic(err)
	}
	return i
}

// Server is an embedded NATS server of a test.
type Server struct {
	*natsserver.Server
	creds *credential.Issuer
}

// URL returns the client URL with a server credential in it (as the
// URL's user, which NATS clients send as their token), so that the test's
// clients connect as the control plane's own.
func (s *Server) URL() string {
	tok, err := s.creds.Server(credential.NATS)
	if err != nil {
		panic(err)
	}
	return WithToken(s.Server.URL(), tok)
}

// PlainURL returns the client URL without a credential.
func (s *Server) PlainURL() string { return s.Server.URL() }

// WithToken returns the nats:// URL rawURL with token as its user.
func WithToken(rawURL, token string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	u.User = url.User(token)
	return u.String()
}

// StartServer starts an embedded NATS server (in a temporary directory
// unless cfg.StoreDir is set, checking clients with Credentials unless
// cfg.Credentials is set) that stops when the test ends.
func StartServer(t testing.TB, cfg natsserver.Config) *Server {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	if cfg.Credentials == nil {
		cfg.Credentials = Credentials
	}
	s, err := natsserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return &Server{Server: s, creds: cfg.Credentials}
}

// StoppableServer starts a NATS server the test stops itself, and returns
// its store directory and port for a restart.
func StoppableServer(t testing.TB) (*Server, string, int) {
	t.Helper()
	dir := t.TempDir()
	s := StartServer(t, natsserver.Config{StoreDir: dir})
	return s, dir, PortOf(t, s.URL())
}

// PortOf returns the port of a nats:// URL.
func PortOf(t testing.TB, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("URL %q: %v", rawURL, err)
	}
	return port
}
