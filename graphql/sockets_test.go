package graphql_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/graphql"
)

const deploymentUpdated = `subscription($id: ID!) { deploymentUpdated(id: $id) { id status } }`

// closedWithin reads w until its connection closes and returns how long
// that took, failing the test after within.
func closedWithin(t *testing.T, w *ws, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	for {
		var m wsMsg
		if err := wsjson.Read(ctx, w.c, &m); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the connection was still open %v later", within)
			}
			return time.Since(start)
		}
	}
}

// TestRevokeClosesWebSocket revokes the token of an open WebSocket that
// runs a subscription, through the API as 'slipway token revoke' does: the
// server closes the connection at once (the revocation reaches it as an
// event, not by polling), well within the 1 s the API promises.
func TestRevokeClosesWebSocket(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store)
	// A socket of another token, which must stay open.
	bystander, err := e.dialWS(t, nil, map[string]any{"token": e.token})
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"connection_init", "upgrade header"} {
		token, rec, err := slipway.IssueToken(t.Context(), e.store, "browser")
		if err != nil {
			t.Fatal(err)
		}
		var w *ws
		if how == "connection_init" {
			w, err = e.dialWS(t, nil, map[string]any{"Authorization": "Bearer " + token})
		} else {
			w, err = e.dialWS(t, map[string][]string{"Authorization": {"Bearer " + token}}, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.subscribe("s", deploymentUpdated, map[string]any{"id": "d-2"})
		w.await("s", "d-2", 10*time.Second)
		e.do(t, `mutation($id: ID!) { revokeToken(id: $id) { id } }`, map[string]any{"id": rec.ID}).ok(t, &struct{}{})
		if took := closedWithin(t, w, time.Second); took > time.Second {
			t.Errorf("%s: closed %v after the revocation, want within 1s", how, took)
		} else {
			t.Logf("%s: closed %v after the revocation", how, took)
		}
		if _, err := e.dialWS(t, nil, map[string]any{"token": token}); websocket.CloseStatus(err) != 4403 {
			t.Errorf("%s: dial with the revoked token: %v, want close 4403", how, err)
		}
	}
	bystander.subscribe("q", `query { projects { name } }`, nil)
	if nexts, errPayload := bystander.until("q", 5*time.Second); errPayload != "" || len(nexts) != 1 || strings.Contains(string(nexts[0]), "errors") {
		t.Errorf("query on a valid token's socket: %s %s", nexts, errPayload)
	}
}

// TestRevokedTokenRunsNoOperation deletes a token behind the API's back
// (straight from the store, so no revocation event reaches the open
// socket): the next operation on the socket is still refused, as
// unauthorized, and the socket is closed.
func TestRevokedTokenRunsNoOperation(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store)
	token, rec, err := slipway.IssueToken(t.Context(), e.store, "script")
	if err != nil {
		t.Fatal(err)
	}
	w, err := e.dialWS(t, nil, map[string]any{"token": token})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteToken(t.Context(), rec.ID); err != nil {
		t.Fatal(err)
	}
	w.subscribe("q", `query { projects { name repo } }`, nil)
	next, errPayload := w.next("q", 5*time.Second)
	if strings.Contains(next, "file:///r") {
		t.Errorf("a query on a revoked token's socket returned data: %s", next)
	}
	if !strings.Contains(next+errPayload, `"code":"unauthorized"`) || !strings.Contains(next+errPayload, "revoked") {
		t.Errorf("a query on a revoked token's socket = %s %s, want an unauthorized error", next, errPayload)
	}
	closedWithin(t, w, time.Second)
}

// TestSubscriptionCap runs subscriptions up to the per-token cap over two
// connections: one more is refused with code too_many, another token is
// not affected, and ending one frees its slot.
func TestSubscriptionCap(t *testing.T) {
	e := newEnvWith(t, func(c *graphqlConfig) { c.MaxSubscriptions = 3 })
	seed(t, e.store)
	w1, err := e.dialWS(t, nil, map[string]any{"token": e.token})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := e.dialWS(t, nil, map[string]any{"token": e.token})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []*ws{w1, w1, w2} {
		id := fmt.Sprint("s", i)
		w.subscribe(id, deploymentUpdated, map[string]any{"id": "d-2"})
		w.await(id, "d-2", 10*time.Second)
	}
	w2.subscribe("over", deploymentUpdated, map[string]any{"id": "d-2"})
	next, errPayload := w2.next("over", 5*time.Second)
	if got := next + errPayload; !strings.Contains(got, `"code":"too_many"`) || !strings.Contains(got, "runs 3 subscriptions already") {
		t.Errorf("subscription past the cap = %s, want a too_many error", got)
	}
	other, _, err := slipway.IssueToken(t.Context(), e.store, "other")
	if err != nil {
		t.Fatal(err)
	}
	w3, err := e.dialWS(t, nil, map[string]any{"token": other})
	if err != nil {
		t.Fatal(err)
	}
	w3.subscribe("o", deploymentUpdated, map[string]any{"id": "d-2"})
	w3.await("o", "d-2", 10*time.Second)
	// Ending a subscription frees its slot.
	if err := wsjson.Write(t.Context(), w1.c, map[string]any{"id": "s0", "type": "complete"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		id := fmt.Sprint("again", i)
		w2.subscribe(id, deploymentUpdated, map[string]any{"id": "d-2"})
		nexts, errPayload := w2.next(id, 5*time.Second)
		if !strings.Contains(nexts+errPayload, "too_many") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot of an ended subscription was not freed: %s", nexts+errPayload)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if graphql.DefaultMaxSubscriptions != 100 {
		t.Errorf("DefaultMaxSubscriptions = %d", graphql.DefaultMaxSubscriptions)
	}
}

// next returns subscription id's first message: a next's payload, or an
// error's.
func (w *ws) next(id string, within time.Duration) (next, errPayload string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), within)
	defer cancel()
	for {
		var m wsMsg
		if held := w.held[id]; len(held) > 0 {
			m, w.held[id] = held[0], held[1:]
		} else if err := wsjson.Read(ctx, w.c, &m); err != nil {
			w.t.Fatalf("read subscription %s: %v", id, err)
		}
		if m.ID != id {
			if m.ID != "" {
				w.held[m.ID] = append(w.held[m.ID], m)
			}
			continue
		}
		switch m.Type {
		case "next":
			return string(m.Payload), ""
		case "error":
			return "", string(m.Payload)
		}
	}
}
