package server

import (
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
)

// agentCredentials issues the credentials of project's machine at its
// wake (process.Config.Credentials): one per internal service, each good
// only for that project and that service, for credential.DefaultAgentTTL;
// with an external Temporal, its API key and TLS instead; with an external
// NATS, the operator's agents' credentials (Config.NATSAgentCreds); with
// an external registry, the login of --registry-auth-file, if any
// (externalRegistryLogin); and the payload codec's key.
func (p *parts) agentCredentials(project string) (builder.AgentCredentials, error) {
	var c builder.AgentCredentials
	for _, k := range []struct {
		kind credential.Kind
		to   *string
	}{{credential.NATS, &c.NATS}, {credential.Registry, &c.Registry}} {
		tok, err := p.creds.Agent(k.kind, project, 0)
		if err != nil {
			return builder.AgentCredentials{}, err
		}
		*k.to = tok
	}
	tok, err := p.temporalToken(project)
	if err != nil {
		return builder.AgentCredentials{}, err
	}
	c.Temporal, c.TemporalTLS, c.PayloadKey = tok, p.temporalTLS, p.payloadKey
	if p.cfg.NATSURL != "" {
		// An external NATS knows nothing of our credentials.
		c.NATS, c.NATSCreds = "", p.natsAgentCreds
	}
	if p.cfg.Registry != "" {
		if c.RegistryUser, c.Registry, err = externalRegistryLogin(p.cfg); err != nil {
			return builder.AgentCredentials{}, err
		}
	}
	return c, nil
}
