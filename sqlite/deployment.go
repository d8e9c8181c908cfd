package sqlite

import (
	"context"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/slipway-ci/slipway"
)

const deploymentColumns = `id, project, ref, commit_sha, "trigger", status, image, digest, error, failed_step,
	delivery_id, timings, created_at, started_at, finished_at, steps, log_pruned_at,
	log_complete, log_complete_at, log_lines, preview`

// unfinished selects deployments that are not in a terminal state. It is
// spelled out with literals (slipway.StatusQueued, slipway.StatusBuilding)
// because SQLite only uses the partial index deployments_unfinished for a
// WHERE clause that textually implies the index's own.
const unfinished = `status IN ('queued', 'building')`

// CreateDeployment stores d as a queued deployment and returns it with
// created=true. An empty ID is filled in with a new one (see
// newDeploymentID), a zero CreatedAt with now; Status becomes queued and
// StartedAt and FinishedAt are cleared. d is updated only when it is stored.
//
// If d.DeliveryID is not empty and a deployment with that delivery id
// exists, nothing is written and that deployment is returned with
// created=false. This holds under concurrency, also across processes: the
// check and the insert run in one write transaction, and a unique index on
// the delivery id backs it up.
//
// An unknown project is ENOTFOUND; an ID that is taken is ECONFLICT.
func (db *DB) CreateDeployment(ctx context.Context, d *slipway.Deployment) (*slipway.Deployment, bool, error) {
	if d == nil {
		return nil, false, slipway.Errorf(slipway.EINVALID, "no deployment given")
	}
	if d.Project == "" {
		return nil, false, slipway.Errorf(slipway.EINVALID, "a deployment needs a project")
	}
	nd := *d
	if nd.ID == "" {
		id, err := newDeploymentID()
		if err != nil {
			return nil, false, fmt.Errorf("create deployment: %w", err)
		}
		nd.ID = id
	}
	if nd.CreatedAt.IsZero() {
		nd.CreatedAt = db.now()
	}
	nd.CreatedAt = nd.CreatedAt.UTC()
	nd.Status = slipway.StatusQueued
	nd.StartedAt, nd.FinishedAt = nil, nil
	timings, err := encodeTimings(nd.Timings)
	if err != nil {
		return nil, false, fmt.Errorf("create deployment: %w", err)
	}
	steps, err := encodeList("steps", nd.Steps)
	if err != nil {
		return nil, false, fmt.Errorf("create deployment: %w", err)
	}

	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("create deployment: %w", err)
	}
	defer tx.Rollback()

	if nd.DeliveryID != "" {
		existing, err := deploymentByDelivery(ctx, tx, nd.DeliveryID)
		if err == nil {
			return existing, false, nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, false, fmt.Errorf("create deployment: %w", err)
		}
	}

	_, err = tx.ExecContext(ctx, `INSERT INTO deployments (`+deploymentColumns+`)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, NULL, NULL, NULL, 0, ?)`,
		nd.ID, nd.Project, nd.Ref, nd.Commit, string(nd.Trigger), string(nd.Status), nd.Image, nd.Digest,
		nd.Error, nd.FailedStep, nd.DeliveryID, timings, formatTime(nd.CreatedAt), steps, nd.Preview)
	switch {
	case err == nil:
	case nd.DeliveryID != "" && isConstraint(err, codeConstraintUnique):
		// Not reachable through one DB (the transaction holds the write
		// lock since BEGIN IMMEDIATE), but cheap insurance: whoever
		// inserted the delivery first won, return theirs.
		existing, rerr := deploymentByDelivery(ctx, tx, nd.DeliveryID)
		if rerr != nil {
			return nil, false, fmt.Errorf("create deployment: %w (and re-reading delivery %q: %w)", err, nd.DeliveryID, rerr)
		}
		return existing, false, nil
	case isConstraint(err, codeConstraintForeignKey):
		return nil, false, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", nd.Project)
	case isConstraint(err, codeConstraintPrimaryKey, codeConstraintUnique):
		return nil, false, slipway.Errorf(slipway.ECONFLICT, "deployment %q already exists", nd.ID)
	default:
		return nil, false, fmt.Errorf("create deployment: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("create deployment: %w", err)
	}
	*d = nd
	return d, true, nil
}

// Deployment returns one deployment, or ENOTFOUND.
func (db *DB) Deployment(ctx context.Context, id string) (*slipway.Deployment, error) {
	d, err := deploymentByID(ctx, db.read, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "deployment %q not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("get deployment %q: %w", id, err)
	}
	return d, nil
}

