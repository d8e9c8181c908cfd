package main

import (
	"context"
	"fmt"
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

	bin := cfg.Slipway
	if bin == "" {
		bin = filepath.Join(work, "slipway")
		progress("building slipway (go build ./cmd/slipway)")
		if err := buildSlipway(ctx, cfg.RepoRoot, bin); err != nil {
			return err
		}
	}
	serverLog, err := os.Create(filepath.Join(logDir, "server.log"))
	if err != nil {
		return err
	}
	defer serverLog.Close()
	srv, err := startSlipway(ctx, bin, filepath.Join(work, "data"), cfg.RepoRoot, &syncWriter{w: serverLog})
	if err != nil {
		return err
	}
	cleanups = append(cleanups, srv.stop)
	progress("slipway server running at %s (registry %s)", srv.URL, srv.Host)

	floor, old, err := cfg.builders()
	if err != nil {
		return err
	}
	builders := map[string]string{"local": floor.String(), "ci": floor.String()}
	if old != nil {
		builders["local-old"] = old.String()
		progress("builders: local floor and clean CI %s; local-old %s", floor, old)
	} else {
		progress("builders: local floor and clean CI %s (no new builder at %s: no local-old column)", floor, cfg.Buildah)
	}

	// The apps, their Dockerfiles pointed at the registry, and the base
	// images they name.
	var apps []*appState
	bases := map[string]bool{}
	for _, name := range cfg.Apps {
		app := findApp(sampleApps(cfg.RepoRoot), name)
		df, err := os.ReadFile(filepath.Join(app.Dir, "Dockerfile"))
		if err != nil {
			return err
		}
		pointed, err := pointDockerfile(df, srv.Host, cfg.PassBuildArgs)
		if err != nil {
			return fmt.Errorf("%s: %w", app.Dir, err)
		}
		for _, b := range pointed.Bases {
			bases[b] = true
		}
		apps = append(apps, &appState{app: app, pointed: pointed, locals: map[string]*localSystem{}})
	}
	baseDir := filepath.Join(work, "base")
	bp, err := podman.New(podman.ConfigAt(baseDir))
	if err != nil {
		return err
	}
	baseLog, err := os.Create(filepath.Join(logDir, "base.log"))
	if err != nil {
		return err
	}
	for _, b := range slices.Sorted(maps.Keys(bases)) {
		ref := srv.Host + "/base/" + b
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
	removeStorage(bp, baseDir)

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
	ci := &ciSystem{b: floor, workDir: work, host: srv.Host, network: cfg.Network, timeout: cfg.BuildTimeout}
	cleanups = append(cleanups, func() {
		for _, a := range apps {
			a.removeLocals()
		}
	})
	runsOf := func(sc string) int {
		if sc == "cold" {
			return cfg.ColdRuns
		}
		return cfg.Runs
	}
	total := 0
	for _, sc := range cfg.Scenarios {
		total += runsOf(sc) * len(apps)
	}
	// coldStart gives an app everything new: repository, local storages,
	// Slipway project (so a new machine and volume); CI's cache goes unused.
	coldStart := func(a *appState, run int) error {
		var err error
		a.removeLocals()
		if a.repo, err = newAppRepo(ctx, a.app, filepath.Join(work, "repos", fmt.Sprintf("%s-%d", a.app.Name, run+1)), a.pointed.Dockerfile); err != nil {
			return err
		}
		for sys, b := range map[string]*builder{"local": floor, "local-old": old} {
			if slices.Contains(cfg.Systems, sys) {
				if a.locals[sys], err = newLocalSystem(sys, b, filepath.Join(work, fmt.Sprintf("%s-%s-%d", sys, a.app.Name, run+1)), srv.Host, cfg.Network, cfg.BuildTimeout); err != nil {
					return err
				}
			}
		}
		a.project = fmt.Sprintf("%s%d", a.app.Name, run+1)
		if slices.Contains(cfg.Systems, "slipway") {
			return srv.addProject(ctx, a.project, a.repo.Dir, webhookSecret, a.pointed.BuildArgs)
		}
		return nil
	}
	// measure builds the app's commit sha (its parent before) with one
	// system; attempt 2 is a retry.
	measure := func(a *appState, sys, sc string, run int, before, sha string, attempt int) (sample, error) {
		name := fmt.Sprintf("%s-%s-%d-%s", a.app.Name, sc, run+1, sys)
		if attempt > 1 {
			name += fmt.Sprintf("-attempt%d", attempt)
		}
		logf, err := os.Create(filepath.Join(logDir, name+".log"))
		if err != nil {
			return sample{}, err
		}
		defer logf.Close()
		job := buildJob{App: a.app.Name, RepoDir: a.repo.Dir, Commit: sha, BuildArgs: a.pointed.BuildArgs, Log: logf}
		switch sys {
		case "local", "local-old":
			return a.locals[sys].measure(ctx, job)
		case "slipway":
			return srv.deploy(ctx, a.project, a.repo.Dir, webhookSecret, before, sha, cfg.BuildTimeout)
		default:
			return ci.measure(ctx, job, sc != "cold")
		}
	}
	n := 0
	for _, sc := range cfg.Scenarios {
		for run := 0; run < runsOf(sc); run++ {
			for _, a := range rotate(apps, run) {
				n++
				var before, sha string
				if sc == "cold" {
					if err := coldStart(a, run); err != nil {
						return err
					}
					before, sha = strings.Repeat("0", 40), a.repo.Head
				} else {
					before = a.repo.Head
					if sha, err = a.repo.change(ctx, a.app, sc, run, a.deps); err != nil {
						return err
					}
				}
				progress("[%d/%d] %s: %s, run %d of %d: commit %s", n, total, a.app.Name, scenarioTitle[sc], run+1, runsOf(sc), sha[:12])
				for _, sys := range rotate(cfg.Systems, run) {
					load := loadAvg()
					smp, err := measure(a, sys, sc, run, before, sha, 1)
					retried := ""
					if err != nil && ctx.Err() == nil {
						// A build that fails is most often the network
						// (the npm registry, the module proxy): once more,
						// and the sample says so.
						retried = failureSummary(err.Error())
						progress("    %-9s failed: %s; once more", sys, retried)
						load = loadAvg()
						smp, err = measure(a, sys, sc, run, before, sha, 2)
					}
					if err != nil {
						return fmt.Errorf("%s, %s, run %d, %s: %w", a.app.Name, sc, run+1, sys, err)
					}
					smp.App, smp.Scenario, smp.Run, smp.Load1, smp.Retried = a.app.Name, sc, run+1, load, retried
					res.Samples = append(res.Samples, smp)
					note := ""
					if retried != "" {
						note = "; second attempt"
					}
					progress("    %-9s %6.1f s  (%s; %s; load %.1f%s)", sys, float64(smp.TotalMs)/1000, phaseSummary(smp), stepSummary(smp.Steps), load, note)
				}
			}
		}
	}
	res.Date = started.UTC()
	res.Elapsed = time.Since(started).Round(time.Second).String()
	res.print(os.Stdout)
	if cfg.OutDir != "" {
		if err := res.write(cfg.OutDir); err != nil {
			return err
		}
		progress("wrote %s", strings.Join([]string{filepath.Join(cfg.OutDir, "RESULTS.md"), filepath.Join(cfg.OutDir, "results.json"), filepath.Join(cfg.OutDir, "chart.svg")}, ", "))
	}
	return nil
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
