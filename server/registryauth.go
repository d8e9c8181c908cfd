package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/registry"
)

// baseRepos names the shared base images every project's builds may pull
// (the demo's base/busybox, and what users push with a push:base/* token).
const baseRepos = "base/*"

var (
	pullOnly     = []registry.Action{registry.Pull}
	pushPull     = []registry.Action{registry.Pull, registry.Push}
	everyAction  = []registry.Action{registry.Pull, registry.Push, registry.Delete}
	errNotSecret = errors.New("not a registry credential")
)

// registryAccess is the embedded registry's Config.Authenticate: what the
// credential secret may do.
//
//   - the server's own registry credential: everything, delete included
//     (only the server deletes);
//   - a machine's (credential.Registry of project P, issued at its wake):
//     push and pull P, pull base/*;
//   - a registry token (an API token with scopes): push (and pull) or
//     pull what its scopes name;
//   - an API token without scopes: push and pull everything, never
//     delete.
func (p *parts) registryAccess(ctx context.Context, secret string) (*registry.Access, error) {
	switch {
	case strings.HasPrefix(secret, credential.Prefix):
		c, err := p.creds.Verify(credential.Registry, secret)
		if err != nil {
			return nil, err
		}
		if c.Server() {
			return &registry.Access{Who: "server", Rules: []registry.Rule{{Repo: "*", Actions: everyAction}}}, nil
		}
		return &registry.Access{Who: "agent of " + c.Project, Rules: []registry.Rule{
			{Repo: c.Project, Actions: pushPull},
			{Repo: baseRepos, Actions: pullOnly},
		}}, nil
	case strings.HasPrefix(secret, slipway.TokenPrefix):
		return p.tokenAccess(ctx, secret)
	}
	return nil, errNotSecret
}

// tokenAccess is what the API or registry token secret may do in the
// registry.
func (p *parts) tokenAccess(ctx context.Context, secret string) (*registry.Access, error) {
	t, err := p.store.TokenByHash(ctx, slipway.HashToken(secret))
	if err != nil {
		return nil, err
	}
	if now := time.Now().UTC(); t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= time.Minute {
		if err := p.store.TouchToken(ctx, t.ID, now); err != nil {
			p.log.Warn("registry: record API token use", "token", t.ID, "error", err)
		}
	}
	a := &registry.Access{Who: "token " + t.ID}
	if len(t.Scopes) == 0 {
		a.Rules = []registry.Rule{{Repo: "*", Actions: pushPull}}
		return a, nil
	}
	for _, sc := range t.Scopes {
		actions := pullOnly
		if sc.Action == slipway.ScopePush {
			actions = pushPull
		}
		a.Rules = append(a.Rules, registry.Rule{Repo: sc.Repo, Actions: actions})
	}
	return a, nil
}

// externalRegistryLogin is the login to the external registry in
// cfg.RegistryAuthFile (read at each call, so a rotated file takes
// effect at the next wake), or none.
func externalRegistryLogin(cfg Config) (user, password string, err error) {
	if cfg.RegistryAuthFile == "" {
		return "", "", nil
	}
	host := strings.SplitN(cfg.Registry, "/", 2)[0]
	user, password, ok, err := buildah.AuthFileLogin(cfg.RegistryAuthFile, host)
	if err != nil {
		return "", "", fmt.Errorf("--registry-auth-file: %w", err)
	}
	if !ok {
		return "", "", fmt.Errorf("--registry-auth-file %s has no login for %s (podman login --authfile %s %s)", cfg.RegistryAuthFile, host, cfg.RegistryAuthFile, host)
	}
	return user, password, nil
}
