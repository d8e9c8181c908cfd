package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/podman"
)

const webhookSecret = "bench-webhook-secret"

// Run runs the benchmark and writes its results.
func Run(ctx context.Context, cfg Config) error {
	started := time.Now()
	work, err := workDir(cfg.WorkDir, "slipway-bench-")
	if err != nil {
		return err
	}
	logDir := filepath.Join(work, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	cleanups := []func(){}
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		if cfg.Keep {
			progress("kept the work directory %s", work)
			return
		}
		unmountUnder(work)
		_ = os.RemoveAll(work)
	}()
	progress("work directory %s (build logs in logs/)", work)

	machine := describeMachine()
	progress("machine: %s", machine.String())

	serverLog, err := os.Create(filepath.Join(logDir, "server.log"))
	if err != nil {
		return err
	}
	defer serverLog.Close()
	srv, err := startServer(ctx, cfg, work, serverLog)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, srv.stop)
	progress("slipway server running at %s (registry %s)", srv.URL, srv.Host)
	if err := srv.logInRegistry(work); err != nil {
		return err
	}

	floor, old, err := cfg.builders()
	if err != nil {
		return err
	}
	builders := builderVersions(floor, old, cfg.Buildah)

	apps, bases, err := prepareApps(cfg, srv.Host)
	if err != nil {
		return err
	}
	if err := makeBases(ctx, filepath.Join(work, "base"), logDir, srv.Host, bases); err != nil {
		return err
	}
	if slices.Contains(cfg.Scenarios, "deps") {
		for _, a := range apps {
			progress("%s: preparing %d dependency bumps (%s)", a.app.Name, cfg.Runs, a.app.BumpTool)
			if a.deps, err = prepareDepVariants(ctx, a.app, work, cfg.Runs); err != nil {
				return err
			}
		}
	}

	res := &results{Machine: machine, Runs: cfg.Runs, Systems: cfg.Systems, Scenarios: cfg.Scenarios, Network: cfg.Network, Registry: srv.Host, Builders: builders}
	for _, a := range apps {
		res.Apps = append(res.Apps, appInfo{Name: a.app.Name, Title: a.app.Title, BuildArgs: a.pointed.BuildArgs})
	}
	cleanups = append(cleanups, func() {
		for _, a := range apps {
			a.removeLocals()
		}
	})
	r := &runner{cfg: cfg, work: work, logDir: logDir, srv: srv, floor: floor, old: old,
		ci: &ciSystem{b: floor, workDir: work, host: srv.Host, network: cfg.Network, timeout: cfg.BuildTimeout}}
	if res.Samples, err = r.measureAll(ctx, apps); err != nil {
		return err
	}
	res.Date = started.UTC()
	res.Elapsed = time.Since(started).Round(time.Second).String()
	return res.report(cfg.OutDir)
}

// report prints the results, and writes them in outDir unless it is "".
func (r *results) report(outDir string) error {
	r.print(os.Stdout)
	if outDir == "" {
		return nil
	}
	if err := r.write(outDir); err != nil {
		return err
	}
	progress("wrote %s", strings.Join([]string{filepath.Join(outDir, "RESULTS.md"), filepath.Join(outDir, "results.json"), filepath.Join(outDir, "chart.svg")}, ", "))
	return nil
}

// startServer starts `slipway server` on the data directory work/data,
// logging to serverLog: cfg.Slipway, or the slipway built from
// cfg.RepoRoot into work.
func startServer(ctx context.Context, cfg Config, work string, serverLog io.Writer) (*slipwayServer, error) {
	bin := cfg.Slipway
	if bin == "" {
		bin = filepath.Join(work, "slipway")
		progress("building slipway (go build ./cmd/slipway)")
		if err := buildSlipway(ctx, cfg.RepoRoot, bin); err != nil {
			return nil, err
		}
	}
	return startSlipway(ctx, bin, filepath.Join(work, "data"), cfg.RepoRoot, &syncWriter{w: serverLog})
}

