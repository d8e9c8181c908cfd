package slipway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
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
// token (to be shown once) with its record.
func IssueToken(ctx context.Context, ts TokenStore, name string) (string, *APIToken, error) {
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
	t := &APIToken{ID: id, Name: name, CreatedAt: time.Now().UTC()}
	if err := ts.CreateToken(ctx, t, HashToken(token)); err != nil {
		return "", nil, fmt.Errorf("create API token: %w", err)
	}
	return token, t, nil
}
