package graphql_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/slipway-ci/slipway"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store)
	revoked, rt, err := slipway.IssueToken(t.Context(), e.store, "old")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteToken(t.Context(), rt.ID); err != nil {
		t.Fatal(err)
	}
	query := `{"query": "{ projects { name } }"}`
	tests := []struct {
		name, method, authorization string
		status                      int
		want                        string // in the message
	}{
		{"no token", "POST", "", 401, "an API token is required"},
		{"no token GET", "GET", "", 401, "an API token is required"},
		{"basic auth", "POST", "Basic dXNlcjpwYXNz", 401, "must be 'Bearer TOKEN'"},
		{"bearer without token", "POST", "Bearer ", 401, "must be 'Bearer TOKEN'"},
		{"wrong token", "POST", "Bearer slw_wrong", 401, "invalid API token"},
		{"revoked token", "GET", "Bearer " + revoked, 401, "invalid API token"},
		{"good token", "POST", "Bearer " + e.token, 200, ""},
		{"good token, lower-case scheme", "GET", "bearer " + e.token, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := e.url
			var body io.Reader
			if tt.method == "GET" {
				u += "?query=" + "%7B%20projects%20%7B%20name%20%7D%20%7D"
			} else {
				body = strings.NewReader(query)
			}
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, u, body)
			req.Header.Set("Content-Type", "application/json")
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, raw, tt.status)
			}
			if tt.status == 200 {
				if !strings.Contains(string(raw), `"name":"web"`) {
					t.Errorf("authorised request = %s", raw)
				}
				return
			}
			var r response
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatalf("401 body is not JSON: %s", raw)
			}
			code, msg := r.code(t)
			if code != slipway.EUNAUTHORIZED || !strings.Contains(msg, tt.want) || !strings.Contains(msg, "slipway token create") {
				t.Errorf("error = code %q, %q; want %q, a message with %q and how to create a token", code, msg, slipway.EUNAUTHORIZED, tt.want)
			}
			if len(r.Data) != 0 || strings.Contains(string(raw), "web") {
				t.Errorf("a refused request got data: %s", raw)
			}
			if resp.Header.Get("WWW-Authenticate") == "" || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("headers = %v, want WWW-Authenticate and JSON", resp.Header)
			}
		})
	}
}

func TestTokenMutations(t *testing.T) {
	e := newEnv(t, nil)
	var created struct {
		CreateToken struct {
			Token    string
			APIToken struct{ ID, Name string }
		}
	}
	e.do(t, `mutation { createToken(name: "ci") { token apiToken { id name } } }`, nil).ok(t, &created)
	tok := created.CreateToken
	if !strings.HasPrefix(tok.Token, slipway.TokenPrefix) || tok.APIToken.Name != "ci" || tok.APIToken.ID == "" {
		t.Fatalf("createToken = %+v", tok)
	}
	// The new token works.
	other := *e
	other.token = tok.Token
	var list struct {
		Tokens []struct {
			ID, Name   string
			LastUsedAt *time.Time
		}
	}
	other.do(t, `{ tokens { id name lastUsedAt } }`, nil).ok(t, &list)
	if len(list.Tokens) != 2 {
		t.Fatalf("tokens = %+v, want test and ci", list.Tokens)
	}
	for _, l := range list.Tokens {
		if l.LastUsedAt == nil {
			t.Errorf("token %s has no lastUsedAt after being used", l.Name)
		}
	}
	if code, _ := e.do(t, `mutation { createToken(name: "a\nb") { token } }`, nil).code(t); code != slipway.EINVALID {
		t.Errorf("createToken with a bad name = %q, want invalid", code)
	}
	// Revoked, it does not.
	var revoked struct{ RevokeToken struct{ ID string } }
	e.do(t, `mutation($id: ID!) { revokeToken(id: $id) { id } }`, map[string]any{"id": tok.APIToken.ID}).ok(t, &revoked)
	if revoked.RevokeToken.ID != tok.APIToken.ID {
		t.Errorf("revokeToken = %+v", revoked)
	}
	body := strings.NewReader(`{"query": "{ projects { name } }"}`)
	req, _ := http.NewRequestWithContext(t.Context(), "POST", e.url, body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a revoked token got %d, want 401", resp.StatusCode)
	}
	if code, _ := e.do(t, `mutation { revokeToken(id: "t-nope") { id } }`, nil).code(t); code != slipway.ENOTFOUND {
		t.Errorf("revokeToken of an unknown id = %q, want not_found", code)
	}
}

