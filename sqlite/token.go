package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slipway-ci/slipway"
)

var _ slipway.TokenStore = (*DB)(nil)

// CreateToken stores t with the token's hash.
func (db *DB) CreateToken(ctx context.Context, t *slipway.APIToken, hash string) error {
	if hash == "" || t.ID == "" {
		return slipway.Errorf(slipway.EINVALID, "an API token needs an id and a hash")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = db.now().UTC()
	}
	_, err := db.write.ExecContext(ctx, `INSERT INTO api_tokens (id, name, hash, created_at, last_used_at, scopes) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, hash, formatTime(t.CreatedAt), nullTime(t.LastUsedAt), formatScopes(t.Scopes))
	if isConstraint(err, codeConstraintPrimaryKey, codeConstraintUnique) {
		return slipway.Errorf(slipway.ECONFLICT, "API token %q already exists", t.ID)
	} else if err != nil {
		return fmt.Errorf("create API token: %w", err)
	}
	return nil
}

const tokenColumns = `id, name, created_at, last_used_at, scopes`

// formatScopes is scopes as stored: space-separated "push:base/*".
func formatScopes(scopes []slipway.TokenScope) string {
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = sc.String()
	}
	return strings.Join(s, " ")
}

func scanToken(s scanner) (*slipway.APIToken, error) {
	var t slipway.APIToken
	var created, scopes string
	var used sql.NullString
	if err := s.Scan(&t.ID, &t.Name, &created, &used, &scopes); err != nil {
		return nil, err
	}
	for _, f := range strings.Fields(scopes) {
		sc, err := slipway.ParseTokenScope(f)
		if err != nil {
			return nil, fmt.Errorf("API token %s: %w", t.ID, err)
		}
		t.Scopes = append(t.Scopes, sc)
	}
	var err error
	if t.CreatedAt, err = parseTime(created); err != nil {
		return nil, err
	}
	if t.LastUsedAt, err = parseNullTime(used); err != nil {
		return nil, err
	}
	return &t, nil
}

// TokenByHash returns the token with the hash, or ENOTFOUND.
func (db *DB) TokenByHash(ctx context.Context, hash string) (*slipway.APIToken, error) {
	t, err := scanToken(db.tokenByHash.QueryRowContext(ctx, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "no such API token")
	} else if err != nil {
		return nil, fmt.Errorf("look up API token: %w", err)
	}
	return t, nil
}

// Tokens lists every token, oldest first.
func (db *DB) Tokens(ctx context.Context) ([]*slipway.APIToken, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	defer rows.Close()
	out := []*slipway.APIToken{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list API tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	return out, nil
}

// DeleteToken removes a token; an unknown id is ENOTFOUND.
func (db *DB) DeleteToken(ctx context.Context, id string) error {
	res, err := db.write.ExecContext(ctx, `DELETE FROM api_tokens WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete API token %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete API token %s: %w", id, err)
	} else if n == 0 {
		return slipway.Errorf(slipway.ENOTFOUND, "API token %q not found", id)
	}
	return nil
}

// TouchToken records the token's last use; an unknown id is ignored.
func (db *DB) TouchToken(ctx context.Context, id string, at time.Time) error {
	if _, err := db.write.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, formatTime(at), id); err != nil {
		return fmt.Errorf("record use of API token %s: %w", id, err)
	}
	return nil
}
