package server

import (
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
)

// agentCredentials issues the credentials of project's machine at its
// wake (process.Config.Credentials): one per internal service, each good
// only for that project and that service, for credential.DefaultAgentTTL.
// An external registry gets none of ours: the agent gets the login of
// --registry-auth-file, if any (externalRegistryLogin).
func (p *parts) agentCredentials(project string) (builder.AgentCredentials, error) {
	var c builder.AgentCredentials
	for _, k := range []struct {
		kind credential.Kind
		to   *string
	}{{credential.NATS, &c.NATS}, {credential.Temporal, &c.Temporal}, {credential.Registry, &c.Registry}} {
		tok, err := p.creds.Agent(k.kind, project, 0)
		if err != nil {
			return builder.AgentCredentials{}, err
		}
		*k.to = tok
	}
	if p.cfg.Registry != "" {
		var err error
		if c.RegistryUser, c.Registry, err = externalRegistryLogin(p.cfg); err != nil {
			return builder.AgentCredentials{}, err
		}
	}
	return c, nil
}
