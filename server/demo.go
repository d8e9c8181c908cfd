package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/buildah/baseimage"
	"github.com/slipway-ci/slipway/deploy"
)

// demoProject is the name of the project --demo creates.
const demoProject = "demo"

// demoBaseImage is the base image the demo Dockerfile starts FROM; no
// public registry is needed: it is made from Debian's busybox-static and
// pushed to the server's own registry.
const demoBaseImage = "base/busybox:1"

type demoConfig struct {
	DataDir   string
	Registry  registryClient
	Store     slipway.Store
	Deployer  slipway.Deployer
	PublicURL string
	Logger    *slog.Logger
}

// setUpDemo makes a local git repository with a small app, a base image in
// the registry, a "demo" project pointing at the repository, and deploys
// it once. Everything it creates lives in the data directory; running it
// again reuses what exists.
func setUpDemo(ctx context.Context, cfg demoConfig) error {
	dir := filepath.Join(cfg.DataDir, "demo")
	base := cfg.Registry.host + "/" + demoBaseImage
	_, tag, _ := strings.Cut(demoBaseImage, ":")
	if ok, _ := cfg.Registry.ImageExists(ctx, base, tag); !ok {
		if err := pushDemoBase(ctx, cfg, dir, base); err != nil {
			return err
		}
	}

	repo := filepath.Join(dir, "repo")
	if _, err := os.Stat(filepath.Join(repo, ".git")); os.IsNotExist(err) {
		files := map[string]string{
			"Dockerfile": "FROM " + base + "\n" +
				"WORKDIR /app\n" +
				"COPY index.html /app/index.html\n" +
				"RUN echo \"built by Slipway on $(date -u)\" > /app/BUILD && cat /app/BUILD\n" +
				"EXPOSE 8000\n" +
				"CMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/app\"]\n",
			"index.html": "<!doctype html><h1>Hello from the Slipway demo</h1>\n",
			"README.md":  "A demo app for Slipway: edit index.html, commit, and run `slipway deploy demo`.\n",
		}
		if err := os.MkdirAll(repo, 0o755); err != nil {
			return err
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(repo, name), []byte(body), 0o644); err != nil {
				return err
			}
		}
		for _, args := range [][]string{
			{"init", "-q", "-b", "main"},
			{"add", "-A"},
			{"-c", "user.name=Slipway", "-c", "user.email=demo@slipway.local", "commit", "-q", "-m", "Demo app"},
		} {
			cmd := exec.CommandContext(ctx, "git", args...)
			cmd.Dir = repo
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("demo repository: git %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
	}

	// Rootless builders fetch the repository as the project's own user:
	// they must pass through the demo directory (made private with the
	// rest of the data directory at start, and 0700 from the builder's
	// storage set-up) to the repository, which holds nothing secret.
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(repo, 0o755); err != nil {
		return err
	}

	if err := createDemoProject(ctx, cfg.Store, repo); err != nil {
		return err
	}
	ds, err := cfg.Store.Deployments(ctx, demoProject, 1)
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		d, _, err := cfg.Deployer.Deploy(ctx, slipway.DeployRequest{Project: demoProject, Trigger: slipway.TriggerDemo})
		if err != nil {
			return fmt.Errorf("deploy demo: %w", err)
		}
		cfg.Logger.Info("demo: first deployment started", "deployment", d.ID)
	}
	cfg.Logger.Info("demo project ready", "repo", repo,
		"try", "slipway deployments demo; slipway logs <id>; edit "+filepath.Join(repo, "index.html")+", commit, then slipway deploy demo --wait")
	return nil
}

// pushDemoBase makes the demo's base image from busybox-static and
// pushes it with the server's own registry credential.
func pushDemoBase(ctx context.Context, cfg demoConfig, dir, base string) error {
	cfg.Logger.Info("demo: making the base image from busybox-static", "image", base)
	bcfg := buildah.ConfigAt(filepath.Join(dir, "buildah"))
	if cfg.Registry.cred != "" {
		// The server's own login, in a 0600 file of the server's.
		bcfg.AuthFile = filepath.Join(dir, "registry-auth.json")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := buildah.WriteAuthFile(bcfg.AuthFile, strings.SplitN(cfg.Registry.host, "/", 2)[0], cfg.Registry.user, cfg.Registry.cred); err != nil {
			return err
		}
	}
	b, err := buildah.New(ctx, bcfg)
	if err != nil {
		return err
	}
	if err := baseimage.Busybox(ctx, b, base); err != nil {
		return err
	}
	if _, err := b.Push(ctx, base, cfg.Registry.tlsVerify, nil); err != nil {
		return fmt.Errorf("push demo base image: %w", err)
	}
	return nil
}

// createDemoProject creates the demo project on repo through the project
// service, as the API would, with the defaults of any project, unless it
// exists already.
func createDemoProject(ctx context.Context, store slipway.Store, repo string) error {
	_, err := store.Project(ctx, demoProject)
	if slipway.ErrorCode(err) != slipway.ENOTFOUND {
		return err
	}
	projects := deploy.NewProjects(deploy.ProjectsConfig{Store: store})
	if _, err := projects.Create(ctx, deploy.NewProject{Name: demoProject, Repo: "file://" + repo}); err != nil {
		return fmt.Errorf("demo project: %w", err)
	}
	return nil
}
