package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway"
)

const projectColumns = `name, repo, branch, dockerfile, context, webhook_secret, created_at,
	log_retention_seconds, log_retention_bytes, build_args, hook_id, log_max_lines, log_max_bytes,
	app_memory_bytes, app_cpus, app_health_path, app_idle_timeout_ms, app_stop_after_ms, app_port, release_id`

// CreateProject stores p. An empty HookID is set to a new random one
// (newHookID), which p gets back. The name must pass slipway.ValidateProjectName
// (EINVALID) and the build arguments slipway.ValidateBuildArgs (EINVALID
// or ETOOLARGE), and the name must be free (ECONFLICT). A zero CreatedAt is set to now; p's
// CreatedAt is set to the UTC time stored, its BuildArgs sorted by name.
func (db *DB) CreateProject(ctx context.Context, p *slipway.Project) error {
	if p == nil {
		return slipway.Errorf(slipway.EINVALID, "no project given")
	}
	if err := slipway.ValidateProjectName(p.Name); err != nil {
		return err
	}
	if err := slipway.ValidateBuildArgs(p.BuildArgs); err != nil {
		return err
	}
	if err := p.App.Validate(); err != nil {
		return err
	}
	args := slices.Clone(p.BuildArgs)
	slipway.SortBuildArgs(args)
	argsJSON, err := encodeList("build arguments", args)
	if err != nil {
		return fmt.Errorf("create project %q: %w", p.Name, err)
	}
	created := p.CreatedAt
	if created.IsZero() {
		created = db.now()
	}
	created = created.UTC()
	hookID := p.HookID
	if hookID == "" {
		hookID = newHookID()
	}
	secret, err := db.sealedWebhookSecret(p.Name, p.WebhookSecret)
	if err != nil {
		return err
	}
	_, err = db.write.ExecContext(ctx, `INSERT INTO projects
	(name, repo, repo_key, branch, dockerfile, context, webhook_secret, created_at, log_retention_seconds, log_retention_bytes, build_args, hook_id,
	log_max_lines, log_max_bytes, app_memory_bytes, app_cpus, app_health_path, app_idle_timeout_ms, app_stop_after_ms, app_port)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.Name, p.Repo, slipway.NormalizeRepoURL(p.Repo), p.Branch, p.Dockerfile, p.Context, secret, formatTime(created),
		retentionSeconds(p.LogRetention), max(p.LogRetention.MaxBytes, 0), argsJSON, hookID,
		max(p.LogLimit.MaxLines, 0), max(p.LogLimit.MaxBytes, 0),
		p.App.MemoryBytes, p.App.CPUs, p.App.HealthPath, p.App.IdleTimeout.Milliseconds(), p.App.StopAfter.Milliseconds(), p.App.Port)
	if isConstraint(err, codeConstraintPrimaryKey, codeConstraintUnique) {
		return slipway.Errorf(slipway.ECONFLICT, "project %q already exists", p.Name)
	} else if err != nil {
		return fmt.Errorf("create project %q: %w", p.Name, err)
	}
	p.CreatedAt = created
	p.HookID = hookID
	if len(args) > 0 {
		p.BuildArgs = args
	}
	return nil
}

// SetBuildArgs changes a project's build arguments (see
// slipway.Store.SetBuildArgs) in one write transaction, so two changes
// at once both take effect.
func (db *DB) SetBuildArgs(ctx context.Context, project string, set []slipway.BuildArg, unset []string) (*slipway.Project, error) {
	fail := func(err error) error { return fmt.Errorf("set build arguments of project %q: %w", project, err) }
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fail(err)
	}
	defer tx.Rollback()
	var stored string
	err = tx.QueryRowContext(ctx, `SELECT build_args FROM projects WHERE name = ?`, project).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", project)
	} else if err != nil {
		return nil, fail(err)
	}
	cur, err := decodeList[slipway.BuildArg]("build arguments", stored)
	if err != nil {
		return nil, fail(err)
	}
	args, err := slipway.ChangeBuildArgs(project, cur, set, unset)
	if err != nil {
		return nil, err
	}
	enc, err := encodeList("build arguments", args)
	if err != nil {
		return nil, fail(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE projects SET build_args = ? WHERE name = ?`, enc, project); err != nil {
		return nil, fail(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fail(err)
	}
	return db.Project(ctx, project)
}

// Project returns the named project, or ENOTFOUND.
func (db *DB) Project(ctx context.Context, name string) (*slipway.Project, error) {
	p, err := db.scanProject(db.read.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", name)
	} else if err != nil {
		return nil, fmt.Errorf("get project %q: %w", name, err)
	}
	return p, nil
}

// Projects lists every project, ordered by name.
func (db *DB) Projects(ctx context.Context) ([]*slipway.Project, error) {
	ps, err := db.queryProjects(ctx, `SELECT `+projectColumns+` FROM projects ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return ps, nil
}

// ProjectsByRepo returns the projects, ordered by name, whose repository is
// one of urls once both are reduced by slipway.NormalizeRepoURL, so a
// webhook's clone, HTML or SSH URL all find a project registered with any
// of them.
func (db *DB) ProjectsByRepo(ctx context.Context, urls []string) ([]*slipway.Project, error) {
	seen := map[string]bool{}
	var keys []any
	for _, u := range urls {
		k := slipway.NormalizeRepoURL(u)
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return []*slipway.Project{}, nil
	}
	q := `SELECT ` + projectColumns + ` FROM projects WHERE repo_key IN (?` +
		strings.Repeat(", ?", len(keys)-1) + `) ORDER BY name`
	ps, err := db.queryProjects(ctx, q, keys...)
	if err != nil {
		return nil, fmt.Errorf("find projects by repository: %w", err)
	}
	return ps, nil
}

// ProjectByHookID returns the project whose webhook URL id is id, or
// ENOTFOUND (for the empty id too: no project has it).
func (db *DB) ProjectByHookID(ctx context.Context, id string) (*slipway.Project, error) {
	if id == "" {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "no project has webhook URL id %q", id)
	}
	p, err := db.scanProject(db.read.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE hook_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "no project has webhook URL id %q", id)
	} else if err != nil {
		return nil, fmt.Errorf("find project by webhook URL id: %w", err)
	}
	return p, nil
}

// newHookID returns a project's webhook URL id: 16 random bytes (128
// bits, unguessable) in lower-case hex, as migration 13 makes them.
func newHookID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

func (db *DB) queryProjects(ctx context.Context, query string, args ...any) ([]*slipway.Project, error) {
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ps := []*slipway.Project{}
	for rows.Next() {
		p, err := db.scanProject(rows)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, rows.Err()
}

// scanProject reads a project row, its webhook secret decrypted (empty
// when it cannot be).
func (db *DB) scanProject(s scanner) (*slipway.Project, error) {
	p, err := scanProjectRow(s)
	if err != nil {
		return nil, err
	}
	if err := db.openWebhookSecret(p); err != nil {
		// The key file was lost or replaced: the project stays readable
		// (and removable), and its webhook verifies no delivery (an empty
		// secret never does) until it is added again.
		p.WebhookSecret = ""
	}
	return p, nil
}

func scanProjectRow(s scanner) (*slipway.Project, error) {
	var p slipway.Project
	var created string
	var retentionSecs int64
	var buildArgs string
	var idleMS, stopMS int64
	if err := s.Scan(&p.Name, &p.Repo, &p.Branch, &p.Dockerfile, &p.Context, &p.WebhookSecret, &created,
		&retentionSecs, &p.LogRetention.MaxBytes, &buildArgs, &p.HookID, &p.LogLimit.MaxLines, &p.LogLimit.MaxBytes,
		&p.App.MemoryBytes, &p.App.CPUs, &p.App.HealthPath, &idleMS, &stopMS, &p.App.Port, &p.Release); err != nil {
		return nil, err
	}
	p.App.IdleTimeout = time.Duration(idleMS) * time.Millisecond
	p.App.StopAfter = time.Duration(stopMS) * time.Millisecond
	p.LogRetention.MaxAge = time.Duration(retentionSecs) * time.Second
	var err error
	if p.CreatedAt, err = parseTime(created); err != nil {
		return nil, err
	}
	if p.BuildArgs, err = decodeList[slipway.BuildArg]("build arguments", buildArgs); err != nil {
		return nil, err
	}
	return &p, nil
}

// DeleteProject removes project name and everything stored for it: its
// deployments' records and log lines (and their search index entries), its
// machine record and its build secrets, in one transaction. A project with
// a queued or building deployment is ECONFLICT (nothing is removed); an
// unknown one ENOTFOUND.
func (db *DB) DeleteProject(ctx context.Context, name string) error {
	fail := func(err error) error { return fmt.Errorf("delete project %q: %w", name, err) }
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	var exists int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM projects WHERE name = ?`, name).Scan(&exists); err != nil {
		return fail(err)
	} else if exists == 0 {
		return slipway.Errorf(slipway.ENOTFOUND, "project %q not found", name)
	}
	var running string
	err = tx.QueryRowContext(ctx, `SELECT id FROM deployments WHERE project = ? AND `+unfinished+` ORDER BY created_at LIMIT 1`, name).Scan(&running)
	if err == nil {
		return slipway.Errorf(slipway.ECONFLICT, "project %s has a deployment that has not ended (%s): cancel it (slipway cancel %s) or wait for it", name, running, running)
	} else if !errors.Is(err, sql.ErrNoRows) {
		return fail(err)
	}
	if err := deleteLogLines(ctx, tx, `deployment IN (SELECT id FROM deployments WHERE project = ?)`, name); err != nil {
		return fail(err)
	}
	for _, stmt := range []string{
		`DELETE FROM deployments WHERE project = ?`,
		`DELETE FROM machines WHERE project = ?`,
		`DELETE FROM projects WHERE name = ?`, // secrets go by ON DELETE CASCADE
	} {
		if _, err := tx.ExecContext(ctx, stmt, name); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return nil
}