// Deployments lists a project's deployments, newest first; limit <= 0 means
// all. An unknown project has no deployments (no error).
func (db *DB) Deployments(ctx context.Context, project string, limit int) ([]*slipway.Deployment, error) {
	ds, err := db.queryDeployments(ctx, `SELECT `+deploymentColumns+` FROM deployments
	WHERE project = ? ORDER BY created_at DESC, id DESC LIMIT ?`, project, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list deployments of project %q: %w", project, err)
	}
	return ds, nil
}

// deploymentOfCommit is DeploymentOfCommit's query after its SELECT list.
const deploymentOfCommit = ` FROM deployments
	WHERE project = ? AND commit_sha = ? COLLATE NOCASE AND ref IN (?, 'refs/heads/' || ?)
	ORDER BY created_at DESC, id DESC LIMIT 1`

// DeploymentOfCommit returns the newest deployment of commit (compared
// without regard to case) made from branch in project, or ENOTFOUND. A
// deployment's ref counts as the branch spelled either way, "main" or
// "refs/heads/main". The index deployments_project_commit serves it.
func (db *DB) DeploymentOfCommit(ctx context.Context, project, branch, commit string) (*slipway.Deployment, error) {
	d, err := scanDeployment(db.read.QueryRowContext(ctx, `SELECT `+deploymentColumns+deploymentOfCommit, project, commit, branch, branch))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "no deployment of commit %s from branch %s in project %q", commit, branch, project)
	} else if err != nil {
		return nil, fmt.Errorf("find the deployment of commit %s in project %q: %w", commit, project, err)
	}
	return d, nil
}

