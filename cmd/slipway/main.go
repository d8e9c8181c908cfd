// Command slipway is Slipway's one binary: `slipway server` runs the
// control plane, `slipway agent` runs on a builder machine, and the other
// commands (project, deploy, deployments, deployment, logs, machines) are
// clients of the server's GraphQL API.
//
// This is the only place that reads flags and the environment; it maps them
// onto the packages' Config structs and must hold no other logic.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/client"
	"github.com/slipway-ci/slipway/server"
)

// defaultServer is where the client commands look for the server when
// neither --server nor SLIPWAY_SERVER says otherwise.
const defaultServer = "http://127.0.0.1:8080"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit status: 0 on
// success, 1 when the command failed, 2 when it was called wrongly.
// Errors are printed to stderr as "error: MESSAGE".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root, started := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "error: %s\n", err)
	if slipway.ErrorCode(err) == slipway.EUNAUTHORIZED {
		fmt.Fprintln(stderr, "hint: pass an API token with --token or SLIPWAY_TOKEN; on the server's machine the CLI reads the admin token from ./slipway-data/admin-token")
	}
	var uerr usageError
	if !*started || errors.As(err, &uerr) {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return 2
	}
	return 1
}

// usageError marks an error in how a command was called (exit status 2).
// Errors cobra reports before a command runs (unknown flags or commands,
// wrong arguments, flag conflicts) count as usage errors too.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// globals holds the flags every client command shares.
type globals struct {
	server string
	token  string
}

// adminTokenFile is where `slipway server` writes its admin token, in its
// data directory.
const adminTokenFile = "admin-token"

// client returns a client for the server the user chose. A bare host:port
// is taken as http://host:port.
func (g *globals) client() *client.Client {
	server := g.server
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	c := client.New(server, nil)
	if token := g.apiToken(); token != "" {
		c = c.WithToken(token)
	}
	return c
}

// apiToken is the token the user chose: --token, else SLIPWAY_TOKEN, else
// the admin token in the server's data directory when it is readable here
// ($SLIPWAY_DATA_DIR or ./slipway-data), else none.
func (g *globals) apiToken() string {
	if g.token != "" {
		return g.token
	}
	if t := os.Getenv("SLIPWAY_TOKEN"); t != "" {
		return t
	}
	b, err := os.ReadFile(filepath.Join(envOr("SLIPWAY_DATA_DIR", server.DefaultDataDir), adminTokenFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// newRootCmd builds the command tree. started reports whether a command's
// Run function was reached, telling failures from usage errors.
func newRootCmd() (root *cobra.Command, started *bool) {
	g := &globals{}
	root = &cobra.Command{
		Use:   "slipway",
		Short: "Slipway turns a git push into a container image",
		Long: `Slipway turns a git push into a container image, built on the project's own
builder machine with a warm local cache, pushed by commit SHA.

Run the server with 'slipway server'; the other commands talk to it through
its GraphQL API (--server, or SLIPWAY_SERVER) with an API token: --token, or
SLIPWAY_TOKEN, or else the admin token the server wrote to its data
directory, read from ./slipway-data/admin-token (or $SLIPWAY_DATA_DIR/admin-token)
when that file is there. 'slipway token create' makes more tokens.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	server := os.Getenv("SLIPWAY_SERVER")
	if server == "" {
		server = defaultServer
	}
	root.PersistentFlags().StringVar(&g.server, "server", server, "URL of the Slipway server (env SLIPWAY_SERVER)")
	// No default shown: it would print the token from the environment.
	root.PersistentFlags().StringVar(&g.token, "token", "", "API token (default: env SLIPWAY_TOKEN, else ./slipway-data/admin-token if present)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	root.AddCommand(newProjectCmd(g), newProjectsCmd(g), newDeployCmd(g), newDeploymentsCmd(g), newDeploymentCmd(g),
		newLogsCmd(g), newMachinesCmd(g), newRollbackCmd(g), newOpenCmd(g), newCancelCmd(g), newTokenCmd(g), newTokensCmd(g),
		newSecretCmd(g), newSecretsCmd(g), newEnvCmd(g), newPreviewsCmd(g), newAppCmd(g))
	addServerCommands(root)

	started = new(bool)
	markStarted(root, started)
	return root, started
}

// markStarted wraps the Run functions of cmd and its subcommands so that
// they set *started.
func markStarted(cmd *cobra.Command, started *bool) {
	if f := cmd.RunE; f != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			*started = true
			return f(c, args)
		}
	} else if f := cmd.Run; f != nil {
		cmd.Run = func(c *cobra.Command, args []string) {
			*started = true
			f(c, args)
		}
	}
	for _, sub := range cmd.Commands() {
		markStarted(sub, started)
	}
}

// exactArgs is cobra.ExactArgs naming the missing arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageError{fmt.Errorf("%s takes %d argument(s) (%s), got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))}
		}
		return nil
	}
}
