package testenv

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-ci/slipway/registry"
)

// RegistryToken is the credential Registry accepts (any user name): it may
// do everything.
const RegistryToken = "test-token"

// Registry starts the embedded registry on a loopback port with storage in
// a temporary directory and returns its host ("127.0.0.1:port"), which
// podman reaches over plain HTTP (tls-verify false). It accepts
// RegistryToken only, like any registry of Slipway's asks everyone; the
// host's entry is added to RegistryAuthFile, which the builders of Builder
// and Podman use.
func Registry(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := registry.New(ctx, registry.Config{
		RootDir: t.TempDir(),
		Authenticate: func(_ context.Context, secret string) (*registry.Access, error) {
			if secret != RegistryToken {
				return nil, errors.New("not the test token")
			}
			all := []registry.Action{registry.Pull, registry.Push, registry.Delete}
			return &registry.Access{Who: "test", Rules: []registry.Rule{{Repo: "*", Actions: all}}}, nil
		},
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
	host := strings.TrimPrefix(srv.URL, "http://")
	LogIn(t, host, RegistryToken)
	return host
}

// LogIn adds the registry host with password to RegistryAuthFile, for a
// registry of the test's own.
func LogIn(t testing.TB, host, password string) {
	t.Helper()
	if err := addAuth(host, password); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

var auth struct {
	sync.Mutex
	path  string
	hosts map[string]any
}

// RegistryAuthFile returns the containers-auth.json file (the format of
// podman login's) with RegistryToken for every Registry of this test
// process; buildah and podman find it as REGISTRY_AUTH_FILE.
func RegistryAuthFile() string {
	auth.Lock()
	defer auth.Unlock()
	if auth.path == "" {
		dir, err := os.MkdirTemp("", "slipway-testenv-auth-")
		if err != nil {
			panic("testenv: " + err.Error())
		}
		// Readable by the tests' other users (rootless builders): it holds
		// the test token only.
		_ = os.Chmod(dir, 0o755)
		auth.path = filepath.Join(dir, "auth.json")
		auth.hosts = map[string]any{}
		if err := writeAuthLocked(); err != nil {
			panic("testenv: " + err.Error())
		}
	}
	return auth.path
}

func addAuth(host, password string) error {
	RegistryAuthFile()
	auth.Lock()
	defer auth.Unlock()
	auth.hosts[host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("test:" + password))}
	return writeAuthLocked()
}

func writeAuthLocked() error {
	b, err := json.Marshal(map[string]any{"auths": auth.hosts})
	if err != nil {
		return err
	}
	tmp := auth.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, auth.path)
}
