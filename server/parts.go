package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/applog"
	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/buildsecrets"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/gateway"
	"github.com/slipway-ci/slipway/github"
	"github.com/slipway-ci/slipway/gitmirror"
	"github.com/slipway-ci/slipway/graphql"
	"github.com/slipway-ci/slipway/machine/process"
	"github.com/slipway-ci/slipway/natslog/archive"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/payloadcodec"
	"github.com/slipway-ci/slipway/registry"
	"github.com/slipway-ci/slipway/sqlite"
	"github.com/slipway-ci/slipway/temporalserver"
	"github.com/slipway-ci/slipway/web"
)

// parts are the running parts of one Run of the server. Each component's
// start fills in its fields, which the components after it use; a part
// that is external (Temporal, NATS, the registry) leaves its embedded
// server nil, and its stop does nothing.
type parts struct {
	cfg       Config
	log       *slog.Logger
	dataDir   string
	statePath string
	st        state
	// creds issues and checks the internal services' credentials
	// (credentials.go).
	creds *credential.Issuer
	// codec encrypts the payloads of the server's Temporal client;
	// payloadKey is its key (base64) for the agents' (temporal.go).
	codec      *payloadcodec.Codec
	payloadKey string
	// temporalTLS and temporalAPIKey are how the server and its agents
	// reach an external Temporal (temporal.go).
	temporalTLS    *builder.TemporalTLS
	temporalAPIKey string

	store          *sqlite.DB
	temporalServer *temporalserver.Server
	temporalAddr   string
	temporal       client.Client
	nats           *natsserver.Server
	natsURL        string
	// natsOpts authenticate the server's own NATS clients: its credential
	// on the embedded NATS, Config.NATSCreds on an external one.
	natsOpts []nats.Option
	// natsAgentCreds is Config.NATSAgentCreds' contents, for the agents of
	// an external NATS.
	natsAgentCreds string
	logs           *archive.Archiver
	watcher        *archive.Watcher
	// deployments is the store, announcing deployment state changes.
	deployments  slipway.Store
	buildSecrets *buildsecrets.Server
	ln           net.Listener
	publicURL    string
	registryHost string
	// registry is the embedded registry; nil with an external one.
	registry *registry.Registry
	// registryCred is the server's own credential for the embedded
	// registry (it may delete); with an external one, the password of
	// --registry-auth-file (registryUser its user name), or "".
	registryCred, registryUser string
	machines                   *process.Provider
	slots                      *deploy.Slots
	waker                      *earlyWaker
	deployer                   *deploy.Service
	worker                     worker.Worker
	stopRetention              func()
	http                       *http.Server
	// appsRT runs the apps, appHost finds and sleeps them, appsServer is
	// their gateway's listener; all nil with Config.AppsListen AppsOff.
	appsRT  *apps.Runtime
	appHost *appHost
	// previews opens, serves and removes pull requests' previews
	// (previews.go); made with the deployer.
	previews   *previews
	appsServer *gateway.Server
	// appsAddr is the apps' gateway's address once it listens, for the
	// API (which serves before it starts).
	appsAddr atomic.Pointer[string]
	// appLogs collects the apps' output, appsLive is appHost for the API
	// once both run (applogs.go).
	appLogs  atomic.Pointer[applog.Pipeline]
	appsLive atomic.Pointer[appHost]
	// serveErr receives what http.Server.Serve returned; served is closed
	// once it has.
	serveErr chan error
	served   chan struct{}
}

