package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway/agent"
	"github.com/slipway-ci/slipway/server"
)

// addServerCommands adds the commands that run Slipway's processes rather
// than talk to a server: `server` and `agent`.
func addServerCommands(root *cobra.Command) {
	root.AddCommand(newServerCmd(), newAgentCmd())
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
external services with --temporal, --nats and --registry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			cfg.Ready = func(url string) {
				fmt.Fprintf(cmd.OutOrStdout(), "Slipway is running: open %s\n", url)
			}
			return server.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", envOr("SLIPWAY_DATA_DIR", "./slipway-data"), "directory for all server state (env SLIPWAY_DATA_DIR)")
	f.StringVar(&cfg.Listen, "listen", envOr("SLIPWAY_LISTEN", "127.0.0.1:8080"), "HTTP listen address (env SLIPWAY_LISTEN)")
	f.StringVar(&cfg.PublicURL, "public-url", os.Getenv("SLIPWAY_PUBLIC_URL"), "URL forges and clients use to reach this server (default http://LISTEN)")
	f.StringVar(&cfg.TemporalAddress, "temporal", os.Getenv("SLIPWAY_TEMPORAL"), "external Temporal frontend host:port (default: embedded)")
	f.StringVar(&cfg.TemporalNamespace, "temporal-namespace", envOr("SLIPWAY_TEMPORAL_NAMESPACE", "default"), "Temporal namespace")
	f.StringVar(&cfg.NATSURL, "nats", os.Getenv("SLIPWAY_NATS"), "external NATS URL with JetStream (default: embedded)")
	f.StringVar(&cfg.Registry, "registry", os.Getenv("SLIPWAY_REGISTRY"), "external registry host[:port][/prefix] to push to (default: embedded at /v2/)")
	f.DurationVar(&cfg.MaxBuild, "max-build", time.Hour, "maximum duration of one build")
	f.BoolVar(&cfg.Demo, "demo", false, "create and deploy a demo project that builds offline")
	f.IntVar(&cfg.KeepImages, "keep-images", agent.DefaultKeepImages, "images of each project's last successful builds its machine keeps for rollbacks")
	f.Float64Var(&cfg.ResetThreshold, "reset-threshold", agent.DefaultResetThreshold, "fraction of a volume in use past which its build cache is reset")
	f.BoolVar(&cfg.NoReuse, "no-reuse", false, "always run the Dockerfile, even when an earlier build had identical inputs")
	return cmd
}

func newAgentCmd() *cobra.Command {
	var cfg agent.Config
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a builder agent for one project (started by the machine provider)",
		Long: `Run the agent of one project's builder machine. It polls the project's
task queue (builder-PROJECT), runs its builds with the volume as the cache,
and exits 0 once no work is waiting. The machine provider starts it; you
rarely run it by hand.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			cfg.Stdout = cmd.OutOrStdout()
			return agent.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Project, "project", "", "project whose queue to poll")
	f.StringVar(&cfg.VolumeDir, "volume", "", "the machine's volume directory")
	f.StringVar(&cfg.TemporalHostPort, "temporal", "", "Temporal frontend host:port")
	f.StringVar(&cfg.Namespace, "namespace", "default", "Temporal namespace")
	f.StringVar(&cfg.NATSURL, "nats", "", "NATS URL for the log stream")
	f.BoolVar(&cfg.RegistryTLSVerify, "registry-tls-verify", false, "require TLS for the registry")
	f.IntVar(&cfg.KeepImages, "keep-images", agent.DefaultKeepImages, "keep the images of this many latest successful builds")
	f.Float64Var(&cfg.ResetThreshold, "reset-threshold", agent.DefaultResetThreshold, "reset the build cache when the volume is fuller than this fraction")
	f.BoolVar(&cfg.NoReuse, "no-reuse", false, "always run the Dockerfile, even when an earlier build had identical inputs")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", 3*time.Second, "exit after this long without work")
	f.DurationVar(&cfg.StartTimeout, "start-timeout", time.Minute, "exit if no work arrives within this long of starting")
	for _, name := range []string{"project", "volume", "temporal"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}
