package natsserver

import (
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/buildsecrets"
	"github.com/slipway-ci/slipway/credential"
	"github.com/slipway-ci/slipway/events"
	"github.com/slipway-ci/slipway/natslog"
)

// AgentPermissions is what the connections of project's agent may do on
// the embedded NATS, and nothing else (no $JS.API, no other project's
// subjects, no other inbox):
//
//   - publish the project's log lines (natslog.Subject(project, *)), with
//     the stream's acks coming back on its inbox; the deployment is not
//     pinned, because lines a publisher left in its spool are sent by the
//     next wake's publisher, which may build another deployment of the
//     project;
//   - ask the server for the last line of one of the project's
//     deployments (natslog.LastLineSubject);
//   - announce the progress of the project's deployments (events.Subject);
//   - ask for the project's build secrets (buildsecrets.Subject), which
//     the server still gives only for a building deployment of the project
//     with its build token;
//   - receive replies on its own inbox prefix (builder.NATSInboxPrefix).
func AgentPermissions(project string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			natslog.Subject(project, "*"),
			natslog.LastLineSubject(project, "*"),
			events.Subject(project, "*"),
			buildsecrets.Subject(project),
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			builder.NATSInboxPrefix(project) + ".>",
		}},
	}
}

// authenticator checks every client's credential (server.Authentication).
type authenticator struct {
	creds *credential.Issuer
	log   *slog.Logger
}

// Check accepts a client whose token (or password, with any user name) is
// a valid credential.NATS: the server's own with every permission, an
// agent's with AgentPermissions of its project until the credential
// expires, when the server closes the connection.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	tok := o.Token
	if tok == "" {
		tok = o.Password
	}
	claims, err := a.creds.Verify(credential.NATS, tok)
	if err == nil && !claims.Server() && !natslog.ValidToken(claims.Project) {
		err = credential.ErrInvalid
	}
	if err != nil {
		if a.log != nil {
			a.log.Warn("nats: client refused", "remote", c.RemoteAddress().String(), "name", o.Name, "reason", err)
		}
		return false
	}
	if claims.Server() {
		c.RegisterUser(&server.User{Username: "slipway-server"})
		return true
	}
	u := &server.User{Username: "agent-" + claims.Project, Permissions: AgentPermissions(claims.Project)}
	if claims.Expires != 0 {
		u.ConnectionDeadline = time.Unix(claims.Expires, 0)
	}
	c.RegisterUser(u)
	return true
}
