// Package graphql serves Slipway's GraphQL API (gqlgen): projects,
// deployments with their steps and stored (searchable) logs, builder
// machines, API tokens, the mutations, and subscriptions to a deployment's
// state and live log over WebSocket (graphql-transport-ws). Every request
// needs an API token; a WebSocket checks its token again at each
// operation, is closed as soon as its token is revoked (sockets.go), and
// a token runs at most MaxSubscriptions subscriptions at once. The web UI
// and the CLI are its clients.
//
// It is an adapter at the edge: it reads through slipway.Store, changes
// projects through the project service (deploy.Projects, which owns their
// rules), deploys through slipway.Deployer, and shows *slipway.Error codes
// as GraphQL error codes in one place (presentError; HTTP statuses are
// slipway.HTTPStatus's). It must not reach into other adapters (sqlite,
// temporal, ...) nor read flags or the environment.
package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	gqlgraphql "github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/graphql/internal/gen"
)

// maxRequestBytes caps a request body: queries and mutations are small.
const maxRequestBytes = 1 << 20

// MaxComplexity bounds an operation's complexity (gqlgen's count: one per
// selected field, aliases included). The CLI's and the web UI's largest
// operations stay far below it; a query that multiplies fields through
// aliases to make the server work is refused before it runs, with
// extensions.code COMPLEXITY_LIMIT_EXCEEDED.
const MaxComplexity = 1000

// Config holds what the API needs. Store and Deployer are required.
type Config struct {
	// Store is where projects, deployments and log lines are read and
	// projects are written.
	Store slipway.Store
	// Deployer starts deployments for the deploy mutation.
	Deployer slipway.Deployer
	// Machines, if set, re-checks machines whose record says their agent
	// runs before they are shown (Status corrects the record of an agent
	// that died). Without it machines are shown as stored.
	Machines slipway.MachineProvider
	// Tokens authenticates requests: each must carry a token it knows
	// ('Authorization: Bearer TOKEN'), and the token mutations write it;
	// revoking a token through them closes its open WebSockets at once.
	// Required: without it every request is refused.
	Tokens slipway.TokenStore
	// Secrets, if set, keeps the projects' build secrets (setSecret,
	// deleteSecret, Project.secrets; values are write-only). Without it
	// those fields answer with an error.
	Secrets slipway.SecretStore
	// MaxSubscriptions is how many subscriptions one API token may run at
	// once; default DefaultMaxSubscriptions.
	MaxSubscriptions int
	// Live, if set, follows deployments for the subscriptions (the log
	// stream and state announcements). Without it they poll the store.
	Live Live
	// PollInterval is how often subscriptions poll the store when Live
	// cannot tell them about a change; default 250ms.
	PollInterval time.Duration
	// PublicURL is the server's address as forges and clients reach it,
	// e.g. "http://127.0.0.1:8080"; a project's webhook URL is PublicURL +
	// "/webhooks/github".
	PublicURL string
	// AppURL returns the URL of a project's app, or "" when the server
	// serves no apps. Nil: no apps.
	AppURL func(project string) string
	// PreviewURL returns the URL of a pull request's preview of a project,
	// or "" when the server serves no apps. Nil: no apps.
	PreviewURL func(project string, number int) string
	// Previews, if set, lists the projects' previews (Project.previews);
	// without it the list is empty.
	Previews slipway.PreviewStore
	// Apps, if set, says what the projects' apps do (Project.appStatus)
	// and follows their output (the appLogs subscription). Nil: no apps.
	Apps Apps
	// AppLogs, if set, keeps the apps' output (the appLogs query).
	AppLogs slipway.AppLogStore
	// Logger receives internal errors and recovered panics (default:
	// slog.Default()).
	Logger *slog.Logger
	// Projects, if set, is the project service the mutations on projects
	// go through; default one on Store, Machines, Secrets and Logger.
	Projects *deploy.Projects
}

