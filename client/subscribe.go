package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/slipway-ci/slipway"
)

// wsProtocol is the GraphQL over WebSocket protocol the API speaks.
const wsProtocol = "graphql-transport-ws"

// maxWSMessage bounds one message from the server: a log line of the
// longest text, escaped.
const maxWSMessage = 4 << 20

// wsMessage is one graphql-transport-ws message.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// subscribe runs one GraphQL subscription over a WebSocket of its own and
// calls next with the data of each event. It returns nil when the server
// completes the subscription, the server's error as an *Error, next's
// error, or a transport error (see errDisconnected).
func (c *Client) subscribe(ctx context.Context, query string, vars map[string]any, next func(data json.RawMessage) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := "ws" + strings.TrimPrefix(c.baseURL, "http") + "/graphql"
	header := http.Header{}
	if c.token != "" {
		header.Set("Authorization", "Bearer "+c.token)
	}
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{wsProtocol}, HTTPHeader: header})
	if err != nil {
		if resp != nil && resp.Body != nil {
			raw, _ := io.ReadAll(resp.Body)
			var r gqlResponse
			if json.Unmarshal(raw, &r) == nil && len(r.Errors) > 0 {
				return responseError(&r)
			}
			err := fmt.Errorf("subscribe to the Slipway server at %s: HTTP %s", c.baseURL, resp.Status)
			if resp.StatusCode >= 500 {
				return disconnected{err} // a proxy or a server restarting
			}
			return err
		}
		return disconnected{c.transportError(ctx, err)}
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxWSMessage)

	init := map[string]any{}
	if c.token != "" {
		init["Authorization"] = "Bearer " + c.token
	}
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": init}); err != nil {
		return disconnected{fmt.Errorf("subscribe to the Slipway server at %s: %w", c.baseURL, err)}
	}
	payload, _ := json.Marshal(gqlRequest{Query: query, Variables: vars})
	subscribed := false
	for {
		var m wsMessage
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if websocket.CloseStatus(err) == 4403 || websocket.CloseStatus(err) == 4401 {
				return &Error{Code: slipway.EUNAUTHORIZED, Message: "the server refused the API token: pass a valid one with --token or SLIPWAY_TOKEN (create one with 'slipway token create')"}
			}
			return disconnected{fmt.Errorf("the connection to the Slipway server at %s broke: %w", c.baseURL, err)}
		}
		switch m.Type {
		case "connection_ack":
			if !subscribed {
				subscribed = true
				if err := wsjson.Write(ctx, conn, wsMessage{ID: "1", Type: "subscribe", Payload: payload}); err != nil {
					return disconnected{fmt.Errorf("subscribe to the Slipway server at %s: %w", c.baseURL, err)}
				}
			}
		case "ping":
			if err := wsjson.Write(ctx, conn, wsMessage{Type: "pong"}); err != nil {
				return disconnected{fmt.Errorf("the connection to the Slipway server at %s broke: %w", c.baseURL, err)}
			}
		case "next":
			var r gqlResponse
			if err := json.Unmarshal(m.Payload, &r); err != nil {
				return fmt.Errorf("decode an event from the Slipway server at %s: %w", c.baseURL, err)
			}
			if len(r.Errors) > 0 {
				return responseError(&r)
			}
			if err := next(r.Data); err != nil {
				return err
			}
		case "error":
			var r gqlResponse
			if err := json.Unmarshal(m.Payload, &r.Errors); err != nil || len(r.Errors) == 0 {
				return fmt.Errorf("the Slipway server at %s ended the subscription with an error", c.baseURL)
			}
			return responseError(&r)
		case "complete":
			conn.Close(websocket.StatusNormalClosure, "")
			return nil
		}
	}
}

// disconnected marks a transport failure: the subscription may be
// resumed on a new connection.
type disconnected struct{ err error }

func (d disconnected) Error() string { return d.err.Error() }
func (d disconnected) Unwrap() error { return d.err }

// resumeFor is how long a follow keeps trying to reconnect after the
// connection broke (a server restart, say).
var resumeFor = time.Minute

// resume runs attempt until it returns nil or an error that is not a
// broken connection, reconnecting with growing pauses for up to
// resumeFor since the last success.
func resume(ctx context.Context, attempt func() (progressed bool, err error)) error {
	wait := 200 * time.Millisecond
	var since time.Time
	for {
		progressed, err := attempt()
		if _, ok := errors.AsType[disconnected](err); !ok {
			return err
		}
		if progressed || since.IsZero() {
			since, wait = time.Now(), 200*time.Millisecond
		}
		if time.Since(since) > resumeFor {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// FollowLogs calls fn with every line of a deployment's log from line
// fromLine on (1 for all), in order and each once: the lines so far, then
// each new line as the build writes it. It returns nil once the deployment
// has ended and its log is complete. If the connection breaks it
// reconnects and goes on from the next line.
func (c *Client) FollowLogs(ctx context.Context, id string, fromLine int64, fn func(slipway.LogLine) error) error {
	next := max(fromLine, 1)
	// The batched form of deploymentLogs: one event per batch of ready
	// lines keeps up with fast builds.
	const q = `subscription($id: ID!, $from: Int) { deploymentLogLines(id: $id, fromLine: $from, max: 1000) { n time stream step text } }`
	return resume(ctx, func() (bool, error) {
		start := next
		err := c.subscribe(ctx, q, map[string]any{"id": id, "from": next}, func(data json.RawMessage) error {
			var out struct {
				DeploymentLogLines []logLine `json:"deploymentLogLines"`
			}
			if err := json.Unmarshal(data, &out); err != nil {
				return fmt.Errorf("decode log lines: %w", err)
			}
			for i := range out.DeploymentLogLines {
				l := out.DeploymentLogLines[i].domain(id)
				if l.N < next {
					continue
				}
				next = l.N + 1
				if err := fn(l); err != nil {
					return err
				}
			}
			return nil
		})
		return next > start, err
	})
}

// FollowDeployment calls fn with the deployment as it is, then after each
// change, and returns nil after the call with the deployment in a
// terminal state. If the connection breaks it reconnects.
func (c *Client) FollowDeployment(ctx context.Context, id string, fn func(*slipway.Deployment) error) error {
	q := `subscription($id: ID!) { deploymentUpdated(id: $id) { ` + deploymentFields + ` } }`
	return resume(ctx, func() (bool, error) {
		progressed := false
		err := c.subscribe(ctx, q, map[string]any{"id": id}, func(data json.RawMessage) error {
			var out struct {
				DeploymentUpdated deployment `json:"deploymentUpdated"`
			}
			if err := json.Unmarshal(data, &out); err != nil {
				return fmt.Errorf("decode a deployment: %w", err)
			}
			progressed = true
			return fn(out.DeploymentUpdated.domain())
		})
		return progressed, err
	})
}

// logLine is a LogLine as the API sends it.
type logLine struct {
	N      int64     `json:"n"`
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"`
	Step   *string   `json:"step"`
	Text   string    `json:"text"`
}

func (l *logLine) domain(deployment string) slipway.LogLine {
	out := slipway.LogLine{Deployment: deployment, N: l.N, Time: l.Time, Stream: l.Stream, Text: l.Text}
	if l.Step != nil {
		out.Step = *l.Step
	}
	return out
}
