// Package logtest holds what the tests of the log pipeline (packages
// natslog, natslog/publish, natslog/archive, natsserver, events) share: an
// embedded NATS server per test, publishers and archivers that stop with
// the test, the real store with the test's deployments (Store), and
// helpers that check what reached the stream or the store.
//
// It is for tests only; no package outside tests may import it.
package logtest

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/slipway-ci/slipway/natsserver"
)

// Project is the project the tests' deployments belong to.
const Project = "demo"

// StartServer starts an embedded NATS server (in a temporary directory
// unless cfg.StoreDir is set) that stops when the test ends.
func StartServer(t testing.TB, cfg natsserver.Config) *natsserver.Server {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	s, err := natsserver.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// StoppableServer starts a NATS server the test stops itself, and returns
// its store directory and port for a restart.
func StoppableServer(t testing.TB) (*natsserver.Server, string, int) {
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
