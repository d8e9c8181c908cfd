// Package agentcmd is the `agent` command, shared by the slipway binary
// (`slipway agent`) and the small agent-only binary (`slipway-agent agent`)
// that the process machine provider prefers because it starts faster.
//
// Like the rest of cmd/, it maps its input onto agent.Config and holds no
// other logic. The input is one file, the builder.AgentConfig the machine
// provider wrote (--config): no setting travels as a flag of its own.
package agentcmd

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/worker"

	"github.com/slipway-ci/slipway/agent"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/internal/leakcheck"
)

// New returns the agent command.
func New() *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a builder agent for one project (started by the machine provider)",
		Long: `Run the agent of one project's builder machine. It polls the project's
task queue (builder-PROJECT), runs its builds with the volume as the cache,
and exits 0 once no work is waiting. The machine provider starts it with
the configuration it wrote on the machine's volume (agent.json, a
versioned JSON file: see builder.AgentConfig); you rarely run it by hand.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ac, err := builder.ReadAgentConfig(configFile)
			if err != nil {
				return err
			}
			cfg := agent.Config{AgentConfig: ac}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			cfg.Stdout = cmd.OutOrStdout()
			// Without it the Temporal SDK hashes the whole executable when
			// the worker is created: some 300 ms for the 200 MB slipway
			// binary, most of a wake.
			worker.SetBinaryChecksum(binaryID())
			return leakcheck.Check("the agent stopped", cmd.ErrOrStderr(), func() error { return agent.Run(cmd.Context(), cfg) })
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "the agent's configuration file (JSON, written by the machine provider)")
	_ = cmd.MarkFlagRequired("config")
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