// builderVersions names the builder of each local system and of clean CI
// (no local-old without old, the builder at buildah), and says so.
func builderVersions(floor, old *builder, buildah string) map[string]string {
	builders := map[string]string{"local": floor.String(), "ci": floor.String()}
	if old != nil {
		builders["local-old"] = old.String()
		progress("builders: local floor and clean CI %s; local-old %s", floor, old)
	} else {
		progress("builders: local floor and clean CI %s (no new builder at %s: no local-old column)", floor, buildah)
	}
	return builders
}

// prepareApps reads the apps of cfg and points their Dockerfiles at the
// registry host, and returns them and the base images they name.
func prepareApps(cfg Config, host string) ([]*appState, []string, error) {
	var apps []*appState
	bases := map[string]bool{}
	for _, name := range cfg.Apps {
		app := findApp(sampleApps(cfg.RepoRoot), name)
		df, err := os.ReadFile(filepath.Join(app.Dir, "Dockerfile"))
		if err != nil {
			return nil, nil, err
		}
		pointed, err := pointDockerfile(df, host, cfg.PassBuildArgs)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", app.Dir, err)
		}
		for _, b := range pointed.Bases {
			bases[b] = true
		}
		apps = append(apps, &appState{app: app, pointed: pointed, locals: map[string]*localSystem{}})
	}
	return apps, slices.Sorted(maps.Keys(bases)), nil
}

// makeBases makes the base images bases from the host's files, with a
// podman storage at dir that it removes, and pushes them to the registry
// host.
func makeBases(ctx context.Context, dir, logDir, host string, bases []string) error {
	bp, err := podman.New(podman.ConfigAt(dir))
	if err != nil {
		return err
	}
	baseLog, err := os.Create(filepath.Join(logDir, "base.log"))
	if err != nil {
		return err
	}
	for _, b := range bases {
		ref := host + "/base/" + b
		name, _, _ := strings.Cut(b, ":")
		progress("making the base image %s from the host", ref)
		t := time.Now()
		if err := makeBase(ctx, bp, name, ref, baseLog); err != nil {
			baseLog.Close()
			return fmt.Errorf("base image %s: %w", b, err)
		}
		progress("base image pushed in %s", time.Since(t).Round(time.Millisecond))
	}
	baseLog.Close()
	removeStorage(bp, dir)
	return nil
}

// runner measures the builds of one benchmark run.
type runner struct {
	cfg        Config
	work       string
	logDir     string
	srv        *slipwayServer
	floor, old *builder
	ci         *ciSystem
}

// runsOf is how many runs scenario sc has.
func (r *runner) runsOf(sc string) int {
	if sc == "cold" {
		return r.cfg.ColdRuns
	}
	return r.cfg.Runs
}

// coldStart gives an app everything new: repository, local storages,
// Slipway project (so a new machine and volume); CI's cache goes unused.
func (r *runner) coldStart(ctx context.Context, a *appState, run int) error {
	var err error
	a.removeLocals()
	if a.repo, err = newAppRepo(ctx, a.app, filepath.Join(r.work, "repos", fmt.Sprintf("%s-%d", a.app.Name, run+1)), a.pointed.Dockerfile); err != nil {
		return err
	}
	for sys, b := range map[string]*builder{"local": r.floor, "local-old": r.old} {
		if slices.Contains(r.cfg.Systems, sys) {
			if a.locals[sys], err = newLocalSystem(sys, b, filepath.Join(r.work, fmt.Sprintf("%s-%s-%d", sys, a.app.Name, run+1)), r.srv.Host, r.cfg.Network, r.cfg.BuildTimeout); err != nil {
				return err
			}
		}
	}
	a.project = fmt.Sprintf("%s%d", a.app.Name, run+1)
	if slices.Contains(r.cfg.Systems, "slipway") {
		return r.srv.addProject(ctx, a.project, a.repo.Dir, webhookSecret, a.pointed.BuildArgs)
	}
	return nil
}

