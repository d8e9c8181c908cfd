package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/buildah/baseimage"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/podman"
)

// The registry asks everyone: a user pushes a base image of their own with
// `podman login` and a push:base/* registry token, as the README says; a
// project builds FROM it; then a local user without a credential, a build
// of project p that escaped with p's machine credential, and a pull-only
// token try to push, overwrite, delete and read what is not theirs. Every
// attempt is refused and no image changes.
func TestAttackRegistry(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	base := s.Host + "/base/mine:1"
	podmanLoginAndPush(t, s, base)

	images := map[string]image{}
	for _, project := range []string{"p", "q"} {
		dir, sha := testenv.GitRepo(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN echo " + project + " > /project\n"})
		s.addProject(t, project, dir)
		if d := s.deployWait(t, project, sha); d.Status != "succeeded" {
			t.Fatalf("deployment of %s: %s", project, d.Status)
		}
		images[project] = registryImage(t, s.Host, project, sha)
	}
	images["base"] = registryImage(t, s.Host, "base/mine", "1")
	credP, natsP := machineCredentials(t, s, "p")
	forged := forgeServerCredential(t, credP)
	out, code := s.cli(t, "token", "create", "--name", "reader", "--scope", "pull:base/*")
	pullToken, _, _ := strings.Cut(out, "\n")
	if code != 0 {
		t.Fatalf("token create --scope pull:base/*: %s", out)
	}

	p, q, b := images["p"], images["q"], images["base"]
	for _, a := range []struct {
		name, attacker string
		args           []string
		// secrets the attacker must not see.
		secrets []string
	}{
		{"registry: push a blob and a manifest over p's tag without a credential", "registry-push", p.push(s.Host, ""), nil},
		{"registry: delete p's manifest without a credential", "registry-delete", []string{s.Host, "p", p.digest}, nil},
		{"registry: read p's manifest without a credential", "registry-pull", []string{s.Host, "p", p.tag}, []string{p.config}},
		{"registry: list the catalog without a credential", "registry-catalog", []string{s.Host}, nil},
		{"registry: p's escaped build overwrites q's tag", "registry-push", q.push(s.Host, credP), nil},
		{"registry: p's escaped build deletes p's own manifest", "registry-delete", []string{s.Host, "p", p.digest, credP}, nil},
		{"registry: p's escaped build reads q's manifest", "registry-pull", []string{s.Host, "q", q.tag, credP}, []string{q.config}},
		{"registry: p's escaped build mounts q's config into p", "registry-mount", []string{s.Host, "p", "q", q.config, credP}, nil},
		{"registry: p's escaped build overwrites a base image", "registry-push", b.push(s.Host, credP), nil},
		{"registry: a pull:base/* token overwrites a base image", "registry-push", b.push(s.Host, pullToken), nil},
		{"registry: p's escaped build deletes with its NATS credential", "registry-delete", []string{s.Host, "q", q.digest, natsP}, nil},
		{"registry: p's escaped build deletes with its credential made the server's", "registry-delete", []string{s.Host, "q", q.digest, forged}, nil},
	} {
		r := runAttacker(t, a.attacker, a.args...)
		attack(t, a.name, r, a.secrets...)
		if r.Wrote {
			foreignImageWritten(t, a.name, a.args[0]+"/"+a.args[1])
		}
	}
	for name, img := range images {
		if now := registryImage(t, s.Host, img.repo, img.tag); now.digest != img.digest {
			foreignImageWritten(t, "registry attacks", s.Host+"/"+img.repo+":"+img.tag)
			t.Errorf("%s's image %s:%s is now %s, was %s", name, img.repo, img.tag, now.digest, img.digest)
		}
	}
}

// image is an image in the registry.
type image struct {
	repo, tag, digest string
	// config is its config blob's digest, configSize its size.
	config     string
	configSize int
}

// push is the registry-push attacker's arguments to overwrite img.
func (img image) push(host, secret string) []string {
	args := []string{host, img.repo, img.tag, img.config, strconv.Itoa(img.configSize)}
	if secret != "" {
		args = append(args, secret)
	}
	return args
}

func registryImage(t *testing.T, host, repo, tag string) image {
	t.Helper()
	raw, digest := manifest(t, host, repo, tag)
	var m struct {
		Config struct {
			Digest string `json:"digest"`
			Size   int    `json:"size"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Config.Digest == "" {
		t.Fatalf("manifest of %s:%s without config: %v %s", repo, tag, err, raw)
	}
	return image{repo: repo, tag: tag, digest: digest, config: m.Config.Digest, configSize: m.Config.Size}
}

// machineCredentials reads the registry and NATS credentials of
// project's machine from its agent.json, as a build that escaped its
// container might.
func machineCredentials(t *testing.T, s *serverProc, project string) (registry, nats string) {
	t.Helper()
	cfg, err := builder.ReadAgentConfig(filepath.Join(s.DataDir, "volumes", project, "agent.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Credentials.Registry == "" || cfg.Credentials.NATS == "" {
		t.Fatalf("the machine of %s lacks a registry or NATS credential: %+v", project, cfg.Credentials)
	}
	return cfg.Credentials.Registry, cfg.Credentials.NATS
}

// forgeServerCredential turns a machine's credential into one that claims
// to be the server's (no project), keeping its signature.
func forgeServerCredential(t *testing.T, cred string) string {
	t.Helper()
	body, sig, _ := strings.Cut(strings.TrimPrefix(cred, credential.Prefix), ".")
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	delete(claims, "p")
	delete(claims, "e")
	payload, _ = json.Marshal(claims)
	return credential.Prefix + base64.RawURLEncoding.EncodeToString(payload) + "." + sig
}

// podmanLoginAndPush does what the README tells a user who pushes a base
// image of their own: make a push:base/* registry token, `podman login`
// with it (any user name), push ref. A pull:base/* token's login cannot
// push.
func podmanLoginAndPush(t *testing.T, s *serverProc, ref string) {
	t.Helper()
	dir := t.TempDir()
	cfg := podman.ConfigAt(dir)
	// podman login writes here, and podman push reads it.
	cfg.AuthFile = filepath.Join(dir, "auth.json")
	p, err := podman.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = p.Reset(ctx)
		_ = buildah.UnmountUnder(dir)
	})
	if err := p.Import(t.Context(), testenv.BusyboxRootfsTar(t), ref, baseimage.Changes...); err != nil {
		t.Fatal(err)
	}
	login := func(scope string) {
		out, code := s.cli(t, "token", "create", "--name", "podman", "--scope", scope)
		token, _, _ := strings.Cut(out, "\n")
		if code != 0 {
			t.Fatalf("token create --scope %s: %s", scope, out)
		}
		cmd := p.Command(t.Context(), "login", "--tls-verify=false", "--username", "anyone", "--password-stdin", s.Host)
		cmd.Stdin = strings.NewReader(token + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("podman login with a %s token: %v: %s", scope, err, out)
		}
	}
	login("pull:base/*")
	if _, err := p.Push(t.Context(), ref, false, nil); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("podman push after a login with a pull:base/* token = %v, want denied", err)
	}
	login("push:base/*")
	if _, err := p.Push(t.Context(), ref, false, nil); err != nil {
		t.Fatalf("podman push after podman login with a push:base/* token: %v", err)
	}
	if b, err := os.ReadFile(cfg.AuthFile); err != nil || !strings.Contains(string(b), s.Host) {
		t.Fatalf("podman login wrote no login for %s: %v %s", s.Host, err, b)
	}
}