// components are the server's parts in start order; Run stops them in
// reverse. Each needs what the ones before it started: the store first,
// then Temporal and NATS; the log archiver, the log watcher and the build
// secrets service over NATS; the listener, whose address names the
// embedded registry; the state file, once every port is known; the
// machine provider, whose agents need all of the above; the deployer, the
// control worker and log retention; the HTTP server, so that nothing is
// served before what it uses runs; after it the app runtime (its pulls
// need the embedded registry) and the apps' gateway. On the way down the
// apps' gateway stops first (the apps keep running, adopted by the next
// start), then the app runtime, the HTTP server (no new requests), the
// worker and the deployer's early wakes before the machine provider they
// start machines with, and the store last.
func (p *parts) components() []component {
	return []component{
		{name: "store", start: p.startStore, stop: func(context.Context) error { return p.store.Close() }},
		{name: "embedded Temporal", start: p.startTemporalServer, stop: noError(p.stopTemporalServer)},
		{name: "Temporal client", start: p.dialTemporal, stop: noError(func() { p.temporal.Close() })},
		{name: "embedded NATS", start: p.startNATS, stop: noError(p.stopNATS)},
		{name: "log archiver", start: p.startArchiver, stop: noError(func() { p.logs.Stop() })},
		{name: "log watcher", start: p.startWatcher, stop: noError(func() { p.watcher.Close() })},
		{name: "build secrets", start: p.startBuildSecrets, stop: noError(func() { p.buildSecrets.Close() })},
		{name: "listener", start: p.listen, stop: func(context.Context) error { return ignoreClosed(p.ln.Close()) }},
		{name: "embedded registry", start: p.startRegistry, stop: p.stopRegistry},
		{name: "state", start: func(context.Context) error { return p.saveState() }},
		{name: "machine provider", start: p.startMachines, stop: func(context.Context) error { return p.machines.Close() }},
		{name: "deployer", start: p.startDeployer, stop: noError(func() { p.waker.Stop() })},
		{name: "app runtime", start: p.startApps, stop: noError(p.stopApps)},
		{name: "app logs", start: p.startAppLogs, stop: noError(p.stopAppLogs)},
		{name: "control worker", start: p.startWorker, stop: noError(func() { p.worker.Stop() })},
		{name: "reconciliation", start: p.reconcile},
		{name: "log retention", start: p.startRetention, stop: noError(func() { p.stopRetention() })},
		{name: "HTTP server", start: p.startHTTP, stop: p.stopHTTP},
		{name: "apps gateway", start: p.startAppsGateway, stop: p.stopAppsGateway},
		{name: "demo", start: p.startDemo},
	}
}

// newParts prepares the data directory and reads the state of the
// previous run.
func newParts(cfg Config) (*parts, error) {
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	p := &parts{cfg: cfg, log: cfg.Logger, dataDir: dataDir, statePath: filepath.Join(dataDir, "state.json")}
	if p.st, err = loadState(p.statePath); err != nil {
		return nil, err
	}
	if p.creds, err = credential.Load(filepath.Join(dataDir, credential.KeyFile)); err != nil {
		return nil, err
	}
	if err := p.loadTemporalAccess(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *parts) startStore(ctx context.Context) error {
	store, err := sqlite.Open(filepath.Join(p.dataDir, "slipway.db"))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	adminToken := filepath.Join(p.dataDir, AdminTokenFile)
	created, err := ensureAdminToken(ctx, store, adminToken)
	if err != nil {
		_ = store.Close()
		return fmt.Errorf("admin API token: %w", err)
	}
	if created {
		p.log.Info("created the admin API token", "file", adminToken)
	}
	p.store = store
	return nil
}

// startTemporalServer starts the embedded Temporal unless an external one
// is configured, on the port of the previous run (running agents
// reconnect to it).
func (p *parts) startTemporalServer(context.Context) error {
	p.temporalAddr = p.cfg.TemporalAddress
	if p.temporalAddr != "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(p.dataDir, "temporal"), 0o755); err != nil {
		return err
	}
	ts, err := temporalserver.Start(temporalserver.Config{
		DatabaseFile: filepath.Join(p.dataDir, "temporal", "temporal.db"),
		FrontendPort: p.st.TemporalPort,
		Namespace:    p.cfg.TemporalNamespace,
		LogFile:      filepath.Join(p.dataDir, "logs", "temporal.log"),
		Access:       temporalserver.Access{Credentials: p.creds, DeploymentProject: p.deploymentProject},
	})
	if err != nil {
		return fmt.Errorf("start embedded Temporal: %w", err)
	}
	p.temporalServer, p.temporalAddr = ts, ts.HostPort()
	_, port, _ := net.SplitHostPort(p.temporalAddr)
	fmt.Sscan(port, &p.st.TemporalPort)
	p.log.Info("embedded Temporal started", "address", p.temporalAddr)
	return nil
}

