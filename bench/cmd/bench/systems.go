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

// localSystem is the floor: podman build + push by hand on one warm storage.
type localSystem struct {
	dir     string
	p       *podman.Podman
	host    string
	network string
	timeout time.Duration
}

func newLocalSystem(dir, host, network string, timeout time.Duration) (*localSystem, error) {
	p, err := podman.New(podman.ConfigAt(dir))
	if err != nil {
		return nil, err
	}
	return &localSystem{dir: dir, p: p, host: host, network: network, timeout: timeout}, nil
}

func (l *localSystem) measure(ctx context.Context, repoDir, sha string, log io.Writer) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	tag := l.host + "/bench-local:" + sha
	start := time.Now()
	steps, buildDur, err := podmanBuild(ctx, l.p, buildSpec{ContextDir: repoDir, Tag: tag, Network: l.network, Log: log})
	if err != nil {
		return sample{}, err
	}
	pushStart := time.Now()
	if _, err := l.p.Push(ctx, tag, false, log); err != nil {
		return sample{}, err
	}
	end := time.Now()
	return sample{
		System: "local", Commit: sha, TotalMs: ms(end.Sub(start)), Steps: steps,
		PhasesMs: map[string]int64{"build": ms(buildDur), "push": ms(end.Sub(pushStart))},
	}, nil
}

// remove empties the storage and deletes the directory.
func (l *localSystem) remove() {
	removeStorage(l.p, l.dir)
}

// ciSystem is clean CI: every build gets a new, empty storage and a shallow
// clone, imports the layer cache from the registry and exports it again.
type ciSystem struct {
	workDir string
	host    string
	network string
	timeout time.Duration
	n       int
}

// cacheRepo is where clean CI keeps its layer cache in the registry.
func (c *ciSystem) cacheRepo() string { return c.host + "/bench-ci-cache" }

func (c *ciSystem) measure(ctx context.Context, repoDir, sha string, importCache bool, log io.Writer) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	c.n++
	dir := filepath.Join(c.workDir, fmt.Sprintf("ci-%03d", c.n))
	src := filepath.Join(dir, "src")
	tag := c.host + "/bench-ci:" + sha
	start := time.Now()
	clone := exec.CommandContext(ctx, "git", "clone", "--quiet", "--depth", "1", "--branch", "main", "file://"+repoDir, src)
	if out, err := clone.CombinedOutput(); err != nil {
		return sample{}, fmt.Errorf("git clone: %w\n%s", err, out)
	}
	cloned := time.Now()
	p, err := podman.New(podman.ConfigAt(filepath.Join(dir, "podman")))
	if err != nil {
		return sample{}, err
	}
	defer removeStorage(p, dir)
	spec := buildSpec{ContextDir: src, Tag: tag, Network: c.network, CacheTo: c.cacheRepo(), Log: log}
	if importCache {
		spec.CacheFrom = c.cacheRepo()
	}
	steps, buildDur, err := podmanBuild(ctx, p, spec)
	if err != nil {
		return sample{}, err
	}
	pushStart := time.Now()
	if _, err := p.Push(ctx, tag, false, log); err != nil {
		return sample{}, err
	}
	end := time.Now()
	return sample{
		System: "ci", Commit: sha, TotalMs: ms(end.Sub(start)), Steps: steps,
		PhasesMs: map[string]int64{"clone": ms(cloned.Sub(start)), "build": ms(buildDur), "push": ms(end.Sub(pushStart))},
	}, nil
}

// removeStorage resets a podman storage (unmounting its layers) and
// deletes dir. Failures are ignored: it is only disk space.
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
