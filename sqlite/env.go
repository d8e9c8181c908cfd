package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/slipway-ci/slipway"
)

var (
	_ slipway.EnvStore         = (*DB)(nil)
	_ slipway.AppSettingsStore = (*DB)(nil)
)

// A project's runtime environment (the variables its app is started with)
// is kept in project_env, sealed like build secrets (see secrets.go): with
// AES-256-GCM under a key derived from secrets.key for this purpose only,
// a random nonce per value, and the project and name as additional data, so
// a sealed value cannot be moved to another variable, project or table.

// SetAppSettings implements slipway.AppSettingsStore.
func (db *DB) SetAppSettings(ctx context.Context, project string, a slipway.AppSettings) (*slipway.Project, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	res, err := db.write.ExecContext(ctx, `UPDATE projects SET app_memory_bytes = ?, app_cpus = ?, app_health_path = ?,
	app_idle_timeout_ms = ?, app_stop_after_ms = ?, app_port = ? WHERE name = ?`,
		a.MemoryBytes, a.CPUs, a.HealthPath, a.IdleTimeout.Milliseconds(), a.StopAfter.Milliseconds(), a.Port, project)
	if err != nil {
		return nil, fmt.Errorf("set app settings of project %q: %w", project, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("set app settings of project %q: %w", project, err)
	} else if n == 0 {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", project)
	}
	return db.Project(ctx, project)
}

// SetEnv implements slipway.EnvStore. The count limit is checked in the
// write transaction, so two SetEnv at once cannot pass it.
func (db *DB) SetEnv(ctx context.Context, project, name string, value []byte) (*slipway.EnvVar, error) {
	if err := slipway.ValidateEnv(name, value); err != nil {
		return nil, err
	}
	if _, err := db.Project(ctx, project); err != nil {
		return nil, err
	}
	sealed, err := db.seal(runtimeEnv, project, name, value)
	if err != nil {
		return nil, err
	}
	v := &slipway.EnvVar{Project: project, Name: name, UpdatedAt: db.now().UTC()}
	if err := db.storeEnv(ctx, v, sealed, len(value)); err != nil {
		return nil, err
	}
	return v, nil
}

// sealOverhead is what sealing adds to a value: the nonce and GCM's tag.
const sealOverhead = 12 + 16

// storeEnv writes v's sealed value (of a value of size bytes), refusing
// a new variable past slipway.MaxEnvVars and an environment past
// slipway.MaxEnvBytes.
func (db *DB) storeEnv(ctx context.Context, v *slipway.EnvVar, sealed []byte, size int) error {
	fail := func(err error) error {
		return fmt.Errorf("set environment variable %s of %s: %w", v.Name, v.Project, err)
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	var n, others int
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(max(name = ?), 0),
	coalesce(sum(CASE WHEN name = ? THEN 0 ELSE length(name) + 1 + length(sealed) - ? END), 0) FROM project_env WHERE project = ?`,
		v.Name, v.Name, sealOverhead, v.Project).Scan(&n, &exists, &others); err != nil {
		return fail(err)
	}
	if !exists && n >= slipway.MaxEnvVars {
		return slipway.Errorf(slipway.ETOOLARGE, "project %s has %d environment variables, the most it may have: remove one first (slipway env rm)", v.Project, n)
	}
	if total := others + len(v.Name) + 1 + size; total > slipway.MaxEnvBytes {
		return slipway.Errorf(slipway.ETOOLARGE, "the environment of %s would take %d bytes with %s: the limit is %d bytes (256 KiB) for names and values together", v.Project, total, v.Name, slipway.MaxEnvBytes)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO project_env (project, name, sealed, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (project, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at`,
		v.Project, v.Name, sealed, formatTime(v.UpdatedAt))
	if isConstraint(err, codeConstraintForeignKey) {
		return slipway.Errorf(slipway.ENOTFOUND, "project %q not found", v.Project)
	} else if err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return nil
}

// DeleteEnv implements slipway.EnvStore.
func (db *DB) DeleteEnv(ctx context.Context, project, name string) (*slipway.EnvVar, error) {
	t, err := db.deleteSealed(ctx, runtimeEnv, project, name)
	if slipway.ErrorCode(err) == slipway.ENOTFOUND {
		if _, perr := db.Project(ctx, project); perr != nil {
			return nil, perr
		}
	}
	if err != nil {
		return nil, err
	}
	return &slipway.EnvVar{Project: project, Name: name, UpdatedAt: t}, nil
}

// Env implements slipway.EnvStore.
func (db *DB) Env(ctx context.Context, project string) ([]*slipway.EnvVar, error) {
	out := []*slipway.EnvVar{}
	err := db.listSealed(ctx, runtimeEnv, project, func(name string, updated time.Time) {
		out = append(out, &slipway.EnvVar{Project: project, Name: name, UpdatedAt: updated})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EnvValues implements slipway.EnvStore: the runtime environment a server
// starts project's app with (Slipway adds PORT), decrypted. A value that
// cannot be decrypted (secrets.key replaced) is EINTERNAL naming it.
func (db *DB) EnvValues(ctx context.Context, project string) ([]slipway.EnvValue, error) {
	out := []slipway.EnvValue{}
	err := db.openSealed(ctx, runtimeEnv, project, func(name string, value, _ []byte) {
		out = append(out, slipway.EnvValue{Name: name, Value: value})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

var _ slipway.ReleaseStore = (*DB)(nil)

// SetRelease implements slipway.ReleaseStore.
func (db *DB) SetRelease(ctx context.Context, project, deployment string) error {
	var owner string
	err := db.read.QueryRowContext(ctx, `SELECT project FROM deployments WHERE id = ?`, deployment).Scan(&owner)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return slipway.Errorf(slipway.ENOTFOUND, "deployment %q not found", deployment)
		}
		return fmt.Errorf("set the release of project %q: %w", project, err)
	}
	if owner != project {
		return slipway.Errorf(slipway.EINVALID, "deployment %s is not one of project %q", deployment, project)
	}
	res, err := db.write.ExecContext(ctx, `UPDATE projects SET release_id = ? WHERE name = ?`, deployment, project)
	if err != nil {
		return fmt.Errorf("set the release of project %q: %w", project, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set the release of project %q: %w", project, err)
	} else if n == 0 {
		return slipway.Errorf(slipway.ENOTFOUND, "project %q not found", project)
	}
	return nil
}
