package graphql

import (
	"context"
	"sync"

	gqlgraphql "github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/slipway-ci/slipway"
)

// DefaultMaxSubscriptions is how many subscriptions one API token may run
// at once, over all its WebSocket connections (Config.MaxSubscriptions).
// The web UI runs a few per open page; a client that opens more is refused
// with extensions.code "too_many" rather than holding server resources
// without bound.
const DefaultMaxSubscriptions = 100

// msgRevoked is what an operation on a WebSocket whose token was revoked
// gets (the connection itself is closed at once).
const msgRevoked = "the API token of this connection was revoked: reconnect with a valid token. " + howToGetToken

// sockets tracks the open WebSocket connections by the token that
// authenticated them, so that revoking a token closes them at once, and
// counts each token's running subscriptions. Safe for concurrent use.
type sockets struct {
	max   int
	mu    sync.Mutex
	conns map[string]map[*socket]struct{} // by token id
	subs  map[string]int                  // running subscriptions by token id
}

// socket is one authenticated WebSocket connection.
type socket struct {
	token string // the token's id
	hash  string // the token's hash, to check it again
	close context.CancelFunc
}

type socketKey struct{}

func newSockets(max int) *sockets {
	return &sockets{max: max, conns: map[string]map[*socket]struct{}{}, subs: map[string]int{}}
}

// open registers a connection authenticated by token t (whose hash is
// hash) and returns its context: cancelling it closes the socket (gqlgen
// closes a connection whose init context ends). The registration ends
// with ctx.
func (s *sockets) open(ctx context.Context, t *slipway.APIToken, hash string) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	sock := &socket{token: t.ID, hash: hash, close: cancel}
	s.mu.Lock()
	if s.conns[t.ID] == nil {
		s.conns[t.ID] = map[*socket]struct{}{}
	}
	s.conns[t.ID][sock] = struct{}{}
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.conns[t.ID], sock)
		if len(s.conns[t.ID]) == 0 {
			delete(s.conns, t.ID)
		}
	})
	return context.WithValue(ctx, socketKey{}, sock)
}

// revoke closes every connection of the token with id id. It is called
// once the token is deleted, so a connection opened meanwhile fails its
// next operation's check (checkOperation).
func (s *sockets) revoke(id string) {
	s.mu.Lock()
	var closes []context.CancelFunc
	for sock := range s.conns[id] {
		closes = append(closes, sock.close)
	}
	s.mu.Unlock()
	for _, c := range closes {
		c()
	}
}

// acquire takes one of the token's subscription slots, or reports false
// when it holds max already.
func (s *sockets) acquire(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs[id] >= s.max {
		return false
	}
	s.subs[id]++
	return true
}

func (s *sockets) release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs[id]--; s.subs[id] <= 0 {
		delete(s.subs, id)
	}
}

// closeAfter returns h, which calls closeSocket once h's response has been
// sent: gqlgen's WebSocket transport sends each response before it asks
// for the next, so the client reads the error before the close (closing
// earlier raced the error's write).
func closeAfter(h gqlgraphql.ResponseHandler, closeSocket context.CancelFunc) gqlgraphql.ResponseHandler {
	return func(ctx context.Context) *gqlgraphql.Response {
		if r := h(ctx); r != nil {
			return r
		}
		closeSocket()
		return nil
	}
}

// aroundOperations checks each operation on a WebSocket against the token
// store again (a connection outlives its token's revocation by no
// operation), and holds a subscription slot of the token for each running
// subscription.
func (s *sockets) aroundOperations(tokens slipway.TokenStore, present gqlgraphql.ErrorPresenterFunc) gqlgraphql.OperationMiddleware {
	errorResponse := func(ctx context.Context, err error) gqlgraphql.ResponseHandler {
		return gqlgraphql.OneShot(&gqlgraphql.Response{Errors: gqlerror.List{present(ctx, err)}})
	}
	return func(ctx context.Context, next gqlgraphql.OperationHandler) gqlgraphql.ResponseHandler {
		if sock, ok := ctx.Value(socketKey{}).(*socket); ok {
			if _, err := tokens.TokenByHash(ctx, sock.hash); err != nil {
				if slipway.ErrorCode(err) == slipway.ENOTFOUND {
					return closeAfter(errorResponse(ctx, slipway.Errorf(slipway.EUNAUTHORIZED, "%s", msgRevoked)), sock.close)
				}
				return errorResponse(ctx, err)
			}
		}
		t := tokenFrom(ctx)
		if t == nil || gqlgraphql.GetOperationContext(ctx).Operation.Operation != ast.Subscription {
			return next(ctx)
		}
		if !s.acquire(t.ID) {
			return errorResponse(ctx, slipway.Errorf(slipway.ETOOMANY,
				"this API token runs %d subscriptions already, the most one token may run at once: end some (close unused pages or clients) before starting more", s.max))
		}
		context.AfterFunc(ctx, func() { s.release(t.ID) })
		return next(ctx)
	}
}

// revokingTokens is a token store whose DeleteToken also closes the
// revoked token's open WebSocket connections.
type revokingTokens struct {
	slipway.TokenStore
	sockets *sockets
}

func (r revokingTokens) DeleteToken(ctx context.Context, id string) error {
	if err := r.TokenStore.DeleteToken(ctx, id); err != nil {
		return err
	}
	r.sockets.revoke(id)
	return nil
}