// measure builds the app's commit sha (its parent before) with one
// system; attempt 2 is a retry.
func (r *runner) measure(ctx context.Context, a *appState, sys, sc string, run int, before, sha string, attempt int) (sample, error) {
	name := fmt.Sprintf("%s-%s-%d-%s", a.app.Name, sc, run+1, sys)
	if attempt > 1 {
		name += fmt.Sprintf("-attempt%d", attempt)
	}
	logf, err := os.Create(filepath.Join(r.logDir, name+".log"))
	if err != nil {
		return sample{}, err
	}
	defer logf.Close()
	job := buildJob{App: a.app.Name, RepoDir: a.repo.Dir, Commit: sha, BuildArgs: a.pointed.BuildArgs, Log: logf}
	switch sys {
	case "local", "local-old":
		return a.locals[sys].measure(ctx, job)
	case "slipway":
		return r.srv.deploy(ctx, a.project, a.repo.Dir, webhookSecret, before, sha, r.cfg.BuildTimeout)
	default:
		return r.ci.measure(ctx, job, sc != "cold")
	}
}

// sample measures the app's commit sha (its parent before) with one
// system, once more if that failed, and returns the sample.
func (r *runner) sample(ctx context.Context, a *appState, sys, sc string, run int, before, sha string) (sample, error) {
	load := loadAvg()
	smp, err := r.measure(ctx, a, sys, sc, run, before, sha, 1)
	retried := ""
	if err != nil && ctx.Err() == nil {
		// A build that fails is most often the network (the npm
		// registry, the module proxy): once more, and the sample says so.
		retried = failureSummary(err.Error())
		progress("    %-9s failed: %s; once more", sys, retried)
		load = loadAvg()
		smp, err = r.measure(ctx, a, sys, sc, run, before, sha, 2)
	}
	if err != nil {
		return sample{}, fmt.Errorf("%s, %s, run %d, %s: %w", a.app.Name, sc, run+1, sys, err)
	}
	smp.App, smp.Scenario, smp.Run, smp.Load1, smp.Retried = a.app.Name, sc, run+1, load, retried
	note := ""
	if retried != "" {
		note = "; second attempt"
	}
	progress("    %-9s %6.1f s  (%s; %s; load %.1f%s)", sys, float64(smp.TotalMs)/1000, phaseSummary(smp), stepSummary(smp.Steps), load, note)
	return smp, nil
}

// measureAll measures every scenario's runs of every app with every
// system, apps and systems interleaved in an order that rotates from run
// to run.
func (r *runner) measureAll(ctx context.Context, apps []*appState) ([]sample, error) {
	total := 0
	for _, sc := range r.cfg.Scenarios {
		total += r.runsOf(sc) * len(apps)
	}
	var samples []sample
	var err error
	n := 0
	for _, sc := range r.cfg.Scenarios {
		for run := 0; run < r.runsOf(sc); run++ {
			for _, a := range rotate(apps, run) {
				n++
				var before, sha string
				if sc == "cold" {
					if err := r.coldStart(ctx, a, run); err != nil {
						return nil, err
					}
					before, sha = strings.Repeat("0", 40), a.repo.Head
				} else {
					before = a.repo.Head
					if sha, err = a.repo.change(ctx, a.app, sc, run, a.deps); err != nil {
						return nil, err
					}
				}
				progress("[%d/%d] %s: %s, run %d of %d: commit %s", n, total, a.app.Name, scenarioTitle[sc], run+1, r.runsOf(sc), sha[:12])
				for _, sys := range rotate(r.cfg.Systems, run) {
					smp, err := r.sample(ctx, a, sys, sc, run, before, sha)
					if err != nil {
						return nil, err
					}
					samples = append(samples, smp)
				}
			}
		}
	}
	return samples, nil
}