func TestLogSearchQuery(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store)
	type data struct {
		Deployment struct{ Logs []struct{ N int } }
	}
	tests := []struct {
		args string
		want []int
	}{
		{``, []int{0, 1, 2, 3}},
		{`(search: "step")`, []int{1, 2}},
		{`(search: "EXIT status")`, []int{3}},
		{`(search: "\"2/2: run\"")`, []int{2}},
		{`(step: "STEP 2/2: RUN false")`, []int{2, 3}},
		{`(step: "STEP 2/2: RUN false", search: "error")`, []int{3}},
		{`(after: 1)`, []int{2, 3}},
		{`(after: 1, first: 1)`, []int{2}},
		{`(from: 3, after: 0)`, []int{3}},
		{`(search: "nothing")`, nil},
	}
	for _, tt := range tests {
		var got data
		e.do(t, `{ deployment(id: "d-3") { logs`+tt.args+` { n } } }`, nil).ok(t, &got)
		var ns []int
		for _, l := range got.Deployment.Logs {
			ns = append(ns, l.N)
		}
		if !slices.Equal(ns, tt.want) {
			t.Errorf("logs%s = %v, want %v", tt.args, ns, tt.want)
		}
	}
	if code, _ := e.do(t, `{ deployment(id: "d-3") { logs(after: -1) { n } } }`, nil).code(t); code != slipway.EINVALID {
		t.Errorf("logs(after: -1) = %q, want invalid", code)
	}
}

// ws is a graphql-transport-ws client for tests.
type ws struct {
	t    *testing.T
	c    *websocket.Conn
	held map[string][]wsMsg // read while waiting for another subscription
}

// dialWS connects to the API over WebSocket with header and sends
// connection_init with payload; it returns the connection once acknowledged,
// or the error (a close with its code).
func (e *env) dialWS(t *testing.T, header http.Header, payload map[string]any) (*ws, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http"), &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader:   header,
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, err
	}
	t.Cleanup(func() { c.CloseNow() })
	if err := wsjson.Write(ctx, c, map[string]any{"type": "connection_init", "payload": payload}); err != nil {
		return nil, err
	}
	var m struct{ Type string }
	if err := wsjson.Read(ctx, c, &m); err != nil {
		return nil, err
	}
	if m.Type != "connection_ack" {
		return nil, fmt.Errorf("got %q, want connection_ack", m.Type)
	}
	return &ws{t: t, c: c, held: map[string][]wsMsg{}}, nil
}

type wsMsg struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

func (w *ws) subscribe(id, query string, vars map[string]any) {
	w.t.Helper()
	err := wsjson.Write(w.t.Context(), w.c, map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}})
	if err != nil {
		w.t.Fatal(err)
	}
}

// until reads the messages of subscription id up to its complete or
// error, and returns the payloads of its next messages and the error
// payload, if any.
func (w *ws) until(id string, within time.Duration) (nexts []json.RawMessage, errPayload string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), within)
	defer cancel()
	for {
		var m wsMsg
		if held := w.held[id]; len(held) > 0 {
			m, w.held[id] = held[0], held[1:]
		} else if err := wsjson.Read(ctx, w.c, &m); err != nil {
			w.t.Fatalf("read subscription %s (after %d messages): %v", id, len(nexts), err)
		}
		if m.ID != id {
			if m.ID != "" { // not a pong
				w.held[m.ID] = append(w.held[m.ID], m)
			}
			continue
		}
		switch m.Type {
		case "next":
			nexts = append(nexts, m.Payload)
		case "complete":
			return nexts, ""
		case "error":
			return nexts, string(m.Payload)
		}
	}
}

// await waits until subscription id has sent a next message whose payload
// contains want, and fails the test after within. It consumes nothing:
// until still returns every message.
func (w *ws) await(id, want string, within time.Duration) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), within)
	defer cancel()
	for i := 0; ; i++ {
		for ; i < len(w.held[id]); i++ {
			if m := w.held[id][i]; m.Type == "next" && strings.Contains(string(m.Payload), want) {
				return
			}
		}
		var m wsMsg
		if err := wsjson.Read(ctx, w.c, &m); err != nil {
			w.t.Fatalf("subscription %s never sent %s (got %d messages): %v", id, want, len(w.held[id]), err)
		}
		if m.ID != "" { // not a pong
			w.held[m.ID] = append(w.held[m.ID], m)
		}
		i--
	}
}

