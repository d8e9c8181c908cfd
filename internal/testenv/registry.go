package testenv

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/registry"
)

// RegistryToken is the token non-loopback clients of Registry must send.
const RegistryToken = "test-token"

// Registry starts the embedded registry on a loopback port with storage in
// a temporary directory and returns its host ("127.0.0.1:port"), which
// podman reaches over plain HTTP (tls-verify false).
func Registry(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := registry.New(ctx, registry.Config{
		RootDir: t.TempDir(),
		Token:   RegistryToken,
	})
	if err != nil {
		cancel()
		t.Fatalf("testenv: %v", err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		reg.Close()
	})
	return strings.TrimPrefix(srv.URL, "http://")
}
