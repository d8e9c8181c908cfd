// Command slipway-agent runs only the builder agent: `slipway-agent agent
// --config VOLUME/agent.json` does what `slipway agent` does. It leaves out
// the server (the embedded Temporal, NATS and registry), which makes it a
// sixth of the size and lets it start several times faster, so a sleeping
// machine wakes quicker. The process machine provider uses it when it lies
// next to the slipway executable.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway/cmd/internal/agentcmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := &cobra.Command{
		Use:           "slipway-agent",
		Short:         "Slipway's builder agent alone (see 'slipway agent')",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.AddCommand(agentcmd.New())
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %s\n", err)
		os.Exit(1)
	}
}
