// Package buildsecrets hands a project's build secrets to the agent that
// builds one of its deployments, at build time, over NATS request-reply
// (core NATS: nothing is stored on the way).
//
// Why not through Temporal: a workflow's input and every activity's result
// are kept in the workflow history, in clear, for as long as the history is
// retained, and readable by anyone who can reach the Temporal frontend. So
// the workflow carries only the secrets' names and a build token (a keyed
// hash of the deployment id, see slipway.SecretStore.BuildToken); the
// agent asks the server for the values with that token, and the server
// answers only while the deployment is building, only for the deployment's
// own project. The agent keeps the values in memory, hands them to podman
// in 0600 files it removes after the build, and to its log redactor.
//
// It must not log or return secret values anywhere but in the reply to a
// valid request.
package buildsecrets

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/slipway-ci/slipway"
)

// Subject is where the agent of project asks for its secrets.
func Subject(project string) string { return "slipway.secrets." + project }

// request is what the agent sends.
type request struct {
	Deployment string `json:"deployment"`
	Token      string `json:"token"`
}

// reply is what the server answers: the secrets, or why not.
type reply struct {
	Secrets []slipway.SecretValue `json:"secrets"`
	Error   string                `json:"error,omitempty"`
}

// ServerConfig configures Serve.
type ServerConfig struct {
	// URL is the NATS server. Required.
	URL string
	// Options are added to the connection's own: how it authenticates
	// (nats.Token with the server's credential, nats.UserCredentials).
	Options []nats.Option
	// Store finds deployments; Secrets reads the values and checks tokens.
	Store   slipway.Store
	Secrets slipway.SecretStore
	// Logger gets refused requests (never values); default slog.Default().
	Logger *slog.Logger
}

// Server answers the agents' requests until Close.
type Server struct {
	nc *nats.Conn
}

// Serve starts answering requests for secrets.
func Serve(cfg ServerConfig) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	nc, err := nats.Connect(cfg.URL, append([]nats.Option{nats.Name("slipway-build-secrets"), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond)}, cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("build secrets: connect to NATS at %s: %w", cfg.URL, err)
	}
	// A queue group: with several servers, one answers.
	_, err = nc.QueueSubscribe(Subject("*"), "slipway-build-secrets", func(m *nats.Msg) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		project := strings.TrimPrefix(m.Subject, Subject(""))
		var req request
		var rep reply
		if err := json.Unmarshal(m.Data, &req); err != nil {
			rep.Error = "bad request"
		} else if rep.Secrets, err = answer(ctx, cfg, project, req); err != nil {
			cfg.Logger.Warn("build secrets refused", "project", project, "deployment", req.Deployment, "reason", err)
			rep = reply{Error: slipway.ErrorMessage(err)}
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("build secrets: subscribe: %w", err)
	}
	if err := nc.Flush(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("build secrets: subscribe: %w", err)
	}
	return &Server{nc: nc}, nil
}

// answer checks a request and returns the project's secrets.
func answer(ctx context.Context, cfg ServerConfig, project string, req request) ([]slipway.SecretValue, error) {
	want, err := cfg.Secrets.BuildToken(req.Deployment)
	if err != nil {
		return nil, err
	}
	if req.Deployment == "" || subtle.ConstantTimeCompare([]byte(want), []byte(req.Token)) != 1 {
		return nil, slipway.Errorf(slipway.EUNAUTHORIZED, "wrong build token for deployment %q", req.Deployment)
	}
	d, err := cfg.Store.Deployment(ctx, req.Deployment)
	if err != nil {
		return nil, err
	}
	if d.Project != project {
		return nil, slipway.Errorf(slipway.EUNAUTHORIZED, "deployment %s is not one of %s's", d.ID, project)
	}
	if d.Status != slipway.StatusBuilding {
		return nil, slipway.Errorf(slipway.ECONFLICT, "deployment %s is %s, not building", d.ID, d.Status)
	}
	vals, err := cfg.Secrets.SecretValues(ctx, project)
	if err != nil {
		return nil, err
	}
	if vals == nil {
		vals = []slipway.SecretValue{}
	}
	return vals, nil
}

// Close stops answering. It is safe to call twice.
func (s *Server) Close() {
	if s != nil && s.nc != nil {
		s.nc.Close()
	}
}

// ErrRefused is a request the server refused (wrong token, a deployment
// no longer building): retrying cannot help.
var ErrRefused = errors.New("build secrets refused")

// Fetch asks the server at NATS url for the secrets of project's
// deployment; opts are added to the connection's options (the agent's
// credential, nats.Token, and its inbox prefix, nats.CustomInboxPrefix,
// where the answer arrives). A refusal wraps ErrRefused; other errors (no
// server answering, NATS unreachable) may pass on a retry.
func Fetch(ctx context.Context, url, project, deployment, token string, opts ...nats.Option) ([]slipway.SecretValue, error) {
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name("slipway-agent-secrets")}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("build secrets: connect to NATS at %s: %w", url, err)
	}
	defer nc.Close()
	b, _ := json.Marshal(request{Deployment: deployment, Token: token})
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(rctx, Subject(project), b)
	if err != nil {
		return nil, fmt.Errorf("build secrets: ask the server: %w", err)
	}
	var rep reply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return nil, fmt.Errorf("build secrets: bad answer: %w", err)
	}
	if rep.Error != "" {
		return nil, fmt.Errorf("%w: %s", ErrRefused, rep.Error)
	}
	return rep.Secrets, nil
}