var scenarioTitle = map[string]string{
	"cold":     "cold",
	"nochange": "no change",
	"source":   "one source file changed",
	"deps":     "dependencies changed",
}

// workDir makes the work directory dir, or a new temporary one named
// after prefix when dir is "", and returns its absolute path.
func workDir(dir, prefix string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", prefix); err != nil {
			return "", err
		}
		// MkdirTemp makes it 0700; the builder users of rootless mode must
		// pass through it to their volumes and the agent binary, or the
		// server falls back to root podman and Slipway is measured in the
		// wrong mode.
		if err := os.Chmod(dir, 0o711); err != nil {
			return "", err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return filepath.Abs(dir)
}

// rotate returns xs starting at index run, so no system (or app) always
// goes first (after the others warmed the page cache) or last.
func rotate[T any](xs []T, run int) []T {
	k := run % len(xs)
	return append(slices.Clone(xs[k:]), xs[:k]...)
}

// failureSummary is a failed build's error in one line: its first line
// and, from the output that follows it, the builder's last "Error:" line
// (which names the step).
func failureSummary(msg string) string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	out := lines[0]
	for i := len(lines) - 1; i > 0; i-- {
		if strings.HasPrefix(strings.TrimSpace(lines[i]), "Error:") {
			return out + ": " + strings.TrimSpace(lines[i])
		}
	}
	return out
}

// appState is one app during a run: its Dockerfile, its prepared
// dependency bumps, and the repository, local storages and Slipway project
// of the current cold run.
type appState struct {
	app     *benchApp
	pointed pointedDockerfile
	deps    []depVariant
	repo    *appRepo
	locals  map[string]*localSystem // by system
	project string
}

func (a *appState) removeLocals() {
	for sys, l := range a.locals {
		l.remove()
		delete(a.locals, sys)
	}
}

func phaseSummary(s sample) string {
	var order []string
	switch s.System {
	case "slipway":
		order = []string{"queue", "wake", "between", "fetch", "build", "push", "toBuilding", "serverCPU"}
	case "ci":
		order = []string{"clone", "build", "push"}
	default:
		order = []string{"build", "push"}
	}
	var parts []string
	for _, k := range order {
		if v, ok := s.PhasesMs[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %s", k, fmtMs(v)))
		}
	}
	return strings.Join(parts, ", ")
}

func stepSummary(steps []step) string {
	if len(steps) == 0 {
		return "no podman build (an earlier image reused)"
	}
	cached := 0
	n := 0
	for _, s := range steps {
		if s.Instruction == "COMMIT" {
			continue
		}
		n++
		if s.Cached {
			cached++
		}
	}
	return fmt.Sprintf("%d steps, %d cached", n, cached)
}

// machineInfo says where the benchmark ran.
type machineInfo struct {
	Kernel  string `json:"kernel"`
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	Memory  string `json:"memory"`
	OS      string `json:"os"`
	Podman  string `json:"podman"`
	Node    string `json:"node"`
	Go      string `json:"go"`
	Storage string `json:"storage"`
}

func (m machineInfo) String() string {
	return fmt.Sprintf("%s, %d cores (%s), %s RAM, %s, %s, node %s", m.OS, m.Cores, m.CPU, m.Memory, m.Kernel, m.Podman, m.Node)
}

// Short is the machine in a few words, for the chart.
func (m machineInfo) Short() string {
	return fmt.Sprintf("%d cores, %s RAM, %s, %s", m.Cores, m.Memory, m.OS, m.Podman)
}

func describeMachine() machineInfo {
	m := machineInfo{Cores: runtime.NumCPU(), Go: runtime.Version(), Storage: "overlay (podman --storage-driver overlay, root)"}
	out := func(name string, args ...string) string {
		b, err := exec.Command(name, args...).Output()
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(string(b))
	}
	m.Kernel = out("uname", "-srm")
	m.Podman = out("podman", "--version")
	m.Node = out("node", "--version")
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.Memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	return m
}