func (p *parts) stopTemporalServer() {
	if p.temporalServer != nil {
		p.temporalServer.Stop()
	}
}

// startNATS starts the embedded NATS unless an external one is
// configured, on the port of the previous run.
func (p *parts) startNATS(context.Context) error {
	p.natsURL = p.cfg.NATSURL
	if p.natsURL != "" {
		if p.cfg.NATSCreds != "" {
			p.natsOpts = []nats.Option{nats.UserCredentials(p.cfg.NATSCreds)}
		}
		if p.cfg.NATSAgentCreds != "" {
			b, err := os.ReadFile(p.cfg.NATSAgentCreds)
			if err != nil {
				return fmt.Errorf("agents' NATS credentials: %w", err)
			}
			p.natsAgentCreds = string(b)
		}
		return nil
	}
	if p.cfg.NATSCreds != "" || p.cfg.NATSAgentCreds != "" {
		return errors.New("NATS credentials files are for an external NATS (--nats): the embedded one checks Slipway's own credentials")
	}
	tok, err := p.creds.Server(credential.NATS)
	if err != nil {
		return fmt.Errorf("start embedded NATS: %w", err)
	}
	p.natsOpts = []nats.Option{nats.Token(tok)}
	ns, err := natsserver.Start(natsserver.Config{StoreDir: filepath.Join(p.dataDir, "nats"), Port: p.st.NATSPort, Credentials: p.creds, Logger: p.log})
	if err != nil {
		return fmt.Errorf("start embedded NATS: %w", err)
	}
	p.nats, p.natsURL = ns, ns.URL()
	if i := strings.LastIndex(p.natsURL, ":"); i > 0 {
		fmt.Sscan(p.natsURL[i+1:], &p.st.NATSPort)
	}
	p.log.Info("embedded NATS started", "url", p.natsURL)
	return nil
}

func (p *parts) stopNATS() {
	if p.nats != nil {
		p.nats.Shutdown()
	}
}

func (p *parts) startArchiver(ctx context.Context) (err error) {
	p.logs, err = archive.Start(ctx, archive.Config{URL: p.natsURL, Options: p.natsOpts, Store: p.store, Logger: p.log})
	if err != nil {
		return fmt.Errorf("start log archiver: %w", err)
	}
	return nil
}

// startWatcher starts the log watcher. Deployment state changes written
// through p.deployments are announced, so the API's subscribers hear of
// them at once.
func (p *parts) startWatcher(ctx context.Context) (err error) {
	p.watcher, err = archive.NewWatcher(ctx, archive.WatcherConfig{URL: p.natsURL, Options: p.natsOpts, Store: p.store, Logger: p.log})
	if err != nil {
		return fmt.Errorf("start log watcher: %w", err)
	}
	p.deployments = p.watcher.NotifyingStore(p.store)
	return nil
}

// startBuildSecrets serves the projects' build secrets, which agents
// fetch at build time.
func (p *parts) startBuildSecrets(context.Context) (err error) {
	p.buildSecrets, err = buildsecrets.Serve(buildsecrets.ServerConfig{URL: p.natsURL, Options: p.natsOpts, Store: p.store, Secrets: p.store, Logger: p.log})
	return err
}

func (p *parts) listen(context.Context) error {
	ln, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", p.cfg.Listen, err)
	}
	p.ln = ln
	hostPort := loopbackHostPort(ln.Addr().(*net.TCPAddr))
	p.publicURL = p.cfg.PublicURL
	if p.publicURL == "" {
		p.publicURL = "http://" + hostPort
	}
	p.registryHost = p.cfg.Registry
	if p.registryHost == "" {
		p.registryHost = hostPort
	}
	return nil
}

