package buildah

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/slipway-ci/slipway/internal/atomicfile"
)

// authFile is a containers-auth.json file: what `podman login` writes,
// and what the engine reads from REGISTRY_AUTH_FILE (Config.AuthFile).
type authFile struct {
	Auths map[string]authEntry `json:"auths"`
}

type authEntry struct {
	// Auth is base64 of "user:password".
	Auth string `json:"auth"`
}

// WriteAuthFile writes the auth file path (mode 0600, owned by the
// caller) that logs in to the registry host (host[:port]) as user with
// password: the Config.AuthFile of a Builder that pushes and pulls with a
// credential, which then is never in argv or the environment.
func WriteAuthFile(path, host, user, password string) error {
	f := authFile{Auths: map[string]authEntry{
		host: {Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return fmt.Errorf("write the registry auth file: %w", err)
	}
	return nil
}

// AuthFileLogin returns the login for the registry host in the auth file
// path; ok is false when the file does not exist or has no entry for host.
func AuthFileLogin(path, host string) (user, password string, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", false, nil
	} else if err != nil {
		return "", "", false, fmt.Errorf("registry auth file: %w", err)
	}
	var f authFile
	if err := json.Unmarshal(b, &f); err != nil {
		return "", "", false, fmt.Errorf("registry auth file %s: %w", path, err)
	}
	e, ok := f.Auths[host]
	if !ok {
		return "", "", false, nil
	}
	dec, err := base64.StdEncoding.DecodeString(e.Auth)
	if err != nil {
		return "", "", false, fmt.Errorf("registry auth file %s: entry of %s: %w", path, host, err)
	}
	user, password, _ = strings.Cut(string(dec), ":")
	return user, password, true, nil
}
