// Package client is a small Go client for Slipway's GraphQL API, used by
// the CLI. It speaks plain JSON over HTTP (net/http, encoding/json) for
// queries and mutations and graphql-transport-ws over WebSocket for
// subscriptions, sends the API token, and returns slipway domain types.
//
// It must not import the server side (graphql, sqlite, ...): the API is its
// only contract with the server.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slipway-ci/slipway"
)

// maxResponseBytes caps a response body; log pages are the largest.
const maxResponseBytes = 64 << 20

// Client calls one Slipway server's GraphQL API. It is safe for concurrent
// use.
type Client struct {
	baseURL string
	http    *http.Client
	token   string
}

// New returns a client for the server at baseURL (e.g.
// "http://127.0.0.1:8080"; the API is at baseURL + "/graphql"). A nil
// httpClient means one with a 30-second timeout.
func New(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), http: httpClient}
}

// WithToken returns a copy of c that authenticates with the API token
// (sent as "Authorization: Bearer TOKEN").
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.token = strings.TrimSpace(token)
	return &cc
}

// HasToken reports whether c sends an API token.
func (c *Client) HasToken() bool { return c.token != "" }

// Error is an error the server reported. It unwraps to a *slipway.Error
// with the same code and message, so slipway.ErrorCode works on it.
type Error struct {
	// Code is the server's extensions.code ("invalid", "not_found", ...),
	// or a GraphQL error code, or "" when the server gave none.
	Code string
	// Message is the server's message, meant for users.
	Message string
}

func (e *Error) Error() string {
	if e.Code == "" || e.Code == slipway.EINTERNAL {
		return e.Message
	}
	return e.Message + " (" + e.Code + ")"
}

// Unwrap returns the error as a *slipway.Error.
func (e *Error) Unwrap() error { return &slipway.Error{Code: e.Code, Message: e.Message} }

type gqlRequest struct {
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables,omitempty"`
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// do runs one query and decodes its data into out.
func (c *Client) do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(gqlRequest{Query: query, Variables: vars})
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	endpoint := c.baseURL + "/graphql"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("invalid server URL %q: %w", c.baseURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("read the answer of the Slipway server at %s: %w", c.baseURL, err)
	}
	var r gqlResponse
	if err := json.Unmarshal(raw, &r); err != nil || (len(r.Errors) == 0 && len(r.Data) == 0) {
		return fmt.Errorf("unexpected answer from the Slipway server at %s: HTTP %s (is it a Slipway server?)", c.baseURL, resp.Status)
	}
	if len(r.Errors) > 0 {
		return responseError(&r)
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		return fmt.Errorf("decode the answer of the Slipway server at %s: %w", c.baseURL, err)
	}
	return nil
}

// responseError is the *Error for a response's errors: their messages,
// and the first code.
func responseError(r *gqlResponse) *Error {
	e := &Error{}
	msgs := make([]string, 0, len(r.Errors))
	for _, ge := range r.Errors {
		msgs = append(msgs, ge.Message)
		if code, ok := ge.Extensions["code"].(string); ok && e.Code == "" {
			e.Code = code
		}
	}
	e.Message = strings.Join(msgs, "; ")
	return e
}

// transportError turns a failed HTTP round trip into a message that says
// what to do.
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("call the Slipway server at %s: %w", c.baseURL, context.Cause(ctx))
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return fmt.Errorf("cannot reach the Slipway server at %s: is `slipway server` running? (set --server or SLIPWAY_SERVER)", c.baseURL)
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return fmt.Errorf("the Slipway server at %s did not answer in time", c.baseURL)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err // drop the repeated "Post URL:" prefix
	}
	return fmt.Errorf("cannot reach the Slipway server at %s: %w", c.baseURL, err)
}
