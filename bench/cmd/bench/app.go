package main

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// benchApp is one sample app and how the scenarios change it.
type benchApp struct {
	// Name names the app in the results, the Slipway projects, the
	// registry's repositories and the log files.
	Name string
	// Title says what it is, for the reports.
	Title string
	// Dir is its source directory (a Dockerfile at the top).
	Dir string
	// SourceFile is the file the "source" scenario rewrites, relative to
	// Dir; Source is its content at revision rev (1, 2, …).
	SourceFile string
	Source     func(rev int) string
	// Bumps are the versions the "deps" scenario moves a dependency to,
	// one per run, so every run changes the dependencies to a state no
	// system has seen (going back to an earlier one would hit the layer
	// cache). bump prepares one: it returns the dependency files (path
	// relative to Dir → content) with the dependency at version v, made in
	// the scratch directory dir before anything is timed.
	Bumps []string
	bump  func(ctx context.Context, appDir, dir, v string) (map[string][]byte, error)
	// BumpTool is the tool bump needs on the host, for error messages.
	BumpTool string
}

// sampleApps are the benchmark's apps, in the order they run; repoRoot
// is the Slipway repository.
func sampleApps(repoRoot string) []*benchApp {
	return []*benchApp{
		{
			Name:       "node",
			Title:      "Node/TypeScript service (bench/app: express, 14 npm dependencies, tsc, a production-dependencies stage)",
			Dir:        filepath.Join(repoRoot, "bench", "app"),
			SourceFile: "src/version.ts",
			Source: func(rev int) string {
				return fmt.Sprintf("// The benchmark's \"one source file changed\" scenario edits this file.\nexport const version = \"1.0.0\";\nexport const revision = %d;\n", rev)
			},
			Bumps:    dayjsVersions,
			bump:     bumpDayjs,
			BumpTool: "npm",
		},
		{
			Name:       "go",
			Title:      "Go service (bench/app-go: chi, uuid, klauspost/compress; global ARG base images, cache mounts, COPY --from an image, JSON CMD)",
			Dir:        filepath.Join(repoRoot, "bench", "app-go"),
			SourceFile: "version.go",
			Source: func(rev int) string {
				return fmt.Sprintf("package main\n\n// The benchmark's \"one source file changed\" scenario edits this file.\nconst (\n\tversion  = \"1.0.0\"\n\trevision = %d\n)\n", rev)
			},
			Bumps:    compressVersions,
			bump:     bumpGoModule,
			BumpTool: "go",
		},
	}
}

var allApps = []string{"node", "go"}

// depVariant is an app's dependency files with one dependency moved to
// Version, prepared before any measurement.
type depVariant struct {
	Version string
	Files   map[string][]byte // path relative to the app → content
}

// prepareDepVariants makes the first n of the app's dependency bumps in
// scratch directories under workDir (the package managers talk to their
// registries, but nothing is timed yet).
func prepareDepVariants(ctx context.Context, app *benchApp, workDir string, n int) ([]depVariant, error) {
	if n > len(app.Bumps) {
		return nil, fmt.Errorf("%s: %d dependency bumps wanted, %d known", app.Name, n, len(app.Bumps))
	}
	var out []depVariant
	for _, v := range app.Bumps[:n] {
		dir := filepath.Join(workDir, "deps", app.Name, v)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		files, err := app.bump(ctx, app.Dir, dir, v)
		if err != nil {
			return nil, fmt.Errorf("%s: dependency bump to %s: %w", app.Name, v, err)
		}
		out = append(out, depVariant{Version: v, Files: files})
	}
	return out, nil
}

// dayjsVersions are the versions of dayjs the Node app's "deps" scenario
// moves to; its package.json pins dayjs 1.11.10.
var dayjsVersions = []string{
	"1.11.11", "1.11.12", "1.11.13", "1.11.14", "1.11.15", "1.11.16", "1.11.17",
	"1.11.18", "1.11.19", "1.11.20", "1.11.21", "1.11.22", "1.11.23",
}

const pinnedDayjs = `"dayjs": "1.11.10"`