// ignoreClosed is err unless it says the listener was closed already (by
// the HTTP server's shutdown).
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// startRegistry starts the embedded registry, served at /v2/ on the
// listener, unless an external one is configured.
func (p *parts) startRegistry(ctx context.Context) (err error) {
	if p.cfg.Registry != "" {
		p.registryUser, p.registryCred, err = externalRegistryLogin(p.cfg)
		return err
	}
	if p.registryCred, err = p.creds.Server(credential.Registry); err != nil {
		return err
	}
	p.registry, err = registry.New(ctx, registry.Config{RootDir: filepath.Join(p.dataDir, "registry"), Authenticate: p.registryAccess, Logger: p.log})
	if err != nil {
		return fmt.Errorf("start embedded registry: %w", err)
	}
	return nil
}

func (p *parts) stopRegistry(context.Context) error {
	if p.registry == nil {
		return nil
	}
	return p.registry.Close()
}

func (p *parts) saveState() error {
	if err := saveState(p.statePath, p.st); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// startMachines checks the builder and starts the machine provider.
// Every build runs on buildah ≥ buildah.MinVersion: a server whose agents
// could not build does not start.
func (p *parts) startMachines(ctx context.Context) error {
	volumesDir := filepath.Join(p.dataDir, "volumes")
	builderName, err := buildah.Check(ctx)
	if err != nil {
		return err
	}
	isolation, err := chooseIsolation(ctx, p.cfg.BuilderIsolation, builderName, p.dataDir, volumesDir, p.cfg.AgentBinary, p.log)
	if err != nil {
		return err
	}
	p.machines, err = process.New(process.Config{
		VolumesDir:  volumesDir,
		Isolation:   isolation,
		Binary:      p.cfg.AgentBinary,
		Agent:       agentConfig(p.cfg, p.temporalAddr, p.natsURL, p.registryHost),
		Env:         p.cfg.AgentEnv,
		Credentials: p.agentCredentials,
		Recorder:    p.store,
		Logger:      p.log,
	})
	return err
}

func (p *parts) startDeployer(context.Context) error {
	p.slots = deploy.NewSlots(p.cfg.MaxBuilds)
	p.waker = newEarlyWaker(p.slots.Free, p.machines.Start, p.log)
	p.deployer = deploy.NewService(deploy.ServiceConfig{
		Store:       p.deployments,
		Temporal:    p.temporal,
		Registry:    p.registryHost,
		ResolveRef:  gitmirror.ResolveRef,
		ImageExists: p.registryClient().ImageExists,
		Secrets:     p.store,
		MaxBuild:    p.cfg.MaxBuild,
		EarlyWake:   p.waker.Wake,
		Logger:      p.log,
	})
	p.previews = newPreviews(p.store, p.deployer, p.cfg.PreviewTTL, p.log)
	return nil
}

// startWorker starts the control worker: the deployments' workflows and
// their activities on the control plane.
func (p *parts) startWorker(context.Context) error {
	w := worker.New(p.temporal, deploy.ControlQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(deploy.ProjectWorkflow, workflow.RegisterOptions{Name: "ProjectWorkflow"})
	w.RegisterWorkflowWithOptions(deploy.DeploymentWorkflow, workflow.RegisterOptions{Name: "DeploymentWorkflow"})
	acts := &deploy.ControlActivities{Store: p.deployments, Machines: p.machines, Secrets: p.store, Slots: p.slots,
		Logs: p.logs, Logger: p.log, Releases: p.store}
	if p.appHost != nil {
		acts.Apps = p.appHost
	}
	for name, f := range map[string]any{
		deploy.ActivityMarkBuilding:   acts.MarkBuilding,
		deploy.ActivityWake:           acts.WakeMachine,
		deploy.ActivityFinish:         acts.FinishDeployment,
		deploy.ActivityAcquireSlot:    acts.AcquireBuildSlot,
		deploy.ActivityTryAcquireSlot: acts.TryAcquireBuildSlot,
		deploy.ActivityReleaseSlot:    acts.ReleaseBuildSlot,
		deploy.ActivityAwaitLog:       acts.AwaitLog,
		deploy.ActivityRelease:        acts.Release,
	} {
		w.RegisterActivityWithOptions(f, activity.RegisterOptions{Name: name})
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start control worker: %w", err)
	}
	p.worker = w
	return nil
}

// reconcile brings the store's deployments in line with Temporal's
// workflows; a failure is logged, not fatal.
func (p *parts) reconcile(ctx context.Context) error {
	if err := p.deployer.Reconcile(ctx); err != nil {
		p.log.Error("reconcile deployments with Temporal", "error", err)
	}
	return nil
}

func (p *parts) startRetention(ctx context.Context) error {
	p.stopRetention = startLogPruner(ctx, p.store, p.cfg.LogPruneEvery, p.log)
	return nil
}

// startHTTP serves webhooks, the GraphQL API, the embedded registry and
// the web page on the listener.
func (p *parts) startHTTP(context.Context) error {
	mux := http.NewServeMux()
	hooks := github.HandlerConfig{Store: p.store, Deployer: p.deployer, MaxAge: p.cfg.WebhookMaxAge, Logger: p.log}
	if p.cfg.AppsListen != AppsOff {
		hooks.Previews = p.previews // with no apps served, no previews are built
	}
	mountWebhooks(mux, github.NewHandler(hooks))
	mux.Handle("/graphql", graphql.NewHandler(graphql.Config{Store: p.store, Deployer: p.deployer, Machines: p.machines, Tokens: p.store,
		Live: p.watcher, Secrets: p.store, PublicURL: p.publicURL, AppURL: p.appURL, Logger: p.log,
		Previews: p.store, PreviewURL: p.previewURL, Apps: appsView{p}, AppLogs: p.store}))
	if p.registry != nil {
		mux.Handle("/v2/", p.registry)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/", web.Handler())
	// No server-wide ReadTimeout: registry uploads may rightly take long,
	// and the API's live queries hold their connection. The webhook
	// handler bounds its own body (github.HandlerConfig.ReadTimeout).
	p.http = &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout}
	p.serveErr, p.served = make(chan error, 1), make(chan struct{})
	go func() {
		defer close(p.served)
		p.serveErr <- p.http.Serve(p.ln)
	}()
	return nil
}

// readHeaderTimeout bounds how long a client may take to send a
// request's headers; idleTimeout how long a kept-alive connection may
// wait for its next request.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// mountWebhooks routes the shared webhook URL (github.Path) and the
// projects' own URLs (github.Path/<hook-id>) to h.
func mountWebhooks(mux *http.ServeMux, h http.Handler) {
	mux.Handle(github.Path, h)
	mux.Handle(github.Path+"/", h)
}

// httpShutdownTimeout is how long requests in progress get to end at
// shutdown before their connections are closed.
const httpShutdownTimeout = 5 * time.Second

// stopHTTP stops serving: requests in progress get httpShutdownTimeout,
// then their connections are closed.
func (p *parts) stopHTTP(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, httpShutdownTimeout)
	defer cancel()
	err := p.http.Shutdown(sctx)
	if err != nil {
		err = p.http.Close()
	}
	<-p.served
	return err
}

func (p *parts) startDemo(ctx context.Context) error {
	if !p.cfg.Demo {
		return nil
	}
	if err := setUpDemo(ctx, demoConfig{DataDir: p.dataDir, Registry: p.registryClient(), Store: p.store, Deployer: p.deployer,
		PublicURL: p.publicURL, Logger: p.log}); err != nil {
		p.log.Error("demo project could not be set up", "error", err)
	} else if p.appsServer != nil {
		p.log.Info("the demo app answers at its URL once its first deployment succeeds", "url", p.appsURL(demoProject))
	}
	return nil
}
