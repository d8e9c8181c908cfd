// Package server wires Slipway's control plane together: the store, the
// embedded (or external) Temporal, NATS and registry, the machine
// provider, the control worker and one HTTP listener serving webhooks, the
// GraphQL API, the registry and the web page.
//
// It owns start-up order and shutdown; it must not contain business logic
// (that lives in deploy, github, graphql, ...). Only cmd/slipway reads flags
// and environment variables into Config.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/buildsecrets"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/github"
	"github.com/slipway-ci/slipway/gitmirror"
	"github.com/slipway-ci/slipway/graphql"
	"github.com/slipway-ci/slipway/internal/atomicfile"
	"github.com/slipway-ci/slipway/machine/process"
	"github.com/slipway-ci/slipway/natslog/archive"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/registry"
	"github.com/slipway-ci/slipway/sqlite"
	"github.com/slipway-ci/slipway/temporalserver"
	"github.com/slipway-ci/slipway/web"
)

// Defaults of Config's fields that are the server's own (the others are
// builder's, deploy's and github's constants), set by WithDefaults and used
// by `slipway server`'s flags.
const (
	DefaultDataDir   = "slipway-data"
	DefaultListen    = "127.0.0.1:8080"
	DefaultMaxBuilds = 4
)

// Config configures `slipway server`. Zero fields mean their default, set
// by WithDefaults (the one place); the embedded components are used unless
// an external address is given.
type Config struct {
	// DataDir holds everything the server keeps: the SQLite store, the
	// Temporal database, the JetStream store, the registry's blobs and the
	// machines' volumes. Default DefaultDataDir.
	DataDir string
	// Listen is the HTTP address for webhooks, /graphql, /v2/ and the UI.
	// Default DefaultListen; port 0 picks a free port.
	Listen string
	// PublicURL is how forges and clients reach the server; default
	// "http://" + the listen address.
	PublicURL string
	// TemporalAddress is an external Temporal frontend (host:port). Empty
	// starts the embedded server.
	TemporalAddress string
	// TemporalNamespace is the namespace to use; default
	// builder.DefaultTemporalNamespace.
	TemporalNamespace string
	// NATSURL is an external NATS server with JetStream. Empty starts the
	// embedded one.
	NATSURL string
	// Registry is an external registry host[:port][/prefix] to push images
	// to. Empty serves the embedded registry at /v2/ on Listen.
	Registry string
	// RegistryTLSVerify makes the agents require TLS with verified
	// certificates when they pull base images, push and label images. Off
	// by default: the embedded registry speaks plain HTTP on loopback (an
	// external one is then reached like podman's --tls-verify=false).
	RegistryTLSVerify bool
	// AgentBinary is the executable started as `AgentBinary agent --config
	// FILE` for each machine; default slipway-agent next to the running executable,
	// else the running executable (see process.DefaultBinary).
	AgentBinary string
	// AgentEnv is added to the agents' environment.
	AgentEnv []string
	// BuilderIsolation is whom the agents (and so buildah) run as:
	// "rootless" (each project's agent as its own unprivileged user, with
	// rootless buildah; the server fails to start if the host cannot do
	// it), "root" (as the server's user), or "auto" (rootless when
	// process.ProbeRootless finds the host able to, else root). Default
	// "auto". The server logs which mode it chose, with which buildah, and
	// why; it does not start without a buildah ≥ buildah.MinVersion.
	BuilderIsolation string
	// KeepImages is how many of a project's latest successful images its
	// machine keeps for rollbacks; default builder.DefaultKeepImages.
	KeepImages int
	// ResetThreshold is the fraction of a volume's filesystem in use past
	// which the machine resets its builder's storage; default
	// builder.DefaultResetThreshold.
	ResetThreshold float64
	// NoReuse makes every deployment run its whole Dockerfile, even when
	// an earlier build had identical inputs or the same first steps.
	NoReuse bool
	// MaxBuilds is how many builds may run at once across all projects
	// (each project builds one at a time anyway); default DefaultMaxBuilds.
	MaxBuilds int
	// MaxBuild bounds a single build; default deploy.DefaultMaxBuild.
	MaxBuild time.Duration
	// WebhookMaxAge is the webhook window: a push delivered more than this
	// long after the push (GitHub's repository.pushed_at) builds nothing
	// when its commit was already deployed from its branch. Zero means
	// github.DefaultMaxAge (one hour; github.NewHandler sets it); negative
	// turns the check off.
	WebhookMaxAge time.Duration
	// LogPruneEvery is how often the projects' log retention is applied
	// (also once at start); default DefaultLogPruneEvery.
	LogPruneEvery time.Duration
	// Demo creates a demo project on start and deploys it.
	Demo bool
	// Logger receives the server's messages; default a text logger on
	// stderr.
	Logger *slog.Logger
	// Ready, if set, is called with the server's base URL once it serves.
	Ready func(url string)
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.TemporalNamespace == "" {
		c.TemporalNamespace = builder.DefaultTemporalNamespace
	}
	if c.KeepImages <= 0 {
		c.KeepImages = builder.DefaultKeepImages
	}
	if c.ResetThreshold <= 0 {
		c.ResetThreshold = builder.DefaultResetThreshold
	}
	if c.BuilderIsolation == "" {
		c.BuilderIsolation = DefaultBuilderIsolation
	}
	if c.MaxBuilds <= 0 {
		c.MaxBuilds = DefaultMaxBuilds
	}
	if c.MaxBuild <= 0 {
		c.MaxBuild = deploy.DefaultMaxBuild
	}
	if c.LogPruneEvery <= 0 {
		c.LogPruneEvery = DefaultLogPruneEvery
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return c
}

// agentConfig is the configuration of every agent, from the server's cfg
// (defaults set) and the addresses of Temporal and NATS: the machine
// provider adds each machine's project and volume and writes it to the
// volume. Every setting of the agents' goes in here, and nowhere else
// (TestAgentConfigCarriesEverySetting).
func agentConfig(cfg Config, temporalAddr, natsURL string) builder.AgentConfig {
	return builder.AgentConfig{
		TemporalHostPort:  temporalAddr,
		TemporalNamespace: cfg.TemporalNamespace,
		NATSURL:           natsURL,
		RegistryTLSVerify: cfg.RegistryTLSVerify,
		KeepImages:        cfg.KeepImages,
		ResetThreshold:    cfg.ResetThreshold,
		NoReuse:           cfg.NoReuse,
		// The builder the server checked at its start (buildah.Check).
		Buildah: buildah.DefaultBinary,
		Runtime: buildah.DefaultRuntime,
		Runc:    buildah.DefaultRunc,
	}.WithDefaults()
}

// state is what the server keeps across restarts besides its databases:
// the ports running agents reconnect to, and the registry token.
type state struct {
	TemporalPort  int    `json:"temporalPort"`
	NATSPort      int    `json:"natsPort"`
	RegistryToken string `json:"registryToken"`
}

func loadState(path string) (state, error) {
	var s state
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	} else if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

func saveState(path string, s state) error {
	b, _ := json.MarshalIndent(s, "", "  ")
	return atomicfile.Write(path, b, 0o600)
}

// Run starts the server and blocks until ctx ends, then shuts down in
// reverse order. In-flight deployments resume on the next Run with the same
// DataDir.
func Run(ctx context.Context, cfg Config) (err error) {
	cfg = cfg.WithDefaults()
	log := cfg.Logger
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	statePath := filepath.Join(dataDir, "state.json")
	st, err := loadState(statePath)
	if err != nil {
		return err
	}
	if st.RegistryToken == "" {
		st.RegistryToken = randomHex(24)
	}

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	store, err := sqlite.Open(filepath.Join(dataDir, "slipway.db"))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	stops = append(stops, func() { _ = store.Close() })
	adminToken := filepath.Join(dataDir, AdminTokenFile)
	if created, err := ensureAdminToken(ctx, store, adminToken); err != nil {
		return fmt.Errorf("admin API token: %w", err)
	} else if created {
		log.Info("created the admin API token", "file", adminToken)
	}

	temporalAddr := cfg.TemporalAddress
	if temporalAddr == "" {
		if err := os.MkdirAll(filepath.Join(dataDir, "temporal"), 0o755); err != nil {
			return err
		}
		ts, err := temporalserver.Start(temporalserver.Config{
			DatabaseFile: filepath.Join(dataDir, "temporal", "temporal.db"),
			FrontendPort: st.TemporalPort,
			Namespace:    cfg.TemporalNamespace,
			LogFile:      filepath.Join(dataDir, "logs", "temporal.log"),
		})
		if err != nil {
			return fmt.Errorf("start embedded Temporal: %w", err)
		}
		stops = append(stops, ts.Stop)
		temporalAddr = ts.HostPort()
		_, port, _ := net.SplitHostPort(temporalAddr)
		fmt.Sscan(port, &st.TemporalPort)
		log.Info("embedded Temporal started", "address", temporalAddr)
	}
	tc, err := client.DialContext(ctx, client.Options{
		HostPort:  temporalAddr,
		Namespace: cfg.TemporalNamespace,
		// The SDK narrates every poll at info level.
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	})
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", temporalAddr, err)
	}
	stops = append(stops, tc.Close)

	natsURL := cfg.NATSURL
	if natsURL == "" {
		ns, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(dataDir, "nats"), Port: st.NATSPort})
		if err != nil {
			return fmt.Errorf("start embedded NATS: %w", err)
		}
		stops = append(stops, ns.Shutdown)
		natsURL = ns.URL()
		if i := strings.LastIndex(natsURL, ":"); i > 0 {
			fmt.Sscan(natsURL[i+1:], &st.NATSPort)
		}
		log.Info("embedded NATS started", "url", natsURL)
	}
	arch, err := archive.Start(ctx, archive.Config{URL: natsURL, Store: store, Logger: log})
	if err != nil {
		return fmt.Errorf("start log archiver: %w", err)
	}
	stops = append(stops, arch.Stop)
	watcher, err := archive.NewWatcher(ctx, archive.WatcherConfig{URL: natsURL, Store: store, Logger: log})
	if err != nil {
		return fmt.Errorf("start log watcher: %w", err)
	}
	stops = append(stops, watcher.Close)
	// Agents fetch their project's build secrets at build time.
	bs, err := buildsecrets.Serve(buildsecrets.ServerConfig{URL: natsURL, Store: store, Secrets: store, Logger: log})
	if err != nil {
		return err
	}
	stops = append(stops, bs.Close)
	// Deployment state changes written through this store are announced,
	// so the API's subscribers hear of them at once.
	deployments := watcher.NotifyingStore(store)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	hostPort := loopbackHostPort(ln.Addr().(*net.TCPAddr))
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = "http://" + hostPort
	}
	registryHost := cfg.Registry
	var reg *registry.Registry
	if registryHost == "" {
		registryHost = hostPort
		reg, err = registry.New(ctx, registry.Config{RootDir: filepath.Join(dataDir, "registry"), Token: st.RegistryToken, Logger: log})
		if err != nil {
			return fmt.Errorf("start embedded registry: %w", err)
		}
		stops = append(stops, func() { _ = reg.Close() })
	}
	if err := saveState(statePath, st); err != nil {
		return fmt.Errorf("save state: %w", err)
	}

	volumesDir := filepath.Join(dataDir, "volumes")
	// Every build runs on buildah ≥ buildah.MinVersion: a server whose
	// agents could not build does not start.
	builderName, err := buildah.Check(ctx)
	if err != nil {
		return err
	}
	isolation, err := chooseIsolation(ctx, cfg.BuilderIsolation, builderName, dataDir, volumesDir, cfg.AgentBinary, log)
	if err != nil {
		return err
	}
	machines, err := process.New(process.Config{
		VolumesDir: volumesDir,
		Isolation:  isolation,
		Binary:     cfg.AgentBinary,
		Agent:      agentConfig(cfg, temporalAddr, natsURL),
		Env:        cfg.AgentEnv,
		Recorder:   store,
		Logger:     log,
	})
	if err != nil {
		return err
	}
	slots := deploy.NewSlots(cfg.MaxBuilds)
	svc := deploy.NewService(deploy.ServiceConfig{
		Store:      deployments,
		Temporal:   tc,
		Registry:   registryHost,
		ResolveRef: gitmirror.ResolveRef,
		ImageExists: func(ctx context.Context, image, digest string) (bool, error) {
			return registryImageExists(ctx, registryHost, image, digest)
		},
		Secrets:  store,
		MaxBuild: cfg.MaxBuild,
		// The machine starts while Temporal schedules the build, unless the
		// build will wait for a slot (then WakeMachine wakes it in time).
		EarlyWake: func(ctx context.Context, project string) {
			if !slots.Free() {
				return
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			go func() {
				defer cancel()
				if err := machines.Start(ctx, project); err != nil {
					log.Warn("early wake failed; the deployment wakes its machine itself", "project", project, "error", err)
				}
			}()
		},
		Logger: log,
	})

	w := worker.New(tc, deploy.ControlQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(deploy.ProjectWorkflow, workflow.RegisterOptions{Name: "ProjectWorkflow"})
	w.RegisterWorkflowWithOptions(deploy.DeploymentWorkflow, workflow.RegisterOptions{Name: "DeploymentWorkflow"})
	acts := &deploy.ControlActivities{Store: deployments, Machines: machines, Secrets: store, Slots: slots,
		Logs: arch, Logger: log}
	w.RegisterActivityWithOptions(acts.MarkBuilding, activity.RegisterOptions{Name: deploy.ActivityMarkBuilding})
	w.RegisterActivityWithOptions(acts.WakeMachine, activity.RegisterOptions{Name: deploy.ActivityWake})
	w.RegisterActivityWithOptions(acts.FinishDeployment, activity.RegisterOptions{Name: deploy.ActivityFinish})
	w.RegisterActivityWithOptions(acts.AcquireBuildSlot, activity.RegisterOptions{Name: deploy.ActivityAcquireSlot})
	w.RegisterActivityWithOptions(acts.TryAcquireBuildSlot, activity.RegisterOptions{Name: deploy.ActivityTryAcquireSlot})
	w.RegisterActivityWithOptions(acts.ReleaseBuildSlot, activity.RegisterOptions{Name: deploy.ActivityReleaseSlot})
	w.RegisterActivityWithOptions(acts.AwaitLog, activity.RegisterOptions{Name: deploy.ActivityAwaitLog})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start control worker: %w", err)
	}
	stops = append(stops, w.Stop)

	if err := svc.Reconcile(ctx); err != nil {
		log.Error("reconcile deployments with Temporal", "error", err)
	}
	stops = append(stops, startLogPruner(ctx, store, cfg.LogPruneEvery, log))

	mux := http.NewServeMux()
	mux.Handle("/webhooks/github", github.NewHandler(github.HandlerConfig{Store: store, Deployer: svc, MaxAge: cfg.WebhookMaxAge, Logger: log}))
	mux.Handle("/graphql", graphql.NewHandler(graphql.Config{Store: store, Deployer: svc, Machines: machines, Tokens: store, Live: watcher,
		Secrets: store, PublicURL: publicURL, Logger: log}))
	if reg != nil {
		mux.Handle("/v2/", reg)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/", web.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	stops = append(stops, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})

	if cfg.Demo {
		if err := setUpDemo(ctx, demoConfig{DataDir: dataDir, Registry: registryHost, Store: store, Deployer: svc, PublicURL: publicURL, Logger: log}); err != nil {
			log.Error("demo project could not be set up", "error", err)
		}
	}

	log.Info("Slipway is running", "url", publicURL, "data", dataDir, "registry", registryHost)
	if cfg.Ready != nil {
		cfg.Ready(publicURL)
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve HTTP: %w", err)
	}
}

// loopbackHostPort is the address local clients (agents, buildah) use to
// reach a listener: an unspecified IP becomes 127.0.0.1.
func loopbackHostPort(a *net.TCPAddr) string {
	ip := a.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(a.Port))
}