// withDefaults fills in the optional fields.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 250 * time.Millisecond
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.Projects == nil {
		c.Projects = deploy.NewProjects(deploy.ProjectsConfig{Store: c.Store, Machines: c.Machines, Secrets: c.Secrets, Logger: c.Logger})
	}
	return c
}

// NewHandler returns the GraphQL endpoint: JSON over POST (queries and
// mutations) and GET (queries only), and subscriptions over WebSocket. It
// answers on any path; the server mounts it at /graphql. A request without
// a valid API token gets 401 and an error saying how to get one.
func NewHandler(cfg Config) http.Handler {
	cfg = cfg.withDefaults()
	socks := newSockets(cfg.MaxSubscriptions)
	if cfg.Tokens != nil {
		// Revoking a token (the revokeToken mutation) closes its sockets.
		cfg.Tokens = revokingTokens{TokenStore: cfg.Tokens, sockets: socks}
	}
	auth := &authenticator{tokens: cfg.Tokens, sockets: socks, log: cfg.Logger}
	present := presentError(cfg.Logger)
	srv := handler.New(gen.NewExecutableSchema(gen.Config{Resolvers: &Resolver{cfg: cfg}}))
	srv.AddTransport(transport.Websocket{
		InitFunc:    auth.wsInit,
		InitTimeout: 10 * time.Second,
		// Keeps idle connections alive through proxies (pongs need no
		// answer in graphql-transport-ws; graphql-ws gets keep-alives).
		PongOnlyInterval:      15 * time.Second,
		KeepAlivePingInterval: 15 * time.Second,
	})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(extension.FixedComplexityLimit(MaxComplexity))
	srv.SetRecoverFunc(func(ctx context.Context, p any) error {
		cfg.Logger.ErrorContext(ctx, "graphql: panic in resolver",
			"panic", fmt.Sprint(p), "path", gqlgraphql.GetPath(ctx).String(), "stack", string(debug.Stack()))
		return fmt.Errorf("panic: %v", p)
	})
	srv.SetErrorPresenter(present)
	if cfg.Tokens != nil {
		srv.AroundOperations(socks.aroundOperations(cfg.Tokens, present))
	}
	return auth.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
		if r.Method == http.MethodPost {
			// Read the body here: gqlgen answers a body it cannot read (too
			// large, cut off) with 200.
			body, err := io.ReadAll(r.Body)
			if err != nil {
				if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
					writeRequestError(w, slipway.Errorf(slipway.ETOOLARGE, "request body is larger than %d bytes", maxRequestBytes))
				} else {
					writeRequestError(w, slipway.Errorf(slipway.EINVALID, "could not read the request body"))
				}
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		srv.ServeHTTP(w, r)
	}))
}

// writeRequestError answers a request the API could not read with err's
// status (slipway.HTTPStatus) and a GraphQL error response carrying its
// message.
func writeRequestError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(slipway.HTTPStatus(err))
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"message": slipway.ErrorMessage(err)}}, "data": nil})
}

// presentError is the one place application errors become GraphQL errors:
// a *slipway.Error keeps its message and gets its code in
// extensions.code; GraphQL's own errors (syntax, validation, argument
// coercion) pass through; anything else is logged and shown as "internal
// error".
func presentError(logger *slog.Logger) gqlgraphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := gqlgraphql.DefaultErrorPresenter(ctx, err)
		if _, ok := errors.AsType[*slipway.Error](err); !ok && gerr.Err == nil {
			return gerr
		}
		code := slipway.ErrorCode(err)
		if code == slipway.EINTERNAL {
			logger.ErrorContext(ctx, "graphql: internal error", "path", gerr.Path.String(), "err", err)
		}
		return &gqlerror.Error{
			Message:    slipway.ErrorMessage(err),
			Path:       gerr.Path,
			Locations:  gerr.Locations,
			Extensions: map[string]any{"code": code},
		}
	}
}
