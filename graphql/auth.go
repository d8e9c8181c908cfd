package graphql

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/slipway-ci/slipway"
)

// What a client is told when its request carries no usable token. The
// messages say how to get one, since that is the only thing to do about it.
const (
	howToGetToken = "Create a token with 'slipway token create', or use the admin token the server wrote to DATA-DIR/admin-token."
	msgNoToken    = "an API token is required: send it as 'Authorization: Bearer TOKEN'. " + howToGetToken
	msgBadScheme  = "the Authorization header must be 'Bearer TOKEN'. " + howToGetToken
	msgBadToken   = "invalid API token: it is unknown or was revoked. " + howToGetToken
	// msgRegistryToken answers a token made with --scope: it is for the
	// registry only.
	msgRegistryToken = "this is a registry token (made with --scope): it works for the registry only, not the API. " + howToGetToken
	// wsForbidden is the WebSocket close reason (at most 123 bytes).
	wsForbidden = "Forbidden: a valid API token is required (slipway token create)"
	// wsCloseForbidden is graphql-transport-ws' close code for a refused
	// connection_init.
	wsCloseForbidden = 4403
	// touchEvery is how often a token's last use is recorded.
	touchEvery = time.Minute
)

type (
	tokenKey     struct{}
	tokenHashKey struct{}
)

// tokenFrom returns the token that authenticated the request, or nil.
func tokenFrom(ctx context.Context) *slipway.APIToken {
	t, _ := ctx.Value(tokenKey{}).(*slipway.APIToken)
	return t
}

// authenticator checks API tokens against the token store.
type authenticator struct {
	tokens  slipway.TokenStore
	sockets *sockets // the open WebSocket connections
	log     *slog.Logger
}

// check returns the token record for an Authorization value ("Bearer
// TOKEN"), or an EUNAUTHORIZED error saying what is wrong.
func (a *authenticator) check(ctx context.Context, authorization string) (*slipway.APIToken, error) {
	t, _, err := a.checkHash(ctx, authorization)
	return t, err
}

// checkHash is check that also returns the token's hash.
func (a *authenticator) checkHash(ctx context.Context, authorization string) (*slipway.APIToken, string, error) {
	authorization = strings.TrimSpace(authorization)
	if authorization == "" {
		return nil, "", slipway.Errorf(slipway.EUNAUTHORIZED, "%s", msgNoToken)
	}
	scheme, token, ok := strings.Cut(authorization, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, "", slipway.Errorf(slipway.EUNAUTHORIZED, "%s", msgBadScheme)
	}
	if a.tokens == nil {
		a.log.ErrorContext(ctx, "graphql: no token store configured: refusing every request")
		return nil, "", slipway.Errorf(slipway.EUNAUTHORIZED, "%s", msgBadToken)
	}
	hash := slipway.HashToken(token)
	t, err := a.tokens.TokenByHash(ctx, hash)
	if slipway.ErrorCode(err) == slipway.ENOTFOUND {
		return nil, "", slipway.Errorf(slipway.EUNAUTHORIZED, "%s", msgBadToken)
	} else if err != nil {
		a.log.ErrorContext(ctx, "graphql: look up API token", "err", err)
		return nil, "", slipway.Errorf(slipway.EINTERNAL, "internal error")
	}
	if len(t.Scopes) > 0 {
		return nil, "", slipway.Errorf(slipway.EUNAUTHORIZED, "%s", msgRegistryToken)
	}
	if now := time.Now().UTC(); t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) >= touchEvery {
		if err := a.tokens.TouchToken(ctx, t.ID, now); err != nil {
			a.log.WarnContext(ctx, "graphql: record API token use", "token", t.ID, "err", err)
		}
	}
	return t, hash, nil
}

// middleware refuses requests without a valid token with 401 and a
// GraphQL-shaped error. A WebSocket upgrade without an Authorization
// header passes: browsers cannot set one, so the token comes in the
// connection_init payload instead (see wsInit).
func (a *authenticator) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authorization := r.Header.Get("Authorization")
		if authorization == "" && isWebSocketUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		t, hash, err := a.checkHash(r.Context(), authorization)
		if err != nil {
			status := slipway.HTTPStatus(err)
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="slipway"`)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
				"message":    slipway.ErrorMessage(err),
				"extensions": map[string]string{"code": slipway.ErrorCode(err)},
			}}})
			return
		}
		ctx := context.WithValue(r.Context(), tokenKey{}, t)
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, tokenHashKey{}, hash)))
	})
}

// wsInit authenticates a WebSocket connection that the upgrade request did
// not: its connection_init payload must carry {"Authorization": "Bearer
// TOKEN"} (or {"token": "TOKEN"}). A refused connection is closed with
// 4403, as graphql-transport-ws prescribes. Either way the connection is
// registered with its token, so that revoking the token closes it.
func (a *authenticator) wsInit(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	if t := tokenFrom(ctx); t != nil {
		hash, _ := ctx.Value(tokenHashKey{}).(string)
		return a.register(ctx, t, hash)
	}
	authorization := payload.Authorization()
	if authorization == "" {
		if tok := payload.GetString("token"); tok != "" {
			authorization = "Bearer " + tok
		}
	}
	t, hash, err := a.checkHash(ctx, authorization)
	if err != nil {
		ctx = transport.WithWebsocketCloseCode(ctx, wsCloseForbidden)
		return transport.AppendCloseReason(ctx, wsForbidden), nil, err
	}
	return a.register(context.WithValue(ctx, tokenKey{}, t), t, hash)
}

// register registers a connection authenticated by t, then checks that t
// was not revoked before that (its revocation would have missed the
// connection).
func (a *authenticator) register(ctx context.Context, t *slipway.APIToken, hash string) (context.Context, *transport.InitPayload, error) {
	ctx = a.sockets.open(ctx, t, hash)
	if _, err := a.tokens.TokenByHash(ctx, hash); err != nil {
		ctx = transport.WithWebsocketCloseCode(ctx, wsCloseForbidden)
		return transport.AppendCloseReason(ctx, wsForbidden), nil, slipway.Errorf(slipway.EUNAUTHORIZED, "%s", msgBadToken)
	}
	return ctx, nil, nil
}

func isWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}
