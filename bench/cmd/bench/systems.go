package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-ci/slipway/podman"
)

// sample is one measured build of one system.
type sample struct {
	// App is the sample app (benchApp.Name).
	App      string `json:"app"`
	Scenario string `json:"scenario"`
	Run      int    `json:"run"`
	System   string `json:"system"`
	Commit   string `json:"commit"`
	// TotalMs is the headline figure: from the start of the work to the
	// image being in the registry (for slipway: webhook POST to the
	// deployment seen succeeded).
	TotalMs int64 `json:"totalMs"`
	// PhasesMs break TotalMs down; the names depend on the system.
	PhasesMs map[string]int64 `json:"phasesMs"`
	Steps    []step           `json:"steps,omitempty"`
	// Load1 is the machine's one-minute load average when the sample
	// started: the machine may be shared, and a high load explains outliers.
	Load1 float64 `json:"load1"`
	// Retried is why the first attempt failed when this sample is a
	// second one: on warm storage it started from what the first left.
	Retried string `json:"retried,omitempty"`

	// For the orchestration benchmark (slipway only): when the POST was
	// sent, the deployment, and its stored log lines.
	start      time.Time
	deployment string
	lines      []logLine
}

// loadAvg returns the one-minute load average (0 if unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	_, _ = fmt.Sscan(string(b), &l)
	return l
}

// buildJob is one commit of one app for the local floor or clean CI.
type buildJob struct {
	App     string
	RepoDir string
	Commit  string
	// BuildArgs are passed with --build-arg (the project's build arguments).
	BuildArgs map[string]string
	Log       io.Writer
}

// localSystem is a developer's warm build: build + push by hand on one
// storage of its own (the layer cache and the RUN cache mounts persist),
// with one builder. "local" (the floor) builds with the new builder,
// "local-old" with the old one.
type localSystem struct {
	name    string // the system: "local" or "local-old"
	b       *builder
	dir     string
	p       *podman.Podman
	host    string
	network string
	timeout time.Duration
}

func newLocalSystem(name string, b *builder, dir, host, network string, timeout time.Duration) (*localSystem, error) {
	p, err := b.storage(dir)
	if err != nil {
		return nil, err
	}
	return &localSystem{name: name, b: b, dir: dir, p: p, host: host, network: network, timeout: timeout}, nil
}

func (l *localSystem) measure(ctx context.Context, job buildJob) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	tag := fmt.Sprintf("%s/bench-%s/%s:%s", l.host, l.name, job.App, job.Commit)
	start := time.Now()
	steps, buildDur, err := runBuild(ctx, l.p, buildSpec{ContextDir: job.RepoDir, Tag: tag, BuildArgs: job.BuildArgs, Flags: l.b.BuildFlags, Network: l.network, Log: job.Log})
	if err != nil {
		return sample{}, err
	}
	pushStart := time.Now()
	if _, err := l.p.Push(ctx, tag, false, job.Log); err != nil {
		return sample{}, err
	}
	end := time.Now()
	return sample{
		System: l.name, Commit: job.Commit, TotalMs: ms(end.Sub(start)), Steps: steps,
		PhasesMs: map[string]int64{"build": ms(buildDur), "push": ms(end.Sub(pushStart))},
	}, nil
}

// remove empties the storage and deletes the directory.
func (l *localSystem) remove() {
	if l == nil || l.p == nil {
		return
	}
	removeStorage(l.p, l.dir)
}

// ciSystem is clean CI: every build gets a new, empty storage and a shallow
// clone, imports the layer cache from the registry and exports it again.
// It builds with the local floor's builder, so that the two differ only in
// what a hosted CI machine lacks: warm storage.
type ciSystem struct {
	b       *builder
	workDir string
	host    string
	network string
	timeout time.Duration
	n       int
}

// cacheRepo is where clean CI keeps an app's layer cache in the registry.
func (c *ciSystem) cacheRepo(app string) string { return c.host + "/bench-ci-cache/" + app }

func (c *ciSystem) measure(ctx context.Context, job buildJob, importCache bool) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	c.n++
	dir := filepath.Join(c.workDir, fmt.Sprintf("ci-%03d", c.n))
	src := filepath.Join(dir, "src")
	tag := fmt.Sprintf("%s/bench-ci/%s:%s", c.host, job.App, job.Commit)
	start := time.Now()
	clone := exec.CommandContext(ctx, "git", "clone", "--quiet", "--depth", "1", "--branch", "main", "file://"+job.RepoDir, src)
	if out, err := clone.CombinedOutput(); err != nil {
		return sample{}, fmt.Errorf("git clone: %w\n%s", err, out)
	}
	cloned := time.Now()
	p, err := c.b.storage(filepath.Join(dir, "storage"))
	if err != nil {
		return sample{}, err
	}
	defer removeStorage(p, dir)
	spec := buildSpec{ContextDir: src, Tag: tag, BuildArgs: job.BuildArgs, Flags: c.b.BuildFlags, Network: c.network, CacheTo: c.cacheRepo(job.App), Log: job.Log}
	if importCache {
		spec.CacheFrom = c.cacheRepo(job.App)
	}
	steps, buildDur, err := runBuild(ctx, p, spec)
	if err != nil {
		return sample{}, err
	}
	pushStart := time.Now()
	if _, err := p.Push(ctx, tag, false, job.Log); err != nil {
		return sample{}, err
	}
	end := time.Now()
	return sample{
		System: "ci", Commit: job.Commit, TotalMs: ms(end.Sub(start)), Steps: steps,
		PhasesMs: map[string]int64{"clone": ms(cloned.Sub(start)), "build": ms(buildDur), "push": ms(end.Sub(pushStart))},
	}, nil
}

// removeStorage resets a storage (unmounting its layers; buildah has no
// reset, and the unmounts below do it) and deletes dir. Failures are
// ignored: it is only disk space.
func removeStorage(p *podman.Podman, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = p.Reset(ctx)
	unmountUnder(dir)
	_ = os.RemoveAll(dir)
}

// unmountUnder lazily unmounts everything mounted at or below dir.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

func ms(d time.Duration) int64 { return d.Milliseconds() }