// bumpDayjs moves dayjs to version v with `npm install
// --package-lock-only` in a scratch copy of the app's manifest.
func bumpDayjs(ctx context.Context, appDir, dir, v string) (map[string][]byte, error) {
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
	vpkg := strings.Replace(string(pkg), pinnedDayjs, `"dayjs": "`+v+`"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(vpkg), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), lock, 0o644); err != nil {
		return nil, err
	}
	if err := runIn(ctx, dir, nil, "npm", "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"); err != nil {
		return nil, err
	}
	vlock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return nil, err
	}
	if !strings.Contains(string(vlock), `"version": "`+v+`"`) {
		return nil, fmt.Errorf("the lock file for dayjs %s does not name that version", v)
	}
	return map[string][]byte{"package.json": []byte(vpkg), "package-lock.json": vlock}, nil
}

// compressVersions are the versions of github.com/klauspost/compress the
// Go app's "deps" scenario moves to (patch releases; there is no v1.17.1);
// its go.mod pins v1.17.0.
var compressVersions = []string{
	"v1.17.2", "v1.17.3", "v1.17.4", "v1.17.5", "v1.17.6",
	"v1.17.7", "v1.17.8", "v1.17.9", "v1.17.10", "v1.17.11",
}

const (
	bumpedModule = "github.com/klauspost/compress"
	pinnedModule = bumpedModule + " v1.17.0"
)

// bumpGoModule moves klauspost/compress to version v in a scratch copy of
// the Go app's module (go mod edit, then go mod tidy for go.sum; the host's
// go command fetches from the module proxy).
func bumpGoModule(ctx context.Context, appDir, dir, v string) (map[string][]byte, error) {
	mod, err := os.ReadFile(filepath.Join(appDir, "go.mod"))
	if err != nil {
		return nil, err
	}
	if !strings.Contains(string(mod), pinnedModule+"\n") {
		return nil, fmt.Errorf("%s/go.mod does not require %s, which the deps scenario bumps", appDir, pinnedModule)
	}
	entries, err := os.ReadDir(appDir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && (strings.HasSuffix(n, ".go") || n == "go.mod" || n == "go.sum") {
			b, err := os.ReadFile(filepath.Join(appDir, n))
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
				return nil, err
			}
		}
	}
	// The scratch module stands alone: no workspace, no other toolchain.
	env := []string{"GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod"}
	if err := runIn(ctx, dir, env, "go", "mod", "edit", "-require="+bumpedModule+"@"+v); err != nil {
		return nil, err
	}
	if err := runIn(ctx, dir, env, "go", "mod", "tidy"); err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, n := range []string{"go.mod", "go.sum"} {
		if files[n], err = os.ReadFile(filepath.Join(dir, n)); err != nil {
			return nil, err
		}
	}
	if err := checkGoBump(files["go.mod"], files["go.sum"], bumpedModule, v); err != nil {
		return nil, err
	}
	return files, nil
}

// checkGoBump checks that go.mod requires module at version v and that
// go.sum holds that version's hashes and no other version's.
func checkGoBump(mod, sum []byte, module, v string) error {
	if !regexp.MustCompile(`(?m)^\s*(require\s+)?` + regexp.QuoteMeta(module+" "+v) + `\s*$`).Match(mod) {
		return fmt.Errorf("go.mod does not require %s %s", module, v)
	}
	var want, other int
	for _, l := range strings.Split(string(sum), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != module {
			continue
		}
		if ver := strings.TrimSuffix(f[1], "/go.mod"); ver == v {
			want++
		} else {
			other++
		}
	}
	if want != 2 || other != 0 {
		return fmt.Errorf("go.sum has %d lines for %s %s (want 2: the module and its go.mod) and %d for other versions (want 0)", want, module, v, other)
	}
	return nil
}

// runIn runs a command in dir with env added to the environment.
func runIn(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// baseRefRE matches the base images a sample app's Dockerfile names:
// localhost/base/NAME:TAG.
var baseRefRE = regexp.MustCompile(`localhost/base/([a-z0-9][a-z0-9._-]*):([A-Za-z0-9_][A-Za-z0-9._-]*)`)

// pointedDockerfile is an app's Dockerfile with its base images pointed at
// the registry under test.
type pointedDockerfile struct {
	Dockerfile []byte
	// BuildArgs are the ARGs whose defaults name a base image, with the
	// image in the registry, when they are passed as build arguments
	// rather than written into the defaults; nil otherwise.
	BuildArgs map[string]string
	// Bases are the base images named, NAME:TAG, sorted.
	Bases []string
}

// pointDockerfile replaces every localhost/base/NAME:TAG in a Dockerfile
// with registry/base/NAME:TAG. With passArgs, an ARG whose default names a
// base image keeps its default, and the argument is returned in BuildArgs
// to be passed with --build-arg instead (the way a project's build
// arguments reach its builds). A literal reference elsewhere (FROM, COPY
// --from) is always rewritten: the registry's address is only known at run
// time.
func pointDockerfile(df []byte, registry string, passArgs bool) (pointedDockerfile, error) {
	var out pointedDockerfile
	seen := map[string]bool{}
	point := func(s string) string {
		return baseRefRE.ReplaceAllStringFunc(s, func(ref string) string {
			m := baseRefRE.FindStringSubmatch(ref)
			if !seen[m[1]+":"+m[2]] {
				seen[m[1]+":"+m[2]] = true
				out.Bases = append(out.Bases, m[1]+":"+m[2])
			}
			return registry + "/base/" + m[1] + ":" + m[2]
		})
	}
	lines := strings.SplitAfter(string(df), "\n")
	for i, line := range lines {
		fields := strings.Fields(line)
		if passArgs && len(fields) > 1 && strings.EqualFold(fields[0], "ARG") {
			for _, f := range fields[1:] {
				k, v, ok := strings.Cut(f, "=")
				if !ok || !baseRefRE.MatchString(v) {
					continue
				}
				if out.BuildArgs == nil {
					out.BuildArgs = map[string]string{}
				}
				out.BuildArgs[k] = point(strings.Trim(v, `"'`))
			}
			continue
		}
		lines[i] = point(line)
	}
	if len(out.Bases) == 0 {
		return out, fmt.Errorf("the Dockerfile names no base image localhost/base/NAME:TAG for the harness to point at the registry")
	}
	slices.Sort(out.Bases)
	out.Dockerfile = []byte(strings.Join(lines, ""))
	return out, nil
}

