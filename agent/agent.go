// Package agent is the process that runs inside a project's builder
// machine. It polls the project's own task queue (builder-<project>), runs
// the BuildWorkflow's activities (fetch into the git mirror on the volume,
// build with buildah (package buildah) with the storage on the volume,
// push), streams their output to NATS, and exits when no work is waiting,
// so the machine can sleep.
//
// It must not touch the control plane's store: everything it learns goes
// back through Temporal (results) and NATS (logs).
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/gitmirror"
	"github.com/slipway-ci/slipway/internal/atomicfile"
)

// Config configures an agent. Zero values get the defaults set in Run.
type Config struct {
	// Project is the project whose queue the agent polls. Required.
	Project string
	// VolumeDir is the machine's volume: the git mirror, the builder's
	// storage, checkouts. Required. See Layout.
	VolumeDir string
	// TemporalHostPort is the Temporal frontend. Required.
	TemporalHostPort string
	// Namespace is the Temporal namespace; default "default".
	Namespace string
	// NATSURL is where build output is streamed. Empty: output only goes to
	// Stdout.
	NATSURL string
	// RegistryTLSVerify requires TLS when pulling base images and pushing.
	// Off by default: the embedded registry speaks plain HTTP on loopback.
	RegistryTLSVerify bool
	// IdleTimeout is how long the agent keeps polling after its last task
	// before it exits 0 (the machine sleeps). Default 3s.
	IdleTimeout time.Duration
	// StartTimeout is how long a freshly started agent waits for its first
	// task. Default 60s.
	StartTimeout time.Duration
	// KeepImages is how many of this project's latest successful images the
	// machine keeps (so a rollback never rebuilds); default 5.
	KeepImages int
	// ResetThreshold is the fraction of the volume's filesystem in use past
	// which the builder's storage is reset after a build; default 0.75.
	ResetThreshold float64
	// NoReuse turns off reusing the image of an earlier build with
	// identical inputs and starting stages from the recorded images of
	// unchanged steps (every deployment then runs the whole Dockerfile,
	// with the builder's layer cache).
	NoReuse bool
	// Stdout receives every public output line as well; default os.Stdout.
	Stdout io.Writer
	// Logger gets the agent's own messages; default slog.Default().
	Logger *slog.Logger
}

// Layout names the directories on a machine's volume. This is the one
// place the volume's layout is written down (README.md links here). The
// volume is only a cache: deleting it makes the next build cold, never
// wrong.
//
//	VOLUME/                      the project's volume: DATA-DIR/volumes/PROJECT. Mode 0700;
//	                             in rootless mode owned by the project's builder user
//	                             slipway-PROJECT, which nobody else's agent runs as
//	  agent.pid                  the agent's pid (written by the machine provider)
//	  agent.ready                the agent polls its queue (slipway.AgentReadyFile)
//	  agent.log                  the agent's stdout and stderr
//	  git/mirror.git             bare git mirror, fetched into incrementally (Mirror)
//	  work/DEPLOYMENT            checkout of one deployment, removed after its push (Work)
//	  work/.prepared/SHA         checkout made at wake of the branch head the push moved,
//	                             moved to work/DEPLOYMENT by that build's Fetch (Prepared)
//	  work/secrets-*             a build's secrets (0600 files), removed after the build
//	  buildah/storage            buildah's storage root (--root): images, layers, build cache
//	  buildah/run                buildah's run root (--runroot): locks, mount state; when the
//	                             path is longer than the 50-character limit, a short
//	                             directory /run/slipway-HASH (root) or
//	                             $XDG_RUNTIME_DIR/slipway-HASH (rootless) instead
//	  buildah/tmp                build bundles, image copies, per-build scratch
//	  buildah/tmp/buildah        TMPDIR of builds: RUN --mount=type=cache storage
//	                             (buildah-cache-UID), kept from build to build
//	  buildah/conf               containers.conf written for this volume
//	  podman/                    an older agent's podman 4.3 storage: moved to
//	                             .podman-removing and removed at the agent's start
//	                             (migrateVolume)
//	  tmp/                       TMPDIR of the agent and its tools (git, ...)
//	  home/                      rootless only: HOME and XDG_{CONFIG,DATA,CACHE}_HOME;
//	                             .gitconfig; .local/share/containers/cache holds the
//	                             blob-info cache (as root, buildah keeps it in
//	                             /var/lib/containers/cache, shared by all projects)
//	  inputs/KEY                 image built from identical inputs (reuse without a build)
//	  steps.json                 image of each recorded Dockerfile step key (steps.go)
//	  work/dockerfile-*/         a build's rewritten Dockerfile, while it builds
//	  pinned-images.json         images kept for rollbacks (housekeeping)
//	  logspool/                  public log lines kept while NATS is unreachable (LogSpool)
//
// Outside the volume, a rootless agent's XDG_RUNTIME_DIR is
// /run/slipway/HASH-OF-VOLUME-PATH (buildah keeps runc's and the network's
// state there).
type Layout struct {
	Root string
	// Mirror is the bare git mirror of the project's repository.
	Mirror string
	// Work holds one checkout per running deployment.
	Work string
	// Prepared holds the checkout the agent makes at wake of the commit
	// the push brought (gitmirror.Refresh), for the build's Fetch.
	Prepared string
	// Builder holds the builder's (buildah's) storage root, run root, tmp
	// dir and config.
	Builder string
	// LogSpool holds the public log lines NATS could not take yet (NATS
	// away, or the agent exited before it came back); the next publisher
	// sends them first. See publish.Config.SpoolDir.
	LogSpool string
}

