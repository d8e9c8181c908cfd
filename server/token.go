package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/slipway-ci/slipway"
)

// AdminTokenFile is the file in the data directory that holds the admin
// API token (mode 0600): the CLI on the server's machine reads it, and
// people paste it into the web UI's sign-in.
const AdminTokenFile = "admin-token"

// ensureAdminToken makes sure the file at path holds an API token that
// tokens knows. On the first start it creates a token named "admin" and
// writes the file; when the file exists but the store does not know its
// token (a new database), the token is registered again. created reports
// whether a new token was made.
func ensureAdminToken(ctx context.Context, tokens slipway.TokenStore, path string) (created bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return false, err
	}
	if token := strings.TrimSpace(string(b)); token != "" {
		hash := slipway.HashToken(token)
		_, err := tokens.TokenByHash(ctx, hash)
		if slipway.ErrorCode(err) != slipway.ENOTFOUND {
			return false, err
		}
		id, err := slipway.NewTokenID()
		if err != nil {
			return false, err
		}
		return false, tokens.CreateToken(ctx, &slipway.APIToken{ID: id, Name: "admin"}, hash)
	}
	token, _, err := slipway.IssueToken(ctx, tokens, "admin")
	if err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".admin-token-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, err
	}
	if _, err := fmt.Fprintln(tmp, token); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}
