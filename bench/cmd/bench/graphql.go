package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// graphQL asks the server's API the few things the harness needs, with
// queries of its own: the harness must not break when the client package
// asks for fields a server built a moment earlier does not have yet.
type graphQL struct {
	url   string
	token func() string // a bearer token to send, or ""
}

func (g *graphQL) do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if t := g.token(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("graphql: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("graphql: %w", err)
	}
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("graphql: HTTP %d: %s", resp.StatusCode, raw)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("graphql: %s", r.Errors[0].Message)
	}
	return json.Unmarshal(r.Data, out)
}

type deploymentStatus struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Error      string `json:"error"`
	FailedStep string `json:"failedStep"`
}

func (d deploymentStatus) terminal() bool {
	switch d.Status {
	case "succeeded", "failed", "cancelled", "superseded":
		return true
	}
	return false
}

func (g *graphQL) deployment(ctx context.Context, id string) (deploymentStatus, error) {
	var out struct {
		Deployment *struct {
			ID         string  `json:"id"`
			Status     string  `json:"status"`
			Error      *string `json:"error"`
			FailedStep *string `json:"failedStep"`
		} `json:"deployment"`
	}
	err := g.do(ctx, `query($id: ID!) { deployment(id: $id) { id status error failedStep } }`, map[string]any{"id": id}, &out)
	if err != nil {
		return deploymentStatus{}, err
	}
	if out.Deployment == nil {
		return deploymentStatus{}, fmt.Errorf("deployment %s not found", id)
	}
	// The API spells statuses as GraphQL enum values (SUCCEEDED).
	d := deploymentStatus{ID: out.Deployment.ID, Status: strings.ToLower(out.Deployment.Status)}
	if out.Deployment.Error != nil {
		d.Error = *out.Deployment.Error
	}
	if out.Deployment.FailedStep != nil {
		d.FailedStep = *out.Deployment.FailedStep
	}
	return d, nil
}

// logLine is one stored log line; Time is the agent's clock.
type logLine struct {
	N    int64     `json:"n"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

func (g *graphQL) logs(ctx context.Context, id string, from int64, first int) ([]logLine, error) {
	var out struct {
		Deployment *struct {
			Logs []logLine `json:"logs"`
		} `json:"deployment"`
	}
	err := g.do(ctx, `query($id: ID!, $from: Int, $first: Int) { deployment(id: $id) { logs(from: $from, first: $first) { n time text } } }`,
		map[string]any{"id": id, "from": from, "first": first}, &out)
	if err != nil {
		return nil, err
	}
	if out.Deployment == nil {
		return nil, fmt.Errorf("deployment %s not found", id)
	}
	return out.Deployment.Logs, nil
}
