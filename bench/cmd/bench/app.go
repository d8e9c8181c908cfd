package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// depVersions are the versions of dayjs the "deps" scenario moves to, one
// per run, so every run changes the dependencies to a state no system has
// seen (going back to an earlier one would hit the layer cache). The app's
// own package.json pins dayjs 1.11.10.
var depVersions = []string{
	"1.11.11", "1.11.12", "1.11.13", "1.11.14", "1.11.15", "1.11.16", "1.11.17",
	"1.11.18", "1.11.19", "1.11.20", "1.11.21", "1.11.22", "1.11.23",
}

const pinnedDayjs = `"dayjs": "1.11.10"`

// depVariant is the app's package.json and package-lock.json with dayjs
// moved to Version, prepared before any measurement.
type depVariant struct {
	Version               string
	PackageJSON, LockJSON []byte
}

// prepareDepVariants makes n variants with `npm install --package-lock-only`
// in scratch copies of the app's manifest (npm talks to the registry, but
// nothing is timed yet).
func prepareDepVariants(ctx context.Context, appDir, workDir string, n int) ([]depVariant, error) {
	pkg, err := os.ReadFile(filepath.Join(appDir, "package.json"))
	if err != nil {
		return nil, err
	}
	lock, err := os.ReadFile(filepath.Join(appDir, "package-lock.json"))
	if err != nil {
		return nil, err
	}
	if !strings.Contains(string(pkg), pinnedDayjs) {
		return nil, fmt.Errorf("%s/package.json does not pin %s, which the deps scenario bumps", appDir, pinnedDayjs)
	}
	var out []depVariant
	for _, v := range depVersions[:n] {
		dir := filepath.Join(workDir, "deps", v)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		vpkg := strings.Replace(string(pkg), pinnedDayjs, `"dayjs": "`+v+`"`, 1)
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(vpkg), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), lock, 0o644); err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, "npm", "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("npm install --package-lock-only (dayjs %s): %w\n%s", v, err, out)
		}
		vlock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
		if err != nil {
			return nil, err
		}
		if !strings.Contains(string(vlock), `"version": "`+v+`"`) {
			return nil, fmt.Errorf("the lock file for dayjs %s does not name that version", v)
		}
		out = append(out, depVariant{Version: v, PackageJSON: []byte(vpkg), LockJSON: vlock})
	}
	return out, nil
}

// appRepo is a git repository holding the sample app, with the Dockerfile's
// base image pointed at the registry under test.
type appRepo struct {
	Dir  string
	Head string // the last commit
	rev  int
}

// basePlaceholder is the base image the app's Dockerfile names; the
// harness replaces it with the one in the registry under test. A literal
// FROM (rather than an ARG) keeps the build's inputs pinned down, as most
// Dockerfiles are.
const basePlaceholder = "localhost/base/node:20"

// newAppRepo copies the app (without node_modules, dist or .git) into dir,
// points the Dockerfile's FROM lines at baseRef and commits it on branch
// main.
func newAppRepo(ctx context.Context, appDir, dir, baseRef string) (*appRepo, error) {
	err := filepath.WalkDir(appDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(appDir, p)
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "dist" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if rel == "Dockerfile" {
			if !bytes.Contains(b, []byte("FROM "+basePlaceholder)) {
				return fmt.Errorf("%s has no FROM %s to point at the base image", p, basePlaceholder)
			}
			b = bytes.ReplaceAll(b, []byte(basePlaceholder), []byte(baseRef))
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("copy app: %w", err)
	}
	return initRepo(ctx, dir, "sample app")
}

// initRepo makes dir a repository on branch main and commits what it holds.
func initRepo(ctx context.Context, dir, msg string) (*appRepo, error) {
	r := &appRepo{Dir: dir}
	if _, err := r.git(ctx, "init", "--quiet", "--initial-branch", "main"); err != nil {
		return nil, err
	}
	if _, err := r.commit(ctx, msg); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *appRepo) git(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "user.name=Slipway bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = r.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// commit commits everything (or nothing) and returns the new head.
func (r *appRepo) commit(ctx context.Context, msg string) (string, error) {
	if _, err := r.git(ctx, "add", "--all"); err != nil {
		return "", err
	}
	if _, err := r.git(ctx, "commit", "--quiet", "--allow-empty", "-m", msg); err != nil {
		return "", err
	}
	sha, err := r.git(ctx, "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	r.Head = sha
	return sha, nil
}

// change applies one run of a warm scenario and commits it.
func (r *appRepo) change(ctx context.Context, scenario string, run int, deps []depVariant) (string, error) {
	switch scenario {
	case "nochange":
		return r.commit(ctx, fmt.Sprintf("bench: no change (run %d)", run+1))
	case "source":
		r.rev++
		src := fmt.Sprintf("// The benchmark's \"one source file changed\" scenario edits this file.\nexport const version = \"1.0.0\";\nexport const revision = %d;\n", r.rev)
		if err := os.WriteFile(filepath.Join(r.Dir, "src", "version.ts"), []byte(src), 0o644); err != nil {
			return "", err
		}
		return r.commit(ctx, fmt.Sprintf("bench: revision %d", r.rev))
	case "deps":
		v := deps[run]
		if err := os.WriteFile(filepath.Join(r.Dir, "package.json"), v.PackageJSON, 0o644); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(r.Dir, "package-lock.json"), v.LockJSON, 0o644); err != nil {
			return "", err
		}
		return r.commit(ctx, "bench: dayjs "+v.Version)
	}
	return "", fmt.Errorf("no change for scenario %q", scenario)
}