// UnfinishedDeployments lists the queued and building deployments, oldest
// first.
func (db *DB) UnfinishedDeployments(ctx context.Context) ([]*slipway.Deployment, error) {
	ds, err := db.queryDeployments(ctx, `SELECT `+deploymentColumns+` FROM deployments
	WHERE `+unfinished+` ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list unfinished deployments: %w", err)
	}
	return ds, nil
}

// MarkBuilding moves a queued deployment to building and sets StartedAt to
// at (now if zero). Marking a building deployment again changes nothing, so
// a retried call is harmless. A finished deployment is not reopened:
// that is ECONFLICT. An unknown id is ENOTFOUND.
func (db *DB) MarkBuilding(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		at = db.now()
	}
	res, err := db.write.ExecContext(ctx, `UPDATE deployments
	SET status = 'building', started_at = COALESCE(started_at, ?)
	WHERE id = ? AND `+unfinished, formatTime(at), id)
	if err != nil {
		return fmt.Errorf("mark deployment %q building: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("mark deployment %q building: %w", id, err)
	} else if n == 1 {
		return nil
	}
	d, err := db.Deployment(ctx, id)
	if err != nil {
		return err
	}
	return slipway.Errorf(slipway.ECONFLICT, "deployment %q is already %s", id, d.Status)
}

// FinishDeployment records r as the result of a deployment that is still
// queued or building, with FinishedAt set to at (now if zero). If the
// deployment has already finished nothing changes and the result is
// dropped: the first result wins. r.Status must be terminal (EINVALID); an
// unknown id is ENOTFOUND.
func (db *DB) FinishDeployment(ctx context.Context, id string, r slipway.DeploymentResult, at time.Time) error {
	if !r.Status.Terminal() {
		return slipway.Errorf(slipway.EINVALID, "cannot finish deployment %q as %q: not a final status", id, r.Status)
	}
	if at.IsZero() {
		at = db.now()
	}
	timings, err := encodeTimings(r.Timings)
	if err != nil {
		return fmt.Errorf("finish deployment %q: %w", id, err)
	}
	steps, err := encodeList("steps", r.Steps)
	if err != nil {
		return fmt.Errorf("finish deployment %q: %w", id, err)
	}
	// A deployment that never started building has a complete, empty
	// log unless the caller says otherwise.
	var complete, completeAt any
	if r.LogComplete != nil {
		complete, completeAt = *r.LogComplete, formatTime(at)
		if !r.LogCompleteAt.IsZero() {
			completeAt = formatTime(r.LogCompleteAt)
		}
	}
	res, err := db.write.ExecContext(ctx, `UPDATE deployments
	SET status = ?, image = ?, digest = ?, error = ?, failed_step = ?, timings = ?, steps = ?, finished_at = ?,
		log_complete = COALESCE(?, CASE WHEN started_at IS NULL THEN 1 END),
		log_complete_at = COALESCE(?, CASE WHEN started_at IS NULL THEN ? END),
		log_lines = ?
	WHERE id = ? AND `+unfinished,
		string(r.Status), r.Image, r.Digest, r.Error, r.FailedStep, timings, steps, formatTime(at),
		complete, completeAt, formatTime(at), r.LogLines, id)
	if err != nil {
		return fmt.Errorf("finish deployment %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("finish deployment %q: %w", id, err)
	} else if n == 1 {
		return nil
	}
	_, err = db.Deployment(ctx, id) // already finished (no-op) or unknown
	return err
}

func deploymentByID(ctx context.Context, q rowQueryer, id string) (*slipway.Deployment, error) {
	return scanDeployment(q.QueryRowContext(ctx, `SELECT `+deploymentColumns+` FROM deployments WHERE id = ?`, id))
}

func deploymentByDelivery(ctx context.Context, q rowQueryer, deliveryID string) (*slipway.Deployment, error) {
	// "delivery_id <> ''" lets SQLite use the partial unique index.
	return scanDeployment(q.QueryRowContext(ctx, `SELECT `+deploymentColumns+` FROM deployments
	WHERE delivery_id = ? AND delivery_id <> ''`, deliveryID))
}

func (db *DB) queryDeployments(ctx context.Context, query string, args ...any) ([]*slipway.Deployment, error) {
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ds := []*slipway.Deployment{}
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d)
	}
	return ds, rows.Err()
}

func scanDeployment(s scanner) (*slipway.Deployment, error) {
	var (
		d                 slipway.Deployment
		trigger, status   string
		timings, created  string
		started, finished sql.NullString
		steps             string
		pruned            sql.NullString
		complete          sql.NullBool
		completeAt        sql.NullString
	)
	if err := s.Scan(&d.ID, &d.Project, &d.Ref, &d.Commit, &trigger, &status, &d.Image, &d.Digest, &d.Error,
		&d.FailedStep, &d.DeliveryID, &timings, &created, &started, &finished, &steps, &pruned,
		&complete, &completeAt, &d.LogLines, &d.Preview); err != nil {
		return nil, err
	}
	d.LogPruned = pruned.Valid
	if complete.Valid {
		d.LogComplete = &complete.Bool
	}
	d.Trigger, d.Status = slipway.Trigger(trigger), slipway.Status(status)
	var err error
	if d.Timings, err = decodeTimings(timings); err != nil {
		return nil, fmt.Errorf("deployment %q: %w", d.ID, err)
	}
	if d.Steps, err = decodeList[slipway.BuildStep]("steps", steps); err != nil {
		return nil, fmt.Errorf("deployment %q: %w", d.ID, err)
	}
	if d.CreatedAt, err = parseTime(created); err != nil {
		return nil, fmt.Errorf("deployment %q: %w", d.ID, err)
	}
	if d.StartedAt, err = parseNullTime(started); err != nil {
		return nil, fmt.Errorf("deployment %q: %w", d.ID, err)
	}
	if d.LogCompleteAt, err = parseNullTime(completeAt); err != nil {
		return nil, fmt.Errorf("deployment %q: %w", d.ID, err)
	}
	if d.FinishedAt, err = parseNullTime(finished); err != nil {
		return nil, fmt.Errorf("deployment %q: %w", d.ID, err)
	}
	return &d, nil
}

// encodeTimings stores an empty map as the empty string, which
// decodeTimings reads back as nil.
func encodeTimings(t map[string]int64) (string, error) {
	if len(t) == 0 {
		return "", nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("encode timings: %w", err)
	}
	return string(b), nil
}

func decodeTimings(s string) (map[string]int64, error) {
	if s == "" {
		return nil, nil
	}
	var t map[string]int64
	if err := json.Unmarshal([]byte(s), &t); err != nil {
		return nil, fmt.Errorf("decode timings %q: %w", s, err)
	}
	return t, nil
}

// encodeList stores list as a JSON array, an empty one as the empty
// string, which decodeList reads back as nil. what names the list in
// errors.
func encodeList[T any](what string, list []T) (string, error) {
	if len(list) == 0 {
		return "", nil
	}
	b, err := json.Marshal(list)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", what, err)
	}
	return string(b), nil
}

func decodeList[T any](what, s string) ([]T, error) {
	if s == "" {
		return nil, nil
	}
	var list []T
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return list, nil
}

// idEncoding is base32 with the "extended hex" alphabet in lower case: its
// characters are in ASCII order, so encoded IDs sort like the bytes.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// newDeploymentID returns "d-" and 26 characters encoding a UUIDv7. It is
// URL- and DNS-safe, and a later ID sorts after an earlier one: a UUIDv7
// starts with the Unix time in milliseconds, and github.com/google/uuid
// keeps IDs made in one process strictly increasing.
func newDeploymentID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new deployment id: %w", err)
	}
	return "d-" + idEncoding.EncodeToString(u[:]), nil
}
