// Command bench measures how long a push takes to become an image in the
// registry, side by side for four systems, on two sample apps of different
// shapes, bench/app (Node/TypeScript) and bench/app-go (Go):
//
//   - local: build + push by hand on warm storage with the new builder
//     (buildah 1.42.1), the way a developer rebuilds on a warm laptop (the
//     floor);
//   - local-old: the same with the old builder (podman 4.3's build);
//   - slipway: the real `slipway server`, a signed push webhook, and the
//     deployment's `succeeded`, with the project's machine asleep when the
//     push arrives;
//   - ci: a fresh, empty podman storage for every build, a shallow clone,
//     the layer cache imported from the registry (--cache-from, exported
//     again with --cache-to), then build + push: what hosted CI does.
//
// For each scenario (cold, no change, one source file changed, dependencies
// changed) and app it commits the change once and runs the systems on that
// commit, rotating their order (and the apps') from run to run, and
// reports medians per app. It writes RESULTS.md, results.json and
// chart.svg to the output directory.
//
// It is run by `make bench`, never by `go test`; it needs root, podman,
// runc, git, node, npm, go, busybox-static, the new builder (-buildah) and
// access to the npm registry and the Go module proxy.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Config is the benchmark's configuration; flags map onto it.
type Config struct {
	// Runs is how many times each scenario runs for each system.
	Runs int
	// ColdRuns is how many times the cold scenario runs; default Runs.
	// The warm scenarios start from the last cold run's state, so a
	// targeted run (-scenarios source) can do with one.
	ColdRuns int
	// Scenarios are the scenarios to run, in order; later ones need the
	// warm state the earlier ones leave, and "cold" always runs first.
	Scenarios []string
	// Systems are the systems to measure; default every one, but
	// local-old only when the new builder is there.
	Systems []string
	// Apps are the sample apps to build (benchApp.Name); default both.
	Apps []string
	// RepoRoot is the Slipway repository (where go.mod is).
	RepoRoot string
	// Buildah is the new builder's executable. When it is missing, the
	// local floor and clean CI build with podman (the old builder) and
	// there is no local-old column.
	Buildah string
	// PassBuildArgs passes the base images an app's ARGs name as build
	// arguments (--build-arg to local and CI builds, `slipway project add
	// --build-arg` to Slipway) instead of writing them into the ARG
	// defaults of the committed Dockerfile.
	PassBuildArgs bool
	// OutDir receives RESULTS.md, results.json and chart.svg; default
	// RepoRoot/bench/results. Empty after -no-write.
	OutDir string
	// WorkDir holds everything the run creates; default a new temp dir,
	// removed at the end unless Keep.
	WorkDir string
	// Keep keeps WorkDir.
	Keep bool
	// Slipway is a prebuilt slipway binary; default: go build ./cmd/slipway.
	Slipway string
	// Network is passed to podman build --network by the local and ci
	// systems ("" for podman's default).
	Network string
	// BuildTimeout bounds one build of one system.
	BuildTimeout time.Duration
}

// builders returns the local floor's builder (the new one when there is
// one at Buildah, else podman) and, when that is the new one, the old
// builder for local-old.
func (c *Config) builders() (floor, old *builder, err error) {
	if old, err = podmanBuilder(); err != nil {
		return nil, nil, err
	}
	if floor, err = buildahBuilder(c.Buildah); err != nil {
		return nil, nil, err
	}
	if floor == nil {
		return old, nil, nil
	}
	return floor, old, nil
}

var allScenarios = []string{"cold", "nochange", "source", "deps"}
var allSystems = []string{"local", "local-old", "slipway", "ci"}