// VolumeLayout returns the layout of the volume at dir.
func VolumeLayout(dir string) Layout {
	return Layout{
		Root:     dir,
		Mirror:   filepath.Join(dir, "git", "mirror.git"),
		Work:     filepath.Join(dir, "work"),
		Prepared: filepath.Join(dir, "work", ".prepared"),
		Builder:  filepath.Join(dir, "buildah"),
		LogSpool: filepath.Join(dir, "logspool"),
	}
}

// Run polls the project's queue until the agent has been idle for
// IdleTimeout (or never got work within StartTimeout), or ctx ends. It
// returns nil when it stopped because it was idle.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Project == "" || cfg.VolumeDir == "" || cfg.TemporalHostPort == "" {
		return errors.New("agent: project, volume and Temporal address are required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 3 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.KeepImages <= 0 {
		cfg.KeepImages = DefaultKeepImages
	}
	if cfg.ResetThreshold <= 0 {
		cfg.ResetThreshold = DefaultResetThreshold
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	layout := VolumeLayout(cfg.VolumeDir)
	for _, d := range []string{layout.Work, filepath.Dir(layout.Mirror)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("agent: prepare volume: %w", err)
		}
	}
	// The machine usually wakes for a push: bring the git mirror up to
	// date and check out the branch head the push moved while the agent
	// connects and Temporal hands it its build, so that the build's Fetch
	// (which waits for this, holding the mirror's lock) finds the pushed
	// commit already there, checked out: on the way from the push to the
	// build, git's processes then overlap the agent's start instead of
	// following it. Best effort: Fetch does the real work.
	refreshCtx, cancelRefresh := context.WithTimeout(ctx, refreshTimeout)
	defer cancelRefresh()
	go func() {
		start := time.Now()
		commit, err := gitmirror.Refresh(refreshCtx, layout.Mirror, layout.Prepared, nil)
		if err != nil {
			// git's messages come without the URL's credentials.
			cfg.Logger.Info("mirror refresh at wake failed; the build fetches", "error", err)
			return
		}
		cfg.Logger.Info("mirror refreshed at wake", "in", time.Since(start).Round(time.Millisecond), "prepared", commit)
	}()
	// The builder checks its version (one buildah process) while the
	// agent dials Temporal: both are on the way from the wake to polling.
	type newBuilder struct {
		b   *buildah.Builder
		err error
	}
	builderc := make(chan newBuilder, 1)
	go func() {
		b, err := buildah.New(ctx, buildah.ConfigAt(layout.Builder))
		builderc <- newBuilder{b, err}
	}()
	c, err := client.Dial(client.Options{
		HostPort:  cfg.TemporalHostPort,
		Namespace: cfg.Namespace,
		Logger:    tlog.NewStructuredLogger(cfg.Logger),
	})
	nb := <-builderc
	if nb.err != nil {
		if err == nil {
			c.Close()
		}
		return fmt.Errorf("agent: %w", nb.err)
	}
	if err != nil {
		return fmt.Errorf("agent: connect to Temporal at %s: %w", cfg.TemporalHostPort, err)
	}
	defer c.Close()

	tracker := newIdleTracker(time.Now())
	acts := &Activities{cfg: cfg, layout: layout, builder: nb.b, tracker: tracker}
	acts.migrateVolume(ctx)
	defer acts.migrating.Wait()
	defer acts.secrets.wipe()
	if cfg.NATSURL != "" {
		// Progress announcements only: they are best effort, so a NATS
		// that is not there yet is connected to in the background.
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("slipway-agent-events"), nats.MaxReconnects(-1),
			nats.RetryOnFailedConnect(true), nats.ReconnectWait(500*time.Millisecond))
		if err != nil {
			cfg.Logger.Warn("progress announcements unavailable", "error", err)
		} else {
			acts.events = nc
			defer nc.Close()
		}
	}
	w := worker.New(c, deploy.BuilderQueue(cfg.Project), worker.Options{
		// One build at a time: the volume's cache has one writer.
		MaxConcurrentActivityExecutionSize: 1,
		WorkerStopTimeout:                  10 * time.Second,
	})
	w.RegisterWorkflowWithOptions(deploy.BuildWorkflow, workflow.RegisterOptions{Name: "BuildWorkflow"})
	w.RegisterActivityWithOptions(acts.Fetch, activity.RegisterOptions{Name: deploy.ActivityFetch})
	w.RegisterActivityWithOptions(acts.Build, activity.RegisterOptions{Name: deploy.ActivityBuild})
	w.RegisterActivityWithOptions(acts.Push, activity.RegisterOptions{Name: deploy.ActivityPush})
	if err := w.Start(); err != nil {
		return fmt.Errorf("agent: start worker: %w", err)
	}
	defer w.Stop()
	// Tell the machine provider the agent is polling (it measures the wake
	// until this file appears); an agent that exits idle removes it.
	if err := writeReady(cfg.VolumeDir); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	cfg.Logger.Info("agent polling", "project", cfg.Project, "queue", deploy.BuilderQueue(cfg.Project), "volume", cfg.VolumeDir,
		"uid", os.Geteuid(), "rootless", os.Geteuid() != 0, "builder", nb.b.String())

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			if tracker.idle(now, cfg.IdleTimeout, cfg.StartTimeout) {
				cfg.Logger.Info("agent idle, exiting", "project", cfg.Project)
				_ = os.Remove(filepath.Join(cfg.VolumeDir, slipway.AgentReadyFile))
				return nil
			}
		}
	}
}

// refreshTimeout bounds the mirror refresh at wake.
const refreshTimeout = 2 * time.Minute

// idleTracker knows whether an activity is running and when the last one
// ended.
type idleTracker struct {
	mu       sync.Mutex
	started  time.Time
	running  int
	lastDone time.Time
	hadWork  bool
}

func newIdleTracker(now time.Time) *idleTracker { return &idleTracker{started: now} }

func (t *idleTracker) begin() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running++
	t.hadWork = true
}

func (t *idleTracker) end(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running--
	t.lastDone = now
}

func (t *idleTracker) idle(now time.Time, idle, start time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running > 0 {
		return false
	}
	if !t.hadWork {
		return now.Sub(t.started) > start
	}
	return now.Sub(t.lastDone) > idle
}

// writeReady writes the agent's pid to the volume's ready file, atomically.
func writeReady(volume string) error {
	if err := atomicfile.Write(filepath.Join(volume, slipway.AgentReadyFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	return nil
}
