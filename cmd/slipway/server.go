package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/cmd/internal/agentcmd"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/gateway"
	"github.com/slipway-ci/slipway/github"
	"github.com/slipway-ci/slipway/internal/leakcheck"
	"github.com/slipway-ci/slipway/server"
)

// addServerCommands adds the commands that run Slipway's processes rather
// than talk to a server: `server` and `agent`.
func addServerCommands(root *cobra.Command) {
	root.AddCommand(newServerCmd(), agentcmd.New())
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newServerCmd() *cobra.Command {
	var cfg server.Config
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Slipway server (API, webhooks, registry, Temporal, NATS) in one process",
		Long: `Run the Slipway control plane. By default everything is embedded and kept
in one data directory: the SQLite store, a Temporal server, a NATS JetStream
server and an OCI registry served at /v2/ on the same listener. Point at
external services with --temporal, --nats and --registry.

The API needs a token. On its first start the server creates an admin token
and writes it to DATA-DIR/admin-token (mode 0600); the CLI run from the
directory holding ./slipway-data reads it from there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.TemporalAPIKey == "" {
				// Not the flag's default: --help would print it.
				cfg.TemporalAPIKey = os.Getenv("SLIPWAY_TEMPORAL_API_KEY")
			}
			if cfg.WebhookMaxAge == 0 {
				cfg.WebhookMaxAge = -1 // 0 on the command line turns the window off
			} else if cfg.WebhookMaxAge < 0 {
				return fmt.Errorf("--webhook-max-age %s: want a positive duration such as 1h, or 0 to turn the check off", cfg.WebhookMaxAge)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			cfg.Ready = func(url string) {
				fmt.Fprintf(cmd.OutOrStdout(), "Slipway is running: open %s\n", url)
				if abs, err := filepath.Abs(filepath.Join(cfg.DataDir, server.AdminTokenFile)); err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "The admin API token is in %s (the CLI finds ./slipway-data/admin-token by itself; else pass --token or SLIPWAY_TOKEN; the web UI asks for it).\n", abs)
				}
			}
			cfg.AppsReady = func(pattern string) {
				fmt.Fprintf(cmd.OutOrStdout(), "Apps are served at %s\n", pattern)
				if cfg.Demo {
					fmt.Fprintf(cmd.OutOrStdout(), "The demo app answers at %s once its first deployment succeeds.\n", strings.Replace(pattern, "PROJECT", "demo", 1))
				}
			}
			return leakcheck.Check("the server stopped", cmd.ErrOrStderr(), func() error { return server.Run(cmd.Context(), cfg) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", envOr("SLIPWAY_DATA_DIR", server.DefaultDataDir), "directory for all server state (env SLIPWAY_DATA_DIR)")
	f.StringVar(&cfg.Listen, "listen", envOr("SLIPWAY_LISTEN", server.DefaultListen), "HTTP listen address (env SLIPWAY_LISTEN)")
	f.StringVar(&cfg.PublicURL, "public-url", os.Getenv("SLIPWAY_PUBLIC_URL"), "URL forges and clients use to reach this server (default http://LISTEN)")
	f.StringVar(&cfg.TemporalAddress, "temporal", os.Getenv("SLIPWAY_TEMPORAL"), "external Temporal frontend host:port (default: embedded)")
	f.StringVar(&cfg.TemporalTLSCert, "temporal-tls-cert", os.Getenv("SLIPWAY_TEMPORAL_TLS_CERT"), "client certificate (PEM file) for an external Temporal; builders get it too")
	f.StringVar(&cfg.TemporalTLSKey, "temporal-tls-key", os.Getenv("SLIPWAY_TEMPORAL_TLS_KEY"), "key (PEM file) of --temporal-tls-cert")
	f.StringVar(&cfg.TemporalTLSCA, "temporal-tls-ca", os.Getenv("SLIPWAY_TEMPORAL_TLS_CA"), "CA certificates (PEM file) an external Temporal's certificate is checked against (default: the system's); any --temporal-tls-* turns TLS on")
	f.StringVar(&cfg.TemporalAPIKeyFile, "temporal-api-key-file", os.Getenv("SLIPWAY_TEMPORAL_API_KEY_FILE"), "file holding the API key of an external Temporal (sent as a bearer token by the server and its builders; turns TLS on)")
	f.StringVar(&cfg.TemporalAPIKey, "temporal-api-key", "",
		"API key of an external Temporal; every local user can read a command line, so prefer env SLIPWAY_TEMPORAL_API_KEY or --temporal-api-key-file")
	f.StringVar(&cfg.TemporalNamespace, "temporal-namespace", envOr("SLIPWAY_TEMPORAL_NAMESPACE", builder.DefaultTemporalNamespace), "Temporal namespace")
	f.StringVar(&cfg.NATSURL, "nats", os.Getenv("SLIPWAY_NATS"), "external NATS URL with JetStream (default: embedded, which requires a credential of every client)")
	f.StringVar(&cfg.NATSCreds, "nats-creds", os.Getenv("SLIPWAY_NATS_CREDS"), "NATS credentials file the server's clients of the external NATS (--nats) authenticate with (env SLIPWAY_NATS_CREDS)")
	f.StringVar(&cfg.NATSAgentCreds, "nats-agent-creds", os.Getenv("SLIPWAY_NATS_AGENT_CREDS"),
		"NATS credentials file every project's builder authenticates with on the external NATS (--nats), copied into each builder's 0600 agent.json; give its user only the builders' subjects (env SLIPWAY_NATS_AGENT_CREDS)")
	f.StringVar(&cfg.Registry, "registry", os.Getenv("SLIPWAY_REGISTRY"), "external registry host[:port][/prefix] to push to (default: embedded at /v2/)")
	f.BoolVar(&cfg.RegistryInsecure, "registry-insecure", false,
		"reach the external --registry without TLS verification (plain HTTP allowed, certificates unchecked); verification is on by default, and the embedded registry speaks plain HTTP on the listener")
	f.StringVar(&cfg.RegistryAuthFile, "registry-auth-file", os.Getenv("SLIPWAY_REGISTRY_AUTH_FILE"),
		"containers-auth.json with the login to the external --registry (podman login --authfile FILE HOST), handed to the builders at each wake (env SLIPWAY_REGISTRY_AUTH_FILE)")
	// Verification of an external registry is the default now.
	f.Bool("registry-tls-verify", true, "")
	_ = f.MarkDeprecated("registry-tls-verify", "TLS verification of an external registry is on by default; use --registry-insecure to turn it off")
	f.DurationVar(&cfg.MaxBuild, "max-build", deploy.DefaultMaxBuild, "maximum duration of one build")
	f.IntVar(&cfg.MaxBuilds, "max-builds", server.DefaultMaxBuilds, "builds that may run at once across all projects (each project builds one at a time)")
	f.DurationVar(&cfg.WebhookMaxAge, "webhook-max-age", github.DefaultMaxAge,
		"webhook window: a push delivered longer than this after it was made (a replayed or late delivery) builds nothing if its commit was already deployed from its branch; 0 turns the check off")
	f.BoolVar(&cfg.Demo, "demo", false, "create and deploy a demo project that builds offline")
	addAppsFlags(cmd, &cfg)
	f.StringVar(&cfg.AgentBinary, "agent-binary", os.Getenv("SLIPWAY_AGENT_BINARY"),
		"executable run as 'BINARY agent --config FILE' on each machine (default: slipway-agent next to this executable, else this executable)")
	f.IntVar(&cfg.KeepImages, "keep-images", builder.DefaultKeepImages, "images of each project's last successful builds its machine keeps for rollbacks")
	f.Float64Var(&cfg.ResetThreshold, "reset-threshold", builder.DefaultResetThreshold, "fraction of a volume in use past which its build cache is reset")
	f.DurationVar(&cfg.LogPruneEvery, "log-prune-every", server.DefaultLogPruneEvery, "how often the projects' log retention is applied (also once at start)")
	f.BoolVar(&cfg.NoReuse, "no-reuse", false, "always run the whole Dockerfile, even when an earlier build had identical inputs or the same first steps")
	f.StringVar(&cfg.BuilderIsolation, "builder-isolation", envOr("SLIPWAY_BUILDER_ISOLATION", server.DefaultBuilderIsolation),
		"whom builders run as: rootless (a user per project, rootless buildah), root, or auto (rootless when the host allows it) (env SLIPWAY_BUILDER_ISOLATION)")
	return cmd
}

// addAppsFlags adds the flags of the apps: their gateway, wakes and sleep.
func addAppsFlags(cmd *cobra.Command, cfg *server.Config) {
	f := cmd.Flags()
	f.StringVar(&cfg.AppsListen, "apps-listen", envOr("SLIPWAY_APPS_LISTEN", gateway.DefaultListen),
		"where the apps' gateway listens: each project's current release answers at http://PROJECT.APPS-DOMAIN:PORT; off serves no apps (env SLIPWAY_APPS_LISTEN)")
	f.StringVar(&cfg.AppsDomain, "apps-domain", envOr("SLIPWAY_APPS_DOMAIN", gateway.DefaultDomain), "the apps' domain (names under localhost need no DNS set-up)")
	f.DurationVar(&cfg.WakeTimeout, "wake-timeout", server.DefaultWakeTimeout, "how long a request waits for its sleeping app to start before a 504")
	f.DurationVar(&cfg.AppIdleTimeout, "app-idle-timeout", server.DefaultAppIdleTimeout, "an app with no open request for this long is frozen")
	f.DurationVar(&cfg.AppStopAfter, "app-stop-after", server.DefaultAppStopAfter, "an app with no request for this long is stopped")
	f.BoolVar(&cfg.AppsNoPrime, "apps-stopped-bare", false,
		"a stopped app keeps no process at all (by default conmon and runc's waiting init stay, ~11 MB and no CPU each, so a request wakes it in tens of milliseconds instead of ~200)")
	f.StringSliceVar(&cfg.AppsTrustedProxies, "apps-trusted-proxy", nil,
		"an address or CIDR of a proxy in front of the apps' gateway (e.g. the TLS terminator) whose X-Forwarded-For/-Host/-Proto are kept; repeatable; others' are replaced")
	cfg.PreviewTTL = server.DefaultPreviewTTL
	f.Var((*previewTTL)(&cfg.PreviewTTL), "preview-ttl",
		"a pull request's preview with no request for this long is removed (containers and record), e.g. 72h or 7d; off keeps previews until their pull request closes")
	_ = f.MarkHidden("app-idle-timeout") // server-wide defaults; projects set theirs (project set --idle-timeout)
	_ = f.MarkHidden("app-stop-after")
}

// previewTTL is --preview-ttl: a duration (with d for days), or off (or
// 0), which the server's Config takes as negative.
type previewTTL time.Duration

func (v *previewTTL) String() string {
	switch d := time.Duration(*v); {
	case d < 0:
		return "off"
	case d == 0:
		return ""
	case d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	default:
		return d.String()
	}
}

func (v *previewTTL) Set(s string) error {
	if s == "off" || s == "0" {
		*v = -1
		return nil
	}
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok && err != nil {
		n, perr := strconv.Atoi(days)
		d, err = time.Duration(n)*24*time.Hour, perr
	}
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration such as 72h or 7d, or off")
	}
	*v = previewTTL(d)
	return nil
}

func (v *previewTTL) Type() string { return "duration" }
