// Package agent is the process that runs inside a project's builder
// machine. It polls the project's own task queue (builder-<project>), runs
// the BuildWorkflow's activities (fetch into the git mirror on the volume,
// build with buildah (package buildah) with the storage on the volume,
// push), streams their output to NATS, and exits when no work is waiting,
// so the machine can sleep.
//
// It must not touch the control plane's store: everything it learns goes
// back through Temporal (results) and NATS (logs). What it shares with the
// control plane (the build workflow, its inputs and results, its own
// configuration, the volume's layout) is in package builder; it imports no
// server-side package (TestAgentImportsNoServerPackage).
package agent

import (
	"context"
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

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/gitmirror"
	"github.com/slipway-ci/slipway/internal/atomicfile"
	"github.com/slipway-ci/slipway/payloadcodec"
)

// Config configures an agent: what the machine provider decided
// (builder.AgentConfig, read from the file it wrote) and where the agent's
// own output goes. Zero values get the defaults set in Run.
type Config struct {
	builder.AgentConfig
	// Stdout receives every public output line as well; default os.Stdout.
	Stdout io.Writer
	// Logger gets the agent's own messages; default slog.Default().
	Logger *slog.Logger
}

// Run polls the project's queue until the agent has been idle for
// IdleTimeout (or never got work within StartTimeout), or ctx ends. It
// returns nil when it stopped because it was idle, and only once every
// goroutine it started has ended.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.AgentConfig.Validate(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	cfg.AgentConfig = cfg.AgentConfig.WithDefaults()
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	layout := builder.VolumeLayout(cfg.VolumeDir)
	for _, d := range []string{layout.Work, filepath.Dir(layout.Mirror)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("agent: prepare volume: %w", err)
		}
	}
	defer refreshMirror(ctx, layout, cfg.Logger)()
	c, b, err := connect(ctx, cfg, layout)
	if err != nil {
		return err
	}
	defer c.Close()

	tracker := newIdleTracker(time.Now())
	acts := &Activities{cfg: cfg, layout: layout, builder: b, tracker: tracker, background: ctx}
	acts.migrateVolume(ctx)
	defer acts.migrating.Wait()
	// After the worker stopped (no activity starts more), and canceled
	// with ctx: an agent exiting idle has none left.
	defer acts.afterJobs.Wait()
	defer acts.secrets.wipe()
	if acts.events = connectEvents(cfg); acts.events != nil {
		defer acts.events.Close()
	}
	w, err := startWorker(c, cfg.Project, acts)
	if err != nil {
		return err
	}
	defer func() {
		w.Stop()
		// The SDK keeps the workflows it ran in a process-wide cache that
		// Stop leaves, each with a goroutine (a build waiting on an
		// activity's retry, say): they end once it is purged, which only
		// this, the agent's one worker, stopped, may do.
		worker.PurgeStickyWorkflowCache()
	}()
	// Tell the machine provider the agent is polling (it measures the wake
	// until this file appears); an agent that exits idle removes it.
	if err := writeReady(layout.Ready); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	cfg.Logger.Info("agent polling", "project", cfg.Project, "queue", builder.Queue(cfg.Project), "volume", cfg.VolumeDir,
		"uid", os.Geteuid(), "rootless", os.Geteuid() != 0, "builder", b.String())
	return pollUntilIdle(ctx, cfg, tracker, layout)
}

// refreshMirror brings the git mirror up to date and checks out the
// branch head the push moved, in the background: the machine usually
// wakes for a push, and while the agent connects and Temporal hands it
// its build, git's processes then overlap the agent's start instead of
// following it, so that the build's Fetch (which waits for this, holding
// the mirror's lock) finds the pushed commit already there, checked out.
// Best effort: Fetch does the real work. The returned wait cancels the
// refresh and waits for it.
func refreshMirror(ctx context.Context, layout builder.Layout, log *slog.Logger) (wait func()) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	refreshed := make(chan struct{})
	go func() {
		defer close(refreshed)
		start := time.Now()
		commit, err := gitmirror.Refresh(ctx, layout.Mirror, layout.Prepared, nil)
		if err != nil {
			// git's messages come without the URL's credentials.
			log.Info("mirror refresh at wake failed; the build fetches", "error", err)
			return
		}
		log.Info("mirror refreshed at wake", "in", time.Since(start).Round(time.Millisecond), "prepared", commit)
	}()
	return func() {
		cancel()
		<-refreshed
	}
}

