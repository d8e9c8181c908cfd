package slipway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// APIToken is the record of an API access token. The token itself is
// shown once, when it is created; the store keeps only its hash (see
// HashToken), so a stolen database reveals no usable token.
type APIToken struct {
	// ID names the token in listings and for revoking it, e.g. "t-1a2b3c4d".
	ID string `json:"id"`
	// Name says what the token is for, e.g. "admin" or "ci".
	Name string `json:"name"`
	// CreatedAt is when the token was created.
	CreatedAt time.Time `json:"createdAt"`
	// LastUsedAt is when the token was last seen on a request (recorded
	// at most once a minute), or nil.
	LastUsedAt *time.Time `json:"lastUsedAt"`
	// Scopes, when there are any, make the token a registry token: it
	// then works for the registry only, for what they allow, and not
	// for the API. A token without scopes is an API token, which may
	// also push and pull every repository (never delete).
	Scopes []TokenScope `json:"scopes"`
}

// TokenScope is what a registry token may do: push (which implies pull)
// or pull the repositories Repo names.
type TokenScope struct {
	// Action is ScopePush or ScopePull.
	Action string `json:"action"`
	// Repo is a repository name or a pattern in which "*" matches any
	// run of characters, "/" included: "base/*", "demo".
	Repo string `json:"repo"`
}

// The actions of a TokenScope.
const (
	ScopePush = "push"
	ScopePull = "pull"
)

// String is the scope as ParseTokenScope reads it: "push:base/*".
func (s TokenScope) String() string { return s.Action + ":" + s.Repo }

var scopeRepoRE = regexp.MustCompile(`^[a-z0-9*]+(?:(?:[._/-]|__|-+)[a-z0-9*]+)*$`)

// ParseTokenScope reads "push:REPO" or "pull:REPO", REPO a repository
// name or a pattern with "*" (e.g. "push:base/*").
func ParseTokenScope(s string) (TokenScope, error) {
	action, repo, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || (action != ScopePush && action != ScopePull) {
		return TokenScope{}, Errorf(EINVALID, "invalid scope %q: use push:REPO or pull:REPO (REPO may be a pattern such as base/*)", s)
	}
	if len(repo) > 255 || !scopeRepoRE.MatchString(repo) {
		return TokenScope{}, Errorf(EINVALID, "invalid scope %q: %q is not a repository name or pattern (lowercase letters, digits, . _ - /, and *)", s, repo)
	}
	return TokenScope{Action: action, Repo: repo}, nil
}

// TokenPrefix starts every API token, so that one is easy to recognise
// (and to scan for) in logs and repositories.
const TokenPrefix = "slw_"

// NewToken returns a new random API token: TokenPrefix and 43 URL-safe
// characters (256 random bits).
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new API token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// NewTokenID returns a new token record id: "t-" and 12 hex digits.
func NewTokenID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new API token id: %w", err)
	}
	return "t-" + hex.EncodeToString(b), nil
}

// HashToken returns the hex SHA-256 of token, surrounding white space
// removed: what the store keeps and looks tokens up by. The tokens are
// random, so a plain hash is enough.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return hex.EncodeToString(sum[:])
}

// TokenStore keeps API tokens by their hash. It is implemented by the
// SQLite store; it is not part of Store so that stores which need no
// tokens (tests' fakes) need not implement it.
type TokenStore interface {
	// CreateToken stores t with the token's hash; an id or hash already
	// stored is ECONFLICT, an empty hash EINVALID.
	CreateToken(ctx context.Context, t *APIToken, hash string) error
	// TokenByHash returns the token whose hash is hash, or ENOTFOUND.
	TokenByHash(ctx context.Context, hash string) (*APIToken, error)
	// Tokens lists every token, oldest first.
	Tokens(ctx context.Context) ([]*APIToken, error)
	// DeleteToken revokes a token; an unknown id is ENOTFOUND.
	DeleteToken(ctx context.Context, id string) error
	// TouchToken records that a token was used at at.
	TouchToken(ctx context.Context, id string, at time.Time) error
}

// IssueToken creates a new API token named name in ts and returns the
// token (to be shown once) with its record. With scopes it is a registry
// token (see APIToken.Scopes).
func IssueToken(ctx context.Context, ts TokenStore, name string, scopes ...TokenScope) (string, *APIToken, error) {
	name = strings.TrimSpace(name)
	if len(name) > 100 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", nil, Errorf(EINVALID, "invalid token name %q: use at most 100 printable characters", name)
	}
	token, err := NewToken()
	if err != nil {
		return "", nil, err
	}
	id, err := NewTokenID()
	if err != nil {
		return "", nil, err
	}
	for _, sc := range scopes {
		if _, err := ParseTokenScope(sc.String()); err != nil {
			return "", nil, err
		}
	}
	t := &APIToken{ID: id, Name: name, CreatedAt: time.Now().UTC(), Scopes: scopes}
	if err := ts.CreateToken(ctx, t, HashToken(token)); err != nil {
		return "", nil, fmt.Errorf("create API token: %w", err)
	}
	return token, t, nil
}