func TestWebSocketAuth(t *testing.T) {
	e := newEnv(t, nil)
	bearer := http.Header{"Authorization": {"Bearer " + e.token}}
	if _, err := e.dialWS(t, nil, map[string]any{"Authorization": "Bearer " + e.token}); err != nil {
		t.Errorf("token in connection_init: %v", err)
	}
	if _, err := e.dialWS(t, nil, map[string]any{"token": e.token}); err != nil {
		t.Errorf("token as payload.token: %v", err)
	}
	if _, err := e.dialWS(t, bearer, nil); err != nil {
		t.Errorf("token in the upgrade request: %v", err)
	}
	for name, payload := range map[string]map[string]any{
		"no token":    nil,
		"wrong token": {"Authorization": "Bearer slw_wrong"},
	} {
		_, err := e.dialWS(t, nil, payload)
		if websocket.CloseStatus(err) != 4403 {
			t.Errorf("%s: %v, want the connection closed with 4403", name, err)
		}
	}
	_, err := e.dialWS(t, http.Header{"Authorization": {"Bearer slw_wrong"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("wrong token in the upgrade request: %v, want HTTP 401", err)
	}
}

func TestSubscriptionsPollingTheStore(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e.store)
	ctx := t.Context()
	w, err := e.dialWS(t, nil, map[string]any{"Authorization": "Bearer " + e.token})
	if err != nil {
		t.Fatal(err)
	}
	// d-2 is queued with no log yet.
	w.subscribe("state", `subscription($id: ID!) { deploymentUpdated(id: $id) { id status } }`, map[string]any{"id": "d-2"})
	w.subscribe("log", `subscription($id: ID!) { deploymentLogs(id: $id, fromLine: 2) { n text } }`, map[string]any{"id": "d-2"})
	line := func(n int64) slipway.LogLine {
		return slipway.LogLine{Deployment: "d-2", N: n, Time: time.Now(), Stream: "stdout", Text: fmt.Sprintf("line %d", n)}
	}
	w.await("state", "QUEUED", 10*time.Second)
	if err := e.store.MarkBuilding(ctx, "d-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.store.AppendLogLines(ctx, []slipway.LogLine{line(1), line(2), line(4)}); err != nil {
		t.Fatal(err)
	}
	// Line 2 out means a poll saw the gap at 3: line 4 must wait for it.
	w.await("log", "line 2", 10*time.Second)
	if err := e.store.AppendLogLines(ctx, []slipway.LogLine{line(3), line(5)}); err != nil {
		t.Fatal(err)
	}
	w.await("log", "line 5", 10*time.Second)
	w.await("state", "BUILDING", 10*time.Second)
	if err := e.store.FinishDeployment(ctx, "d-2", slipway.DeploymentResult{Status: slipway.StatusSucceeded}, time.Now()); err != nil {
		t.Fatal(err)
	}

	// Both complete; read them in whichever order they come.
	nexts, errp := w.until("state", 10*time.Second)
	var states []string
	for _, p := range nexts {
		var d struct {
			Data struct{ DeploymentUpdated struct{ ID, Status string } }
		}
		json.Unmarshal(p, &d)
		states = append(states, d.Data.DeploymentUpdated.Status)
	}
	if errp != "" || strings.Join(states, ",") != "QUEUED,BUILDING,SUCCEEDED" {
		t.Errorf("deploymentUpdated = %v (error %s), want QUEUED,BUILDING,SUCCEEDED then complete", states, errp)
	}
	nexts, errp = w.until("log", 10*time.Second)
	var ns []int
	for _, p := range nexts {
		var d struct {
			Data struct{ DeploymentLogs struct{ N int } }
		}
		json.Unmarshal(p, &d)
		ns = append(ns, d.Data.DeploymentLogs.N)
	}
	if errp != "" || fmt.Sprint(ns) != "[2 3 4 5]" {
		t.Errorf("deploymentLogs(fromLine: 2) = %v (error %s), want [2 3 4 5] then complete", ns, errp)
	}

	// An unknown deployment is an error, not an endless wait.
	// (gqlgen sends it as the errors of a next message.)
	w.subscribe("nope", `subscription { deploymentLogs(id: "d-404") { n } }`, nil)
	if nexts, errp := w.until("nope", 5*time.Second); len(nexts) != 1 || !strings.Contains(string(nexts[0]), `"code":"not_found"`) || errp != "" {
		t.Errorf("deploymentLogs of an unknown deployment = %s, error %q; want a not_found error, then complete", nexts, errp)
	}
	// A finished deployment: its state once, then complete.
	w.subscribe("done", `subscription { deploymentUpdated(id: "d-1") { status } }`, nil)
	if nexts, errp := w.until("done", 5*time.Second); len(nexts) != 1 || errp != "" {
		t.Errorf("deploymentUpdated of a finished deployment = %d messages, error %q; want 1 and complete", len(nexts), errp)
	}
}

// fakeLive is a Live whose log follow emits lines 1..n from from on, or
// fails after them.
type fakeLive struct {
	n       int64
	fail    error
	watched chan string
}

func (f *fakeLive) FollowLog(ctx context.Context, deployment string, from int64, emit func(slipway.LogLine) error) error {
	for n := from; n <= f.n; n++ {
		if err := emit(slipway.LogLine{Deployment: deployment, N: n, Text: fmt.Sprint("live ", n)}); err != nil {
			return err
		}
	}
	return f.fail
}

func (f *fakeLive) WatchDeployment(ctx context.Context, project, deployment string) (<-chan struct{}, error) {
	f.watched <- project + "/" + deployment
	ch := make(chan struct{})
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

func TestSubscriptionsThroughLive(t *testing.T) {
	live := &fakeLive{n: 3, watched: make(chan string, 1)}
	e := newEnvWith(t, func(c *graphqlConfig) { c.Live = live })
	seed(t, e.store)
	w, err := e.dialWS(t, nil, map[string]any{"Authorization": "Bearer " + e.token})
	if err != nil {
		t.Fatal(err)
	}
	w.subscribe("log", `subscription { deploymentLogs(id: "d-3") { n text } }`, nil)
	if nexts, errp := w.until("log", 5*time.Second); len(nexts) != 3 || errp != "" || !strings.Contains(string(nexts[0]), "live 1") {
		t.Errorf("deploymentLogs through Live = %s, error %q", nexts, errp)
	}
	live.n = 2500
	w.subscribe("batches", `subscription { deploymentLogLines(id: "d-3", fromLine: 2, max: 1000) { n } }`, nil)
	nexts, errp := w.until("batches", 10*time.Second)
	var ns []int
	for _, p := range nexts {
		var d struct {
			Data struct{ DeploymentLogLines []struct{ N int } }
		}
		json.Unmarshal(p, &d)
		if len(d.Data.DeploymentLogLines) > 1000 {
			t.Errorf("a batch of %d lines, want at most 1000", len(d.Data.DeploymentLogLines))
		}
		for _, l := range d.Data.DeploymentLogLines {
			ns = append(ns, l.N)
		}
	}
	if errp != "" || len(ns) != 2499 || ns[0] != 2 || ns[len(ns)-1] != 2500 || !slices.IsSorted(ns) || len(nexts) >= len(ns) {
		t.Errorf("deploymentLogLines = %d lines in %d batches (error %q), want 2..2500 in order, batched", len(ns), len(nexts), errp)
	}
	live.n = 3
	w.subscribe("state", `subscription { deploymentUpdated(id: "d-3") { status } }`, nil)
	if _, errp := w.until("state", 5*time.Second); errp != "" {
		t.Errorf("deploymentUpdated: error %s", errp)
	}
	if got := <-live.watched; got != "web/d-3" {
		t.Errorf("watched %q, want web/d-3", got)
	}
	// A failure inside the follow ends the subscription with an error
	// that does not leak the cause.
	live.fail = errors.New("nats: connection closed at /var/secret")
	w.subscribe("fail", `subscription { deploymentLogs(id: "d-3", fromLine: 3) { n } }`, nil)
	nexts, errp = w.until("fail", 5*time.Second)
	if len(nexts) != 1 || !strings.Contains(errp, "internal error") || strings.Contains(errp, "secret") {
		t.Errorf("failing follow = %d lines, error %s; want line 3, then internal error", len(nexts), errp)
	}
}