// appRepo is a git repository holding a sample app.
type appRepo struct {
	Dir  string
	Head string // the last commit
	rev  int
}

// newAppRepo copies the app (without node_modules, dist or .git) into
// dir with the Dockerfile df, and commits it on branch main.
func newAppRepo(ctx context.Context, app *benchApp, dir string, df []byte) (*appRepo, error) {
	err := filepath.WalkDir(app.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(app.Dir, p)
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
			b = df
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s app: %w", app.Name, err)
	}
	return initRepo(ctx, dir, "sample app "+app.Name)
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

// change applies one run of a warm scenario to the app's repository and
// commits it.
func (r *appRepo) change(ctx context.Context, app *benchApp, scenario string, run int, deps []depVariant) (string, error) {
	switch scenario {
	case "nochange":
		return r.commit(ctx, fmt.Sprintf("bench: no change (run %d)", run+1))
	case "source":
		r.rev++
		if err := os.WriteFile(filepath.Join(r.Dir, app.SourceFile), []byte(app.Source(r.rev)), 0o644); err != nil {
			return "", err
		}
		return r.commit(ctx, fmt.Sprintf("bench: revision %d", r.rev))
	case "deps":
		v := deps[run]
		for _, name := range slices.Sorted(maps.Keys(v.Files)) {
			if err := os.WriteFile(filepath.Join(r.Dir, name), v.Files[name], 0o644); err != nil {
				return "", err
			}
		}
		return r.commit(ctx, "bench: dependency "+v.Version)
	}
	return "", fmt.Errorf("no change for scenario %q", scenario)
}

// findApp returns the app called name, or nil.
func findApp(apps []*benchApp, name string) *benchApp {
	for _, a := range apps {
		if a.Name == name {
			return a
		}
	}
	return nil
}
