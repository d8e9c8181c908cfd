package server

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/registry"
)

// Who may do what in the embedded registry, from the real credentials and
// tokens: the server everything; a machine its own project's repository
// and the bases (pull); a registry token its scopes; an API token push
// and pull, never delete; anything else nothing.
func TestRegistryAccess(t *testing.T) {
	p, err := newParts(Config{DataDir: t.TempDir()}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.startStore(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.store.Close() })
	server, _ := p.creds.Server(credential.Registry)
	agentP, _ := p.creds.Agent(credential.Registry, "p", 0)
	natsP, _ := p.creds.Agent(credential.NATS, "p", 0)
	pushBase, _, err := slipway.IssueToken(t.Context(), p.store, "bases", slipway.TokenScope{Action: slipway.ScopePush, Repo: "base/*"})
	if err != nil {
		t.Fatal(err)
	}
	pullBase, _, _ := slipway.IssueToken(t.Context(), p.store, "pull", slipway.TokenScope{Action: slipway.ScopePull, Repo: "base/*"})
	b, err := os.ReadFile(filepath.Join(p.dataDir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin := string(b[:len(b)-1])

	type want struct {
		repo   string
		action registry.Action
		ok     bool
	}
	tests := []struct {
		name, secret string
		wants        []want
	}{
		{"server", server, []want{{"p", registry.Delete, true}, {"base/busybox", registry.Push, true}, {"q", registry.Pull, true}}},
		{"agent of p", agentP, []want{
			{"p", registry.Push, true}, {"p", registry.Pull, true}, {"base/busybox", registry.Pull, true},
			{"q", registry.Push, false}, {"q", registry.Pull, false}, {"p", registry.Delete, false},
			{"base/busybox", registry.Push, false}, {"p/x", registry.Push, false},
		}},
		{"push:base/*", pushBase, []want{{"base/x", registry.Push, true}, {"base/x", registry.Pull, true}, {"demo", registry.Push, false}, {"demo", registry.Pull, false}, {"base/x", registry.Delete, false}}},
		{"pull:base/*", pullBase, []want{{"base/x", registry.Pull, true}, {"base/x", registry.Push, false}}},
		{"admin API token", admin, []want{{"p", registry.Push, true}, {"q", registry.Pull, true}, {"p", registry.Delete, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := p.registryAccess(t.Context(), tt.secret)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.wants {
				if got := a.Allows(w.repo, w.action); got != w.ok {
					t.Errorf("%s may %s %s = %v, want %v", a.Who, w.action, w.repo, got, w.ok)
				}
			}
		})
	}
	expired, _ := p.creds.Agent(credential.Registry, "p", time.Nanosecond)
	time.Sleep(time.Second) // the expiry has a resolution of seconds
	for name, secret := range map[string]string{"a NATS credential": natsP, "an unknown token": "slw_nope", "garbage": "hello", "an expired credential": expired} {
		if a, err := p.registryAccess(t.Context(), secret); err == nil {
			t.Errorf("%s is accepted: %+v", name, a)
		}
	}
}

// A state file of a server from before per-client registry credentials,
// with its shared "registryToken", still reads; the token is not kept.
func TestOldStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(`{"temporalPort": 7233, "natsPort": 4222, "registryToken": "0123abcd"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := loadState(path)
	if err != nil || st.TemporalPort != 7233 || st.NATSPort != 4222 {
		t.Fatalf("loadState = %+v, %v", st, err)
	}
	if err := saveState(path, st); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("0123abcd")) {
		t.Errorf("the saved state keeps the old shared token: %s", b)
	}
}

// An external registry gets none of the server's credentials (the agent
// would send one to a registry that cannot check it), but the login of
// --registry-auth-file, read at each wake; a file without one is an
// error that names the command to fix it.
func TestExternalRegistryLogin(t *testing.T) {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.json")
	p, err := newParts(Config{DataDir: dir, Registry: "registry.example.com:5000/team"}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.agentCredentials("web")
	if err != nil || c.Registry != "" || c.RegistryUser != "" || c.NATS == "" {
		t.Errorf("credentials with an external registry = %+v, %v; want NATS's and Temporal's only", c, err)
	}
	p.cfg.RegistryAuthFile = authFile
	if _, err := p.agentCredentials("web"); err == nil || !strings.Contains(err.Error(), "podman login --authfile "+authFile+" registry.example.com:5000") {
		t.Errorf("credentials with a missing auth file: %v; want an error naming the podman login to run", err)
	}
	if err := buildah.WriteAuthFile(authFile, "registry.example.com:5000", "ci-bot", "hunter2"); err != nil {
		t.Fatal(err)
	}
	c, err = p.agentCredentials("web")
	if err != nil || c.RegistryUser != "ci-bot" || c.Registry != "hunter2" {
		t.Errorf("credentials with an auth file = %+v, %v; want its login ci-bot:hunter2", c, err)
	}
}