func main() {
	var cfg Config
	var scenarios, systems, apps string
	var noWrite bool
	var orchestration int
	flag.IntVar(&cfg.Runs, "runs", 3, "runs of each scenario for each system (medians need 3 or more)")
	flag.IntVar(&cfg.ColdRuns, "cold-runs", 0, "runs of the cold scenario (default -runs; 1 is enough to warm up for -scenarios source)")
	flag.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "scenarios to run: "+strings.Join(allScenarios, ","))
	flag.StringVar(&systems, "systems", "", "systems to measure: "+strings.Join(allSystems, ",")+" (default all; local-old only with the new builder)")
	flag.StringVar(&apps, "apps", strings.Join(allApps, ","), "sample apps to build: "+strings.Join(allApps, ","))
	flag.StringVar(&cfg.Buildah, "buildah", defaultBuildah, "the new builder (buildah 1.42.1) for the local floor and clean CI; when missing, both build with podman and local-old is left out")
	flag.BoolVar(&cfg.PassBuildArgs, "build-args", true, "pass the base images of an app's ARGs as build arguments (slipway project add --build-arg) instead of rewriting the ARG defaults")
	flag.StringVar(&cfg.OutDir, "out", "", "results directory (default bench/results)")
	flag.BoolVar(&noWrite, "no-write", false, "print the results only; write no files")
	flag.StringVar(&cfg.WorkDir, "work", "", "work directory (default a new temporary directory)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the work directory")
	flag.StringVar(&cfg.Slipway, "slipway", "", "prebuilt slipway binary, slipway-agent beside it (default: go build ./cmd/slipway ./cmd/slipway-agent); with -orchestration, a comma-separated list to compare")
	flag.IntVar(&orchestration, "orchestration", 0, "instead of the benchmark, measure the webhook → first build command path: this many pushes of a tiny project per -slipway binary (see bench/README.md)")
	flag.StringVar(&cfg.Network, "network", "", "podman build --network for the local and ci systems (e.g. host)")
	flag.DurationVar(&cfg.BuildTimeout, "build-timeout", 10*time.Minute, "limit for one build")
	flag.Parse()

	cfg.Scenarios = splitList(scenarios)
	cfg.Systems = splitList(systems)
	cfg.Apps = splitList(apps)
	if err := cfg.fill(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if noWrite {
		cfg.OutDir = ""
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := Run
	if orchestration > 0 {
		run = func(ctx context.Context, cfg Config) error { return RunOrchestration(ctx, cfg, orchestration) }
	}
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// fill checks the configuration and fills in defaults.
func (c *Config) fill() error {
	if c.Runs < 1 {
		return fmt.Errorf("-runs must be at least 1")
	}
	if c.RepoRoot == "" {
		root, err := findRepoRoot()
		if err != nil {
			return err
		}
		c.RepoRoot = root
	}
	if len(c.Apps) == 0 {
		c.Apps = allApps
	}
	maxRuns := 0
	for _, name := range c.Apps {
		app := findApp(sampleApps(c.RepoRoot), name)
		if app == nil {
			return fmt.Errorf("unknown app %q (want %s)", name, strings.Join(allApps, ","))
		}
		if maxRuns == 0 || len(app.Bumps) < maxRuns {
			maxRuns = len(app.Bumps)
		}
	}
	if c.Runs > maxRuns {
		return fmt.Errorf("-runs must be at most %d (one dependency bump per run)", maxRuns)
	}
	if c.ColdRuns == 0 {
		c.ColdRuns = c.Runs
	}
	if c.ColdRuns < 1 || c.ColdRuns > maxRuns {
		return fmt.Errorf("-cold-runs must be between 1 and %d", maxRuns)
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(allScenarios, s) {
			return fmt.Errorf("unknown scenario %q (want %s)", s, strings.Join(allScenarios, ","))
		}
	}
	// Warm scenarios need a first build: cold makes it.
	if len(c.Scenarios) == 0 || c.Scenarios[0] != "cold" {
		c.Scenarios = append([]string{"cold"}, slices.DeleteFunc(c.Scenarios, func(s string) bool { return s == "cold" })...)
	}
	for _, s := range c.Systems {
		if !slices.Contains(allSystems, s) {
			return fmt.Errorf("unknown system %q (want %s)", s, strings.Join(allSystems, ","))
		}
	}
	if c.Buildah == "" {
		c.Buildah = defaultBuildah
	}
	newBuilder, err := buildahBuilder(c.Buildah)
	if err != nil {
		return err
	}
	if len(c.Systems) == 0 {
		c.Systems = slices.Clone(allSystems)
		if newBuilder == nil {
			c.Systems = slices.DeleteFunc(c.Systems, func(s string) bool { return s == "local-old" })
		}
	}
	if newBuilder == nil && slices.Contains(c.Systems, "local-old") {
		return fmt.Errorf("system local-old needs the new builder for the local floor, and there is none at %s (-buildah)", c.Buildah)
	}
	if c.OutDir == "" {
		c.OutDir = filepath.Join(c.RepoRoot, "bench", "results")
	}
	if c.BuildTimeout <= 0 {
		c.BuildTimeout = 10 * time.Minute
	}
	return nil
}

// findRepoRoot walks up from the working directory to Slipway's go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/slipway-ci/slipway\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run bench inside the Slipway repository (no go.mod of github.com/slipway-ci/slipway above the working directory)")
		}
		dir = parent
	}
}

// progress prints one progress line with the time of day.
func progress(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