// connect makes the builder and dials Temporal. The builder checks its
// version (one buildah process) while the agent dials: both are on the way
// from the wake to polling.
func connect(ctx context.Context, cfg Config, layout builder.Layout) (client.Client, *buildah.Builder, error) {
	type newBuilder struct {
		b   *buildah.Builder
		err error
	}
	builderc := make(chan newBuilder, 1)
	go func() {
		bcfg := buildah.ConfigAt(layout.Builder)
		bcfg.Binary, bcfg.Runtime, bcfg.Runc = cfg.Buildah, cfg.Runtime, cfg.Runc
		var err error
		if bcfg.AuthFile, err = registryAuth(cfg.AgentConfig, layout); err != nil {
			builderc <- newBuilder{nil, err}
			return
		}
		b, err := buildah.New(ctx, bcfg)
		builderc <- newBuilder{b, err}
	}()
	c, err := dialTemporal(cfg)
	nb := <-builderc
	if nb.err != nil {
		if err == nil {
			c.Close()
		}
		return nil, nil, fmt.Errorf("agent: %w", nb.err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("agent: connect to Temporal at %s: %w", cfg.TemporalHostPort, err)
	}
	return c, nb.b, nil
}

// dialTemporal dials Temporal with the wake's credential (or an external
// Temporal's API key and TLS) and the payload codec, so that what the
// agent writes into histories (results, failures, signals) is encrypted.
func dialTemporal(cfg Config) (client.Client, error) {
	creds := cfg.Credentials
	conn, bearer, err := builder.TemporalConnection(creds.Temporal, creds.TemporalTLS)
	if err != nil {
		return nil, err
	}
	opts := client.Options{
		HostPort:          cfg.TemporalHostPort,
		Namespace:         cfg.TemporalNamespace,
		Logger:            tlog.NewStructuredLogger(cfg.Logger),
		ConnectionOptions: conn,
		Credentials:       bearer,
	}
	if creds.PayloadKey != "" {
		codec, err := payloadcodec.ParseKey(creds.PayloadKey)
		if err != nil {
			return nil, err
		}
		opts.DataConverter = codec.DataConverter()
		opts.FailureConverter = payloadcodec.FailureConverter(opts.DataConverter)
	}
	return client.Dial(opts)
}

// natsOptions are the options of every NATS connection of the agent: its
// credential (this wake's, from its configuration) and the inbox prefix the
// embedded NATS lets its project's agent receive replies on.
func natsOptions(cfg builder.AgentConfig) []nats.Option {
	opts := []nats.Option{nats.CustomInboxPrefix(builder.NATSInboxPrefix(cfg.Project))}
	if cfg.Credentials.NATS != "" {
		opts = append(opts, nats.Token(cfg.Credentials.NATS))
	}
	if cfg.Credentials.NATSCreds != "" {
		opts = append(opts, nats.UserCredentialBytes([]byte(cfg.Credentials.NATSCreds)))
	}
	return opts
}

// connectEvents connects to NATS for progress announcements, or returns
// nil. They are best effort, so a NATS that is not there yet is connected
// to in the background.
func connectEvents(cfg Config) *nats.Conn {
	if cfg.NATSURL == "" {
		return nil
	}
	nc, err := nats.Connect(cfg.NATSURL, append([]nats.Option{nats.Name("slipway-agent-events"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(500 * time.Millisecond)}, natsOptions(cfg.AgentConfig)...)...)
	if err != nil {
		cfg.Logger.Warn("progress announcements unavailable", "error", err)
		return nil
	}
	return nc
}

// startWorker starts polling the project's queue for the build workflow
// and acts' activities.
func startWorker(c client.Client, project string, acts *Activities) (worker.Worker, error) {
	// No sticky execution: the embedded Temporal lets an agent poll its
	// project's queue only, and a sticky queue's name does not say whose
	// it is. BuildWorkflow's history is a few events: replaying it for
	// each workflow task costs nothing.
	worker.SetStickyWorkflowCacheSize(0)
	w := worker.New(c, builder.Queue(project), worker.Options{
		// One build at a time: the volume's cache has one writer.
		MaxConcurrentActivityExecutionSize: 1,
		WorkerStopTimeout:                  10 * time.Second,
	})
	w.RegisterWorkflowWithOptions(builder.BuildWorkflow, workflow.RegisterOptions{Name: builder.BuildWorkflowName})
	w.RegisterActivityWithOptions(acts.Fetch, activity.RegisterOptions{Name: builder.ActivityFetch})
	w.RegisterActivityWithOptions(acts.Build, activity.RegisterOptions{Name: builder.ActivityBuild})
	w.RegisterActivityWithOptions(acts.Push, activity.RegisterOptions{Name: builder.ActivityPush})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("agent: start worker: %w", err)
	}
	return w, nil
}

// pollUntilIdle returns nil once the agent is idle (removing its ready
// file), or ctx's error when it ends first.
func pollUntilIdle(ctx context.Context, cfg Config, tracker *idleTracker, layout builder.Layout) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-tick.C:
			if tracker.idle(now, cfg.IdleTimeout, cfg.StartTimeout) {
				cfg.Logger.Info("agent idle, exiting", "project", cfg.Project)
				_ = os.Remove(layout.Ready)
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

// writeReady writes the agent's pid to the volume's ready file (path),
// atomically.
func writeReady(path string) error {
	if err := atomicfile.Write(path, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	return nil
}
