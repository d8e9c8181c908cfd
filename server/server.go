// Package server wires Slipway's control plane together: the store, the
// embedded (or external) Temporal, NATS and registry, the machine
// provider, the control worker and one HTTP listener serving webhooks, the
// GraphQL API, the registry and the web page.
//
// It owns start-up order and shutdown: each part is a component with a
// start and a stop (component.go), listed in start order by
// parts.components (parts.go); Run starts them in that order and stops
// them in reverse. It must not contain business logic
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
	"strings"
	"time"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/gateway"
	"github.com/slipway-ci/slipway/internal/atomicfile"
)

// Defaults of Config's fields that are the server's own (the others are
// builder's, deploy's and github's constants), set by WithDefaults and used
// by `slipway server`'s flags.
const (
	DefaultDataDir   = "slipway-data"
	DefaultListen    = "127.0.0.1:8080"
	DefaultMaxBuilds = 4
	// AppsOff as Config.AppsListen (--apps-listen off) serves no apps.
	AppsOff               = "off"
	DefaultWakeTimeout    = 30 * time.Second
	DefaultAppIdleTimeout = 5 * time.Minute
	DefaultAppStopAfter   = time.Hour
	// DefaultPreviewTTL is Config.PreviewTTL's default: a week.
	DefaultPreviewTTL = 7 * 24 * time.Hour
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
	// TemporalTLSCert and TemporalTLSKey are the files of a client
	// certificate and its key (PEM) for an external Temporal that asks for
	// one; TemporalTLSCA the file of the CA certificates (PEM) its
	// certificate is checked against (default the system's). Setting any
	// turns TLS on. The agents get the same, in their configuration file.
	TemporalTLSCert, TemporalTLSKey, TemporalTLSCA string
	// TemporalAPIKeyFile is the file of an API key an external Temporal
	// asks for (sent as `authorization: Bearer`); the agents present it
	// too. It turns TLS on (with the system's CAs unless TemporalTLSCA).
	// (A file, not a flag's value: argv is readable by every local user.)
	TemporalAPIKeyFile string
	// TemporalAPIKey is the API key itself, as `--temporal-api-key` or
	// SLIPWAY_TEMPORAL_API_KEY give it; at most one of it and
	// TemporalAPIKeyFile.
	TemporalAPIKey string
	// NATSURL is an external NATS server with JetStream. Empty starts the
	// embedded one, which requires a credential of every client (package
	// natsserver).
	NATSURL string
	// NATSCreds is a NATS credentials file (JWT and nkey seed,
	// nats.UserCredentials) the server's own clients of an external NATS
	// (NATSURL) authenticate with; empty: none.
	NATSCreds string
	// NATSAgentCreds is a NATS credentials file the agents of every
	// project authenticate with on an external NATS: the server copies it
	// into each machine's agent.json (mode 0600). One file for all
	// projects: the external NATS cannot tell projects apart, so give its
	// user only the agents' subjects (natsserver.AgentPermissions with
	// "*" for the project). Empty: agents present no NATS credential.
	NATSAgentCreds string
	// Registry is an external registry host[:port][/prefix] to push images
	// to. Empty serves the embedded registry at /v2/ on Listen.
	Registry string
	// RegistryInsecure turns off TLS verification of the external
	// Registry: the agents then reach it like podman's
	// --tls-verify=false (plain HTTP allowed, certificates unchecked).
	// Without it an external registry must speak TLS with a verified
	// certificate; the embedded one speaks plain HTTP on the server's
	// listener either way.
	RegistryInsecure bool
	// RegistryAuthFile is a containers-auth.json file (podman login's
	// format: `podman login --authfile FILE HOST`) with the login to the
	// external Registry. The server reads its entry for the registry's
	// host at each wake of a machine and hands it to the agent in its
	// 0600 agent.json, and uses it for its own look-ups. Empty: the
	// external registry is reached without a login.
	RegistryAuthFile string
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
	// AppsListen is where the apps' gateway listens (host:port; port 0
	// picks one): each project's current release is served at
	// http://<project>.<AppsDomain>:<port>. Default gateway.DefaultListen;
	// AppsOff turns the apps (their runtime and gateway) off.
	AppsListen string
	// AppsDomain is the apps' domain; default gateway.DefaultDomain
	// (localhost: browsers resolve its names to the loopback).
	AppsDomain string
	// AppsNoPrime leaves a stopped app with no process at all
	// (apps.Config.NoPrime): a slower wake.
	AppsNoPrime bool
	// AppsTrustedProxies are the addresses or CIDRs of proxies in front of
	// the apps' gateway whose X-Forwarded-* headers are kept
	// (gateway.Config.TrustedProxies).
	AppsTrustedProxies []string
	// WakeTimeout bounds how long a request waits for its app to wake
	// (504 after it); default DefaultWakeTimeout.
	WakeTimeout time.Duration
	// AppIdleTimeout is how long an app runs with no open request before
	// it is frozen; AppStopAfter how long after its last request it is
	// stopped. Defaults DefaultAppIdleTimeout and DefaultAppStopAfter.
	AppIdleTimeout, AppStopAfter time.Duration
	// PreviewTTL is how long a pull request's preview lives after its
	// last request (or, never requested, after its last build was asked
	// for): past it the preview's app and record are removed. Zero means
	// DefaultPreviewTTL; negative keeps previews until their pull request
	// closes.
	PreviewTTL time.Duration
	// Logger receives the server's messages; default a text logger on
	// stderr.
	Logger *slog.Logger
	// Ready, if set, is called with the server's base URL once it serves.
	Ready func(url string)
	// AppsReady, if set, is called after Ready with the apps' URL
	// pattern (http://PROJECT.<domain>:<port>) when apps are served.
	AppsReady func(pattern string)
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
	if c.AppsListen == "" {
		c.AppsListen = gateway.DefaultListen
	}
	if c.AppsDomain == "" {
		c.AppsDomain = gateway.DefaultDomain
	}
	if c.WakeTimeout <= 0 {
		c.WakeTimeout = DefaultWakeTimeout
	}
	if c.AppIdleTimeout <= 0 {
		c.AppIdleTimeout = DefaultAppIdleTimeout
	}
	if c.AppStopAfter <= 0 {
		c.AppStopAfter = DefaultAppStopAfter
	}
	if c.PreviewTTL == 0 {
		c.PreviewTTL = DefaultPreviewTTL
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
func agentConfig(cfg Config, temporalAddr, natsURL, registryHost string) builder.AgentConfig {
	return builder.AgentConfig{
		TemporalHostPort:  temporalAddr,
		TemporalNamespace: cfg.TemporalNamespace,
		NATSURL:           natsURL,
		Registry:          strings.SplitN(registryHost, "/", 2)[0],
		RegistryTLSVerify: registryTLSVerify(cfg),
		KeepImages:        cfg.KeepImages,
		ResetThreshold:    cfg.ResetThreshold,
		NoReuse:           cfg.NoReuse,
		// The builder the server checked at its start (buildah.Check).
		Buildah: buildah.DefaultBinary,
		Runtime: buildah.DefaultRuntime,
		Runc:    buildah.DefaultRunc,
	}.WithDefaults()
}

// registryTLSVerify reports whether the registry is reached with verified
// TLS: an external one unless RegistryInsecure, never the embedded one
// (plain HTTP on the listener).
func registryTLSVerify(cfg Config) bool {
	return cfg.Registry != "" && !cfg.RegistryInsecure
}

// state is what the server keeps across restarts besides its databases:
// the ports running agents reconnect to. (The registry token older
// servers kept here as "registryToken" is no longer used: every registry
// client presents a credential of its own.)
type state struct {
	TemporalPort int `json:"temporalPort"`
	NATSPort     int `json:"natsPort"`
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

// Run starts the server's components (see parts.components for their
// order) and blocks until ctx ends or the HTTP server fails, then stops
// them in reverse order; it returns once every goroutine of ours it
// started has ended (the embedded Temporal server does not await its own:
// see internal/leakcheck). In-flight deployments resume on the next Run with the same
// DataDir; running agents go on and are adopted by it.
func Run(ctx context.Context, cfg Config) error {
	p, err := newParts(cfg.WithDefaults())
	if err != nil {
		return err
	}
	stopAll, err := startAll(ctx, p.components(), p.log)
	if err != nil {
		return err
	}
	defer stopAll()
	p.log.Info("Slipway is running", "url", p.publicURL, "data", p.dataDir, "registry", p.registryHost, "apps", p.appsURL("*"))
	if p.cfg.Ready != nil {
		p.cfg.Ready(p.publicURL)
	}
	if p.cfg.AppsReady != nil && p.appsServer != nil {
		p.cfg.AppsReady(p.appsURL("PROJECT"))
	}
	select {
	case <-ctx.Done():
		p.log.Info("shutting down")
		return nil
	case err := <-p.serveErr:
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
