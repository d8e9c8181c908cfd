package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/slipway-ci/slipway"
)

var _ slipway.PreviewStore = (*DB)(nil)

const previewColumns = `project, number, head_ref, head_branch, head_sha, state, deployment, created_at, updated_at, last_request_at`

// PutPreview implements slipway.PreviewStore.
func (db *DB) PutPreview(ctx context.Context, p *slipway.Preview) (*slipway.Preview, error) {
	if p == nil || p.Project == "" || p.Number <= 0 {
		return nil, slipway.Errorf(slipway.EINVALID, "a preview needs a project and a pull request number above 0")
	}
	if !slipway.ValidCommit(p.HeadSHA) {
		return nil, slipway.Errorf(slipway.EINVALID, "preview of pull request #%d: head %q is not a full commit SHA", p.Number, p.HeadSHA)
	}
	now := formatTime(db.now())
	headRef := p.HeadRef
	if headRef == "" {
		headRef = slipway.PreviewRef(p.Number)
	}
	_, err := db.write.ExecContext(ctx, `INSERT INTO previews (`+previewColumns+`)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
	ON CONFLICT (project, number) DO UPDATE SET head_ref = excluded.head_ref, head_branch = excluded.head_branch,
		head_sha = excluded.head_sha, state = excluded.state, deployment = excluded.deployment, updated_at = excluded.updated_at`,
		p.Project, p.Number, headRef, p.HeadBranch, p.HeadSHA, string(slipway.PreviewOpen), p.Deployment, now, now)
	switch {
	case isConstraint(err, codeConstraintForeignKey):
		return nil, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", p.Project)
	case err != nil:
		return nil, fmt.Errorf("record the preview of pull request #%d of %s: %w", p.Number, p.Project, err)
	}
	return db.Preview(ctx, p.Project, p.Number)
}

// Preview implements slipway.PreviewStore.
func (db *DB) Preview(ctx context.Context, project string, number int) (*slipway.Preview, error) {
	p, err := scanPreview(db.read.QueryRowContext(ctx, `SELECT `+previewColumns+` FROM previews WHERE project = ? AND number = ?`, project, number))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "pull request #%d of project %s has no preview", number, project)
	}
	if err != nil {
		return nil, fmt.Errorf("read the preview of pull request #%d of %s: %w", number, project, err)
	}
	return p, nil
}

// Previews implements slipway.PreviewStore.
func (db *DB) Previews(ctx context.Context, project string) ([]*slipway.Preview, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+previewColumns+` FROM previews
	WHERE ? = '' OR project = ? ORDER BY project, number`, project, project)
	if err != nil {
		return nil, fmt.Errorf("list previews: %w", err)
	}
	defer rows.Close()
	var ps []*slipway.Preview
	for rows.Next() {
		p, err := scanPreview(rows)
		if err != nil {
			return nil, fmt.Errorf("list previews: %w", err)
		}
		ps = append(ps, p)
	}
	return ps, rows.Err()
}

// SetPreviewState implements slipway.PreviewStore.
func (db *DB) SetPreviewState(ctx context.Context, project string, number int, state slipway.PreviewState) error {
	if state != slipway.PreviewOpen && state != slipway.PreviewClosed {
		return slipway.Errorf(slipway.EINVALID, "invalid preview state %q", state)
	}
	res, err := db.write.ExecContext(ctx, `UPDATE previews SET state = ?, updated_at = ? WHERE project = ? AND number = ?`,
		string(state), formatTime(db.now()), project, number)
	if err != nil {
		return fmt.Errorf("set the state of the preview of pull request #%d of %s: %w", number, project, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return slipway.Errorf(slipway.ENOTFOUND, "pull request #%d of project %s has no preview", number, project)
	}
	return nil
}

// TouchPreview implements slipway.PreviewStore.
func (db *DB) TouchPreview(ctx context.Context, project string, number int, at time.Time) error {
	t := formatTime(at)
	_, err := db.write.ExecContext(ctx, `UPDATE previews SET last_request_at = ?
	WHERE project = ? AND number = ? AND (last_request_at IS NULL OR last_request_at < ?)`, t, project, number, t)
	if err != nil {
		return fmt.Errorf("record a request to the preview of pull request #%d of %s: %w", number, project, err)
	}
	return nil
}

// DeletePreview implements slipway.PreviewStore.
func (db *DB) DeletePreview(ctx context.Context, project string, number int) error {
	if _, err := db.write.ExecContext(ctx, `DELETE FROM previews WHERE project = ? AND number = ?`, project, number); err != nil {
		return fmt.Errorf("delete the preview of pull request #%d of %s: %w", number, project, err)
	}
	return nil
}

func scanPreview(s scanner) (*slipway.Preview, error) {
	var (
		p                slipway.Preview
		state            string
		created, updated string
		last             sql.NullString
	)
	if err := s.Scan(&p.Project, &p.Number, &p.HeadRef, &p.HeadBranch, &p.HeadSHA, &state, &p.Deployment,
		&created, &updated, &last); err != nil {
		return nil, err
	}
	p.State = slipway.PreviewState(state)
	var err error
	if p.CreatedAt, err = parseTime(created); err != nil {
		return nil, err
	}
	if p.UpdatedAt, err = parseTime(updated); err != nil {
		return nil, err
	}
	if p.LastRequestAt, err = parseNullTime(last); err != nil {
		return nil, err
	}
	return &p, nil
}
