package agent

import (
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
)

// registryUser is the user name the agent logs in to the registry with;
// the registry only looks at the password (the credential).
const registryUser = "slipway-agent"

// authFileKeychain resolves credentials from the containers-auth.json
// file at its path, the one buildah is given (buildah.Config.AuthFile);
// "", a missing file or no entry for the registry: anonymous, so the
// next keychain is asked.
type authFileKeychain string

func (k authFileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if k == "" {
		return authn.Anonymous, nil
	}
	user, pass, ok, err := buildah.AuthFileLogin(string(k), target.RegistryStr())
	if err != nil || !ok {
		return authn.Anonymous, err
	}
	return authn.FromConfig(authn.AuthConfig{Username: user, Password: pass}), nil
}

// registryAuth writes the registry login of cfg (the wake's credential
// for the embedded registry, or the server's login to an external one) to
// the volume's auth file and returns its path, or "" when the agent has
// none.
func registryAuth(cfg builder.AgentConfig, layout builder.Layout) (string, error) {
	if cfg.Credentials.Registry == "" || cfg.Registry == "" {
		return "", nil
	}
	user := cfg.Credentials.RegistryUser
	if user == "" {
		user = registryUser
	}
	if err := buildah.WriteAuthFile(layout.RegistryAuth, cfg.Registry, user, cfg.Credentials.Registry); err != nil {
		return "", err
	}
	return layout.RegistryAuth, nil
}

// registry is how the activities reach registries: the server's TLS
// setting and the auth file buildah has.
func (a *Activities) registry() registryAccess {
	return registryAccess{tlsVerify: a.cfg.RegistryTLSVerify, authFile: a.builder.Config().AuthFile}
}
