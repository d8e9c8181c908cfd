package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/slipway-ci/slipway/graphql"
)

// wsDial opens a graphql-transport-ws connection to s's API with token in
// connection_init and waits for the acknowledgement.
func (s *serverProc) wsDial(ctx context.Context, token string) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, "ws://"+s.Host+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return nil, err
	}
	if err := wsjson.Write(ctx, c, map[string]any{"type": "connection_init", "payload": map[string]any{"token": token}}); err != nil {
		c.CloseNow()
		return nil, err
	}
	var m struct{ Type string }
	if err := wsjson.Read(ctx, c, &m); err != nil {
		c.CloseNow()
		return nil, err
	}
	if m.Type != "connection_ack" {
		c.CloseNow()
		return nil, fmt.Errorf("got %q, want connection_ack", m.Type)
	}
	return c, nil
}

// wsQuery runs query on c and returns the raw payload of its answer.
func wsQuery(ctx context.Context, c *websocket.Conn, id, query string) (string, error) {
	if err := wsjson.Write(ctx, c, map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query}}); err != nil {
		return "", err
	}
	for {
		var m struct {
			ID, Type string
			Payload  json.RawMessage
		}
		if err := wsjson.Read(ctx, c, &m); err != nil {
			return "", err
		}
		if m.ID == id && (m.Type == "next" || m.Type == "error") {
			return string(m.Payload), nil
		}
	}
}

// TestAttackAPI attacks the API's WebSocket and query limits from the
// outside, with real tokens on a real server: a revoked token's open
// socket is closed at once and runs nothing more; a query past the
// complexity limit is refused before it runs.
func TestAttackAPI(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	t.Run("revoked token on an open socket", func(t *testing.T) { attackRevokedSocket(t, s) })
	t.Run("query past the complexity limit", func(t *testing.T) { attackComplexity(t, s) })
}

func attackRevokedSocket(t *testing.T, s *serverProc) {
	out, code := s.cli(t, "token", "create", "--name", "leaked", "--json")
	var tok struct{ Token, ID string }
	if err := json.Unmarshal([]byte(out), &tok); code != 0 || err != nil || tok.Token == "" {
		t.Fatalf("token create: %d %v\n%s", code, err, out)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := s.wsDial(ctx, tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if ans, err := wsQuery(ctx, c, "before", `{ tokens { id } }`); err != nil || !strings.Contains(ans, tok.ID) {
		t.Fatalf("the socket does not work before the revocation: %v %s", err, ans)
	}
	// The socket's reader: it reports when the server closes it.
	closed := make(chan time.Time, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		for {
			var m json.RawMessage
			if err := wsjson.Read(readCtx, c, &m); err != nil {
				closed <- time.Now()
				return
			}
		}
	}()
	// Measured from before the CLI starts: revoking takes a process and a
	// request too.
	revoked := time.Now()
	if out, code := s.cli(t, "token", "revoke", tok.ID); code != 0 {
		t.Fatalf("token revoke: %d %s", code, out)
	}
	var took time.Duration
	select {
	case at := <-closed:
		took = at.Sub(revoked)
	case <-time.After(time.Second):
		took = time.Since(revoked)
	}
	// The attacker keeps using the socket, then dials again with the token.
	writeErr := wsjson.Write(ctx, c, map[string]any{"id": "after", "type": "subscribe", "payload": map[string]any{"query": `{ tokens { id } }`}})
	_, redialErr := s.wsDial(ctx, tok.Token)
	blocked := took <= time.Second && writeErr != nil && websocket.CloseStatus(redialErr) == 4403
	attack(t, "API: reuse a revoked token on an open WebSocket", attackResult{Blocked: blocked,
		Detail: fmt.Sprintf("socket closed %v after the revocation (limit 1s); an operation after it: %v; a new socket with the token: %v", took.Round(time.Millisecond), writeErr, redialErr)})
}

func attackComplexity(t *testing.T, s *serverProc) {
	var q strings.Builder
	q.WriteString("{")
	for i := range graphql.MaxComplexity {
		fmt.Fprintf(&q, " a%d: tokens { id name createdAt }", i)
	}
	q.WriteString(" }")
	a := s.graphql(t, q.String(), nil)
	code := ""
	if len(a.Errors) > 0 {
		code, _ = a.Errors[0].Extensions["code"].(string)
	}
	blocked := code == "COMPLEXITY_LIMIT_EXCEEDED" && (len(a.Data) == 0 || string(a.Data) == "null")
	attack(t, "API: a query past the complexity limit", attackResult{Blocked: blocked,
		Detail: fmt.Sprintf("HTTP %d, code %q: %.200s", a.Status, code, a.Raw)})
	// The server still answers ordinary queries.
	if ok := s.graphql(t, `{ tokens { id } }`, nil); ok.Status != http.StatusOK || len(ok.Errors) > 0 {
		t.Errorf("after the attack: %s", ok.Raw)
	}
}
