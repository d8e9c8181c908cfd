package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/slipway-ci/slipway"
)

func newSecretCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Set and remove a project's build secrets",
		Long: `Build secrets reach a Dockerfile's RUN steps as files, never as build
arguments: RUN --mount=type=secret,id=NAME reads /run/secrets/NAME. They are
in no image layer, masked in every log (also base64- and URL-encoded), and
kept encrypted by the server. Their values cannot be read back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{fmt.Errorf("%s needs a subcommand: set or rm", cmd.CommandPath())}
		},
	}
	cmd.AddCommand(newSecretSetCmd(g), newSecretRmCmd(g))
	return cmd
}

func newSecretSetCmd(g *globals) *cobra.Command {
	var valueFile, value string
	cmd := &cobra.Command{
		Use:   "set PROJECT NAME [--value-file FILE]",
		Short: "Create or replace a build secret; the value is read from stdin or a file",
		Long: `Create or replace a project's build secret. The value is read from standard
input (typed without echo when it is a terminal) or from --value-file; one
trailing newline is dropped. --value also works, but puts the value in your
shell history and the process list.`,
		Example: `  printf %s "$NPM_TOKEN" | slipway secret set web npm_token
  slipway secret set web npm_token --value-file ~/.npm-token`,
		Args: exactArgs("PROJECT", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			project, name := args[0], args[1]
			if err := slipway.ValidateSecretName(name); err != nil {
				return err
			}
			v, err := secretValue(cmd, name, value, valueFile)
			if err != nil {
				return err
			}
			if err := slipway.ValidateSecretValue(name, v); err != nil {
				return err
			}
			s, err := g.client().SetSecret(cmd.Context(), project, name, v)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Secret %s of %s set. A Dockerfile reads it with RUN --mount=type=secret,id=%s (at /run/secrets/%s).\n", s.Name, project, s.Name, s.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&valueFile, "value-file", "", "read the value from this file (- for stdin)")
	cmd.Flags().StringVar(&value, "value", "", "the value itself (lands in shell history: prefer stdin or --value-file)")
	return cmd
}

// secretValue reads a secret's value from --value, --value-file or stdin.
func secretValue(cmd *cobra.Command, name, value, file string) ([]byte, error) {
	switch {
	case cmd.Flags().Changed("value") && file != "":
		return nil, usageError{fmt.Errorf("give the value with --value or --value-file, not both")}
	case cmd.Flags().Changed("value"):
		fmt.Fprintln(cmd.ErrOrStderr(), "warning: --value puts the secret in your shell history and the process list; prefer stdin or --value-file")
		return []byte(value), nil
	case file != "" && file != "-":
		b, err := readLimited(file, nil)
		return trimNewline(b), err
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(cmd.ErrOrStderr(), "Value of %s (not echoed): ", name)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return nil, fmt.Errorf("read the value: %w", err)
		}
		return b, nil
	}
	b, err := readLimited("standard input", in)
	return trimNewline(b), err
}

// readLimited reads a value of at most slipway.MaxSecretBytes (and one
// newline) from r, or from the file named when r is nil.
func readLimited(name string, r io.Reader) ([]byte, error) {
	if r == nil {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read the value: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, slipway.MaxSecretBytes+3))
	if err != nil {
		return nil, fmt.Errorf("read the value from %s: %w", name, err)
	}
	return b, nil
}

// trimNewline drops one trailing newline, as echo and editors add one.
func trimNewline(b []byte) []byte {
	if c, ok := bytes.CutSuffix(b, []byte("\n")); ok {
		b, _ = bytes.CutSuffix(c, []byte("\r"))
	}
	return b
}

func newSecretRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm PROJECT NAME",
		Short: "Remove a build secret",
		Args:  exactArgs("PROJECT", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.client().DeleteSecret(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Secret %s of %s removed.\n", s.Name, args[0])
			return nil
		},
	}
}

func newSecretsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "secrets PROJECT",
		Short: "List a project's build secrets (names and when they were set, never values)",
		Args:  exactArgs("PROJECT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ss, err := g.client().Secrets(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if ss == nil {
					ss = []*slipway.Secret{}
				}
				return writeJSON(w, ss)
			}
			if len(ss) == 0 {
				fmt.Fprintf(w, "Project %s has no build secrets: add one with 'slipway secret set %s NAME'.\n", args[0], args[0])
				return nil
			}
			now := time.Now()
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tUPDATED")
			for _, s := range ss {
				fmt.Fprintf(tw, "%s\t%s\n", s.Name, age(s.UpdatedAt, now))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
