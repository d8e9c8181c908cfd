// Package agentcmd is the `agent` command, shared by the slipway binary
// (`slipway agent`) and the small agent-only binary (`slipway-agent agent`)
// that the process machine provider prefers because it starts faster.
//
// Like the rest of cmd/, it maps flags onto agent.Config and holds no other
// logic.
package agentcmd

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/worker"

	"github.com/slipway-ci/slipway/agent"
)

// New returns the agent command.
func New() *cobra.Command {
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
			// Without it the Temporal SDK hashes the whole executable when
			// the worker is created: some 300 ms for the 200 MB slipway
			// binary, most of a wake.
			worker.SetBinaryChecksum(binaryID())
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
	f.BoolVar(&cfg.NoReuse, "no-reuse", false, "always run the whole Dockerfile, even when an earlier build had identical inputs or the same first steps")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", 3*time.Second, "exit after this long without work")
	f.DurationVar(&cfg.StartTimeout, "start-timeout", time.Minute, "exit if no work arrives within this long of starting")
	for _, name := range []string{"project", "volume", "temporal"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// binaryID identifies this build of the agent to Temporal (its "binary
// checksum") without reading the executable: the VCS revision it was built
// from, or else the executable's size and modification time.
func binaryID() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, modified := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && !modified {
			return "slipway-" + rev
		}
	}
	if exe, err := os.Executable(); err == nil {
		if st, err := os.Stat(exe); err == nil {
			return fmt.Sprintf("slipway-%d-%d", st.Size(), st.ModTime().UnixNano())
		}
	}
	return "slipway"
}
