package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/slipway-ci/slipway"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create and revoke API tokens",
		Long: `API tokens give access to the server's API (the CLI, the web UI, scripts).
On its first start the server creates an admin token and writes it to
DATA-DIR/admin-token; run on the server's machine, the CLI uses it when no
other token is given.

Registry tokens (create --scope) are for the embedded registry only: the
password of podman login or docker login, with any user name.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageError{fmt.Errorf("%s needs a subcommand: create, list or revoke", cmd.CommandPath())}
		},
	}
	// `token list` is `tokens`, where a reader of `token --help` looks.
	list := newTokensCmd(g)
	list.Use = "list"
	cmd.AddCommand(newTokenCreateCmd(g), newTokenRevokeCmd(g), list)
	return cmd
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var (
		name   string
		scopes []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "create [--name NAME] [--scope push:REPO|pull:REPO]...",
		Short: "Create an API token and print it (it is shown only once)",
		Long: `Create an API token and print it. The server keeps only its hash, so the
token is shown only now: store it where its user will find it, e.g. in
SLIPWAY_TOKEN, or paste it into the web UI's sign-in form.

With --scope it is a registry token instead: it works only for the
embedded registry (/v2/), as the password of podman login or docker login
with any user name, and only for what its scopes allow: push:REPO (push
and pull) or pull:REPO, REPO a repository or a pattern in which * matches
anything, e.g.

  slipway token create --name base-images --scope push:base/*
  podman login --username any 127.0.0.1:8080   # the token as the password
  podman push 127.0.0.1:8080/base/debian:12

A token without --scope (an API token) may also push and pull every
repository; only the server itself deletes images.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			token, t, err := g.client().CreateToken(cmd.Context(), name, scopes...)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, struct {
					Token string `json:"token"`
					*slipway.APIToken
				}{token, t})
			}
			fmt.Fprintln(w, token)
			if len(t.Scopes) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "Registry token %s (%s) created for %s. It is not shown again; use it as the password of podman login or docker login (any user name).\n", t.ID, displayName(t.Name), scopeList(t.Scopes))
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Token %s (%s) created. It is not shown again; use it with --token, SLIPWAY_TOKEN, or the web UI's sign-in.\n", t.ID, displayName(t.Name))
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "what the token is for, e.g. ci")
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "make a registry token that may push:REPO (and pull) or pull:REPO; REPO may be a pattern such as base/* (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the token with its record)")
	return cmd
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token (see 'slipway tokens' for the ids)",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := g.client().RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Token %s (%s) revoked.\n", t.ID, displayName(t.Name))
			return nil
		},
	}
}

func newTokensCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "List API tokens and registry tokens with their scopes (never the tokens themselves)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := g.client().Tokens(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if ts == nil {
					ts = []*slipway.APIToken{}
				}
				return writeJSON(w, ts)
			}
			now := time.Now()
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCREATED\tLAST USED\tSCOPES")
			for _, t := range ts {
				used := "never"
				if t.LastUsedAt != nil {
					used = age(*t.LastUsedAt, now)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, displayName(t.Name), age(t.CreatedAt, now), used, scopeList(t.Scopes))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// scopeList is a token's scopes as the SCOPES column shows them: "api"
// for an API token.
func scopeList(scopes []slipway.TokenScope) string {
	if len(scopes) == 0 {
		return "api"
	}
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = sc.String()
	}
	return strings.Join(s, " ")
}

func displayName(name string) string {
	if name == "" {
		return "unnamed"
	}
	return name
}
