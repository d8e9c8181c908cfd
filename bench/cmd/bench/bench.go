package main

import (
	"context"
	"fmt"
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

	baseRef := srv.Host + "/base/node:20"
	progress("making the Node base image %s from the host's node and npm", baseRef)
	baseDir := filepath.Join(work, "base")
	bp, err := podman.New(podman.ConfigAt(baseDir))
	if err != nil {
		return err
	}
	baseLog, err := os.Create(filepath.Join(logDir, "base.log"))
	if err != nil {
		return err
	}
	t := time.Now()
	err = makeNodeBase(ctx, bp, baseRef, baseLog)
	baseLog.Close()
	if err != nil {
		return fmt.Errorf("node base image: %w", err)
	}
	removeStorage(bp, baseDir)
	progress("base image pushed in %s", time.Since(t).Round(time.Millisecond))

	var deps []depVariant
	if slices.Contains(cfg.Scenarios, "deps") {
		progress("preparing %d dependency bumps (npm install --package-lock-only)", cfg.Runs)
		if deps, err = prepareDepVariants(ctx, cfg.AppDir, work, cfg.Runs); err != nil {
			return err
		}
	}

	res := &results{Machine: machine, Runs: cfg.Runs, Systems: cfg.Systems, Scenarios: cfg.Scenarios, Network: cfg.Network, Registry: srv.Host}
	ci := &ciSystem{workDir: work, host: srv.Host, network: cfg.Network, timeout: cfg.BuildTimeout}
	var (
		repo    *appRepo
		local   *localSystem
		project string
	)
	cleanups = append(cleanups, func() {
		if local != nil {
			local.remove()
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
		total += runsOf(sc)
	}
	n := 0
	for _, sc := range cfg.Scenarios {
		for run := 0; run < runsOf(sc); run++ {
			n++
			var before, sha string
			if sc == "cold" {
				// Everything new: repository, local storage, Slipway
				// project (so a new machine and volume), CI cache unused.
				if local != nil {
					local.remove()
					local = nil
				}
				if repo, err = newAppRepo(ctx, cfg.AppDir, filepath.Join(work, "repos", fmt.Sprintf("app-%d", run+1)), baseRef); err != nil {
					return err
				}
				before, sha = strings.Repeat("0", 40), repo.Head
				if slices.Contains(cfg.Systems, "local") {
					if local, err = newLocalSystem(filepath.Join(work, fmt.Sprintf("local-%d", run+1)), srv.Host, cfg.Network, cfg.BuildTimeout); err != nil {
						return err
					}
				}
				project = fmt.Sprintf("bench%d", run+1)
				if slices.Contains(cfg.Systems, "slipway") {
					if err := srv.addProject(ctx, project, repo.Dir, webhookSecret); err != nil {
						return err
					}
				}
			} else {
				before = repo.Head
				if sha, err = repo.change(ctx, sc, run, deps); err != nil {
					return err
				}
			}
			progress("[%d/%d] %s, run %d of %d: commit %s", n, total, scenarioTitle[sc], run+1, runsOf(sc), sha[:12])
			for _, sys := range rotate(cfg.Systems, run) {
				logf, err := os.Create(filepath.Join(logDir, fmt.Sprintf("%s-%d-%s.log", sc, run+1, sys)))
				if err != nil {
					return err
				}
				var smp sample
				load := loadAvg()
				switch sys {
				case "local":
					smp, err = local.measure(ctx, repo.Dir, sha, logf)
				case "slipway":
					smp, err = srv.deploy(ctx, project, repo.Dir, webhookSecret, before, sha, cfg.BuildTimeout)
				case "ci":
					smp, err = ci.measure(ctx, repo.Dir, sha, sc != "cold", logf)
				}
				logf.Close()
				if err != nil {
					return fmt.Errorf("%s, run %d, %s: %w", sc, run+1, sys, err)
				}
				smp.Scenario, smp.Run, smp.Load1 = sc, run+1, load
				res.Samples = append(res.Samples, smp)
				progress("    %-8s %6.1f s  (%s; %s; load %.1f)", sys, float64(smp.TotalMs)/1000, phaseSummary(smp), stepSummary(smp.Steps), load)
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

// rotate returns systems starting at index run, so no system always goes
// first (after the others warmed the page cache) or last.
func rotate(systems []string, run int) []string {
	k := run % len(systems)
	return append(slices.Clone(systems[k:]), systems[:k]...)
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
