package server

import (
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/credential"
)

// agentCredentials issues the credentials of project's machine at its
// wake (process.Config.Credentials): one per internal service, each good
// only for that project and that service, for credential.DefaultAgentTTL.
// An external registry gets none of ours (the builder's own logins apply).
func (p *parts) agentCredentials(project string) (builder.AgentCredentials, error) {
	var c builder.AgentCredentials
	kinds := []struct {
		kind credential.Kind
		to   *string
	}{{credential.NATS, &c.NATS}, {credential.Temporal, &c.Temporal}}
	if p.cfg.Registry == "" {
		kinds = append(kinds, struct {
			kind credential.Kind
			to   *string
		}{credential.Registry, &c.Registry})
	}
	for _, k := range kinds {
		tok, err := p.creds.Agent(k.kind, project, 0)
		if err != nil {
			return builder.AgentCredentials{}, err
		}
		*k.to = tok
	}
	return c, nil
}
