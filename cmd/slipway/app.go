package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/client"
)

// appSettingsHelp explains the app settings flags.
const appSettingsHelp = `--memory SIZE and --cpus N limit the project's app (default 256MiB and 1
CPU; at least 6MiB, at most this host's CPUs). --health-path PATH is the path
whose answer below 400 says the app serves (default /). After --idle-timeout
DUR without a request (default 5m) the app is frozen; after --stop-after DUR
(default 1h, at least the idle timeout) it is stopped. --port N is the port the
app listens on, given to it as PORT (default: the image's single EXPOSE).
"default" restores a default.`

// addAppFlags adds the app settings flags to f.
func addAppFlags(f *pflag.FlagSet) {
	f.String("memory", "", "the app's memory limit, e.g. 512MiB (default 256MiB)")
	f.String("cpus", "", "how many CPUs the app may use, e.g. 0.5 (default 1)")
	f.String("health-path", "", "the path whose answer says the app serves (default /)")
	f.String("idle-timeout", "", "freeze the app after DUR without a request, e.g. 10m (default 5m)")
	f.String("stop-after", "", "stop the app after DUR idle, e.g. 2h (default 1h)")
	f.String("port", "", "the port the app listens on, given as PORT (default: the image's EXPOSE)")
}

// appFlags reads the app settings flags given, checking each as the
// server would (and stop-after against the idle timeout when both are
// given), as usage errors.
func appFlags(cmd *cobra.Command) (client.AppSettingsInput, error) {
	in := client.AppSettingsInput{
		Memory: changed(cmd, "memory"), CPUs: changed(cmd, "cpus"), HealthPath: changed(cmd, "health-path"),
		IdleTimeout: changed(cmd, "idle-timeout"), StopAfter: changed(cmd, "stop-after"), Port: changed(cmd, "port"),
	}
	var a slipway.AppSettings
	var err error
	check := func(flag string, v *string, parse func(string) error) {
		if v != nil && err == nil {
			if perr := parse(*v); perr != nil {
				err = usageError{fmt.Errorf("--%s: %s", flag, slipway.ErrorMessage(perr))}
			}
		}
	}
	check("memory", in.Memory, func(s string) (e error) { a.MemoryBytes, e = slipway.ParseAppMemory(s); return })
	check("cpus", in.CPUs, func(s string) (e error) { a.CPUs, e = slipway.ParseAppCPUs(s); return })
	check("health-path", in.HealthPath, func(s string) (e error) { a.HealthPath, e = slipway.ParseAppHealthPath(s); return })
	check("idle-timeout", in.IdleTimeout, func(s string) (e error) { a.IdleTimeout, e = slipway.ParseAppDuration("idle timeout", s); return })
	check("stop-after", in.StopAfter, func(s string) (e error) { a.StopAfter, e = slipway.ParseAppDuration("stop-after", s); return })
	check("port", in.Port, func(s string) (e error) { a.Port, e = slipway.ParseAppPort(s); return })
	if err == nil && in.IdleTimeout != nil && in.StopAfter != nil {
		if verr := a.Validate(); verr != nil {
			err = usageError{fmt.Errorf("%s", slipway.ErrorMessage(verr))}
		}
	}
	return in, err
}

func newEnvCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "env PROJECT [--json]",
		Short: "List a project's runtime environment (names and when set, never values); set or rm one",
		Long: `A project's runtime environment is what its app is started with (not its
builds: those get build arguments and build secrets). Values are kept
encrypted by the server and cannot be read back; Slipway sets PORT itself.
'slipway env PROJECT' lists the names and when each was set.`,
		Example: `  printf %s "$DATABASE_URL" | slipway env set web DATABASE_URL
  slipway env set web API_KEY --value-file ./api-key
  slipway env web
  slipway env rm web API_KEY`,
		Args: exactArgs("PROJECT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vs, err := g.client().Env(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if vs == nil {
					vs = []*slipway.EnvVar{}
				}
				return writeJSON(w, vs)
			}
			if len(vs) == 0 {
				fmt.Fprintf(w, "Project %s has no runtime environment: set a variable with 'slipway env set %s KEY'.\n", args[0], args[0])
				return nil
			}
			now := time.Now()
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tUPDATED")
			for _, v := range vs {
				fmt.Fprintf(tw, "%s\t%s\n", v.Name, age(v.UpdatedAt, now))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(newEnvSetCmd(g), newEnvRmCmd(g))
	return cmd
}

func newEnvSetCmd(g *globals) *cobra.Command {
	var valueFile string
	cmd := &cobra.Command{
		Use:   "set PROJECT KEY [--value-file FILE]",
		Short: "Create or replace a runtime environment variable; the value is read from stdin or a file",
		Long: `Create or replace a variable of a project's runtime environment. The value is
read from standard input (typed without echo when it is a terminal) or from
--value-file, never from the command line; one trailing newline is dropped.
A value is one line of text (up to 64 KiB). The app gets it from its next
start: its next deployment (or rollback), or its next wake from stopped.`,
		Example: `  printf %s "$DATABASE_URL" | slipway env set web DATABASE_URL
  slipway env set web API_KEY --value-file ./api-key`,
		Args: exactArgs("PROJECT", "KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			project, name := args[0], args[1]
			if err := slipway.ValidateEnvName(name); err != nil {
				return usageError{fmt.Errorf("%s", slipway.ErrorMessage(err))}
			}
			// No --value flag: secretValue reads stdin or the file.
			v, err := secretValue(cmd, name, "", valueFile)
			if err != nil {
				return err
			}
			if err := slipway.ValidateEnv(name, v); err != nil {
				return err
			}
			if _, err := g.client().SetEnv(cmd.Context(), project, name, v); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Environment variable %s of %s set; the app gets it from its next start (deploy it again to apply it now: slipway deploy %s).\n", name, project, project)
			return nil
		},
	}
	cmd.Flags().StringVar(&valueFile, "value-file", "", "read the value from this file (- for stdin)")
	return cmd
}

func newEnvRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm PROJECT KEY",
		Short: "Remove a runtime environment variable",
		Args:  exactArgs("PROJECT", "KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := g.client().DeleteEnv(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Environment variable %s of %s removed; the app loses it at its next start.\n", v.Name, args[0])
			return nil
		},
	}
}
