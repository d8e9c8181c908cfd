// Command bench measures how long a push takes to become an image in the
// registry, side by side for three systems, on the sample Node/TypeScript
// app in bench/app:
//
//   - local: podman build + podman push by hand on warm storage, the way a
//     developer rebuilds on a warm laptop (the floor);
//   - slipway: the real `slipway server`, a signed push webhook, and the
//     deployment's `succeeded`, with the project's machine asleep when the
//     push arrives;
//   - ci: a fresh, empty podman storage for every build, a shallow clone,
//     the layer cache imported from the registry (--cache-from, exported
//     again with --cache-to), then build + push: what hosted CI does.
//
// For each scenario (cold, no change, one source file changed, dependencies
// changed) it commits the change once and runs the three systems on that
// commit, rotating their order from run to run, and reports medians. It
// writes RESULTS.md, results.json and chart.svg to the output directory.
//
// It is run by `make bench`, never by `go test`; it needs root, podman,
// runc, git, node, npm, busybox-static and access to the npm registry.
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
	// Systems are the systems to measure.
	Systems []string
	// RepoRoot is the Slipway repository (where go.mod is).
	RepoRoot string
	// AppDir is the sample app; default RepoRoot/bench/app.
	AppDir string
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

var allScenarios = []string{"cold", "nochange", "source", "deps"}
var allSystems = []string{"local", "slipway", "ci"}

func main() {
	var cfg Config
	var scenarios, systems string
	var noWrite bool
	var orchestration int
	flag.IntVar(&cfg.Runs, "runs", 3, "runs of each scenario for each system (medians need 3 or more)")
	flag.IntVar(&cfg.ColdRuns, "cold-runs", 0, "runs of the cold scenario (default -runs; 1 is enough to warm up for -scenarios source)")
	flag.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "scenarios to run: "+strings.Join(allScenarios, ","))
	flag.StringVar(&systems, "systems", strings.Join(allSystems, ","), "systems to measure: "+strings.Join(allSystems, ","))
	flag.StringVar(&cfg.AppDir, "app", "", "sample app directory (default bench/app)")
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
	if c.Runs > len(depVersions) {
		return fmt.Errorf("-runs must be at most %d (one dependency bump per run)", len(depVersions))
	}
	if c.ColdRuns == 0 {
		c.ColdRuns = c.Runs
	}
	if c.ColdRuns < 1 || c.ColdRuns > len(depVersions) {
		return fmt.Errorf("-cold-runs must be between 1 and %d", len(depVersions))
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
	if len(c.Systems) == 0 {
		return fmt.Errorf("no systems to measure")
	}
	if c.RepoRoot == "" {
		root, err := findRepoRoot()
		if err != nil {
			return err
		}
		c.RepoRoot = root
	}
	if c.AppDir == "" {
		c.AppDir = filepath.Join(c.RepoRoot, "bench", "app")
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
