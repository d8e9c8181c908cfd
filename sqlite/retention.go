package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/slipway-ci/slipway"
)

var (
	_ slipway.LogPruner  = (*DB)(nil)
	_ slipway.LogLimiter = (*DB)(nil)
)

// SetLogLimit stores a project's per-deployment log limit (0: the
// default) and returns the project. Negative limits are EINVALID; an
// unknown project is ENOTFOUND. Deployments asked for from then on get it.
func (db *DB) SetLogLimit(ctx context.Context, project string, l slipway.LogLimit) (*slipway.Project, error) {
	if l.MaxLines < 0 || l.MaxBytes < 0 {
		return nil, slipway.Errorf(slipway.EINVALID, "log limits must not be negative")
	}
	res, err := db.write.ExecContext(ctx, `UPDATE projects SET log_max_lines = ?, log_max_bytes = ? WHERE name = ?`, l.MaxLines, l.MaxBytes, project)
	if err != nil {
		return nil, fmt.Errorf("set log limit of project %q: %w", project, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("set log limit of project %q: %w", project, err)
	} else if n == 0 {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", project)
	}
	return db.Project(ctx, project)
}

// retentionSeconds is r.MaxAge as stored: whole seconds, 0 for no limit.
func retentionSeconds(r slipway.LogRetention) int64 {
	return max(int64(r.MaxAge/time.Second), 0)
}

// SetLogRetention stores a project's log retention and returns the
// project. Negative limits are EINVALID; an unknown project is ENOTFOUND.
// The new limits apply from the next PruneLogs on.
func (db *DB) SetLogRetention(ctx context.Context, project string, r slipway.LogRetention) (*slipway.Project, error) {
	if r.MaxAge < 0 || r.MaxBytes < 0 {
		return nil, slipway.Errorf(slipway.EINVALID, "log retention limits must not be negative")
	}
	res, err := db.write.ExecContext(ctx, `UPDATE projects SET log_retention_seconds = ?, log_retention_bytes = ? WHERE name = ?`,
		retentionSeconds(r), r.MaxBytes, project)
	if err != nil {
		return nil, fmt.Errorf("set log retention of project %q: %w", project, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("set log retention of project %q: %w", project, err)
	} else if n == 0 {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "project %q not found", project)
	}
	return db.Project(ctx, project)
}

// PruneLogs applies every project's log retention as of now (see
// slipway.LogPruner). Each deployment's log goes in a transaction of its
// own, together with its rows in the search index and the deployment's
// log_pruned_at, so that log writers are held up for one deployment's
// delete at a time and a failure leaves no log half pruned. Only
// deployments in a terminal state are touched.
//
// The size counted is the log text's length in bytes, of every stored
// line of the project (those of running deployments included); the
// database file itself is larger (row and index overhead) and, SQLite
// being SQLite, does not shrink on disk: freed pages are reused.
func (db *DB) PruneLogs(ctx context.Context, now time.Time) (slipway.PruneResult, error) {
	var total slipway.PruneResult
	type project struct {
		name     string
		maxAge   time.Duration
		maxBytes int64
	}
	var projects []project
	rows, err := db.read.QueryContext(ctx, `SELECT name, log_retention_seconds, log_retention_bytes FROM projects
	WHERE log_retention_seconds > 0 OR log_retention_bytes > 0 ORDER BY name`)
	if err != nil {
		return total, fmt.Errorf("prune logs: %w", err)
	}
	for rows.Next() {
		var p project
		var secs int64
		if err := rows.Scan(&p.name, &secs, &p.maxBytes); err != nil {
			rows.Close()
			return total, fmt.Errorf("prune logs: %w", err)
		}
		p.maxAge = time.Duration(secs) * time.Second
		projects = append(projects, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return total, fmt.Errorf("prune logs: %w", err)
	}

	for _, p := range projects {
		if p.maxAge > 0 {
			if err := db.pruneByAge(ctx, p.name, now.Add(-p.maxAge), now, &total); err != nil {
				return total, err
			}
		}
		if p.maxBytes > 0 {
			if err := db.pruneBySize(ctx, p.name, p.maxBytes, now, &total); err != nil {
				return total, err
			}
		}
	}
	var err2 error
	total.AppLines, err2 = db.pruneAllAppLogs(ctx, now)
	return total, err2
}

// pruneByAge drops the logs of the project's deployments that ended
// before cutoff.
func (db *DB) pruneByAge(ctx context.Context, project string, cutoff, now time.Time, total *slipway.PruneResult) error {
	ids, err := db.queryStrings(ctx, `SELECT id FROM deployments
	WHERE project = ? AND status NOT IN ('queued', 'building') AND log_pruned_at IS NULL
	AND COALESCE(finished_at, created_at) < ? ORDER BY created_at, id`, project, formatTime(cutoff))
	if err != nil {
		return fmt.Errorf("prune logs of project %q by age: %w", project, err)
	}
	for _, id := range ids {
		if err := db.pruneDeploymentLog(ctx, id, now, total); err != nil {
			return err
		}
	}
	return nil
}

// pruneBySize drops the logs of the project's oldest ended deployments
// while the project's stored log text is larger than maxBytes.
func (db *DB) pruneBySize(ctx context.Context, project string, maxBytes int64, now time.Time, total *slipway.PruneResult) error {
	type deployment struct {
		id      string
		running bool
		bytes   int64
	}
	var ds []deployment
	var size int64
	rows, err := db.read.QueryContext(ctx, `SELECT d.id, d.status IN ('queued', 'building'),
	(SELECT COALESCE(SUM(LENGTH(CAST(l.text AS BLOB))), 0) FROM log_lines l WHERE l.deployment = d.id)
	FROM deployments d WHERE d.project = ? AND d.log_pruned_at IS NULL ORDER BY d.created_at, d.id`, project)
	if err != nil {
		return fmt.Errorf("prune logs of project %q by size: %w", project, err)
	}
	for rows.Next() {
		var d deployment
		if err := rows.Scan(&d.id, &d.running, &d.bytes); err != nil {
			rows.Close()
			return fmt.Errorf("prune logs of project %q by size: %w", project, err)
		}
		size += d.bytes
		ds = append(ds, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prune logs of project %q by size: %w", project, err)
	}
	for _, d := range ds {
		if size <= maxBytes {
			break
		}
		if d.running || d.bytes == 0 {
			continue
		}
		before := total.Bytes
		if err := db.pruneDeploymentLog(ctx, d.id, now, total); err != nil {
			return err
		}
		size -= total.Bytes - before
	}
	return nil
}

// pruneDeploymentLog deletes one ended deployment's log lines and their
// search index rows and marks the deployment pruned, in one transaction.
// A deployment that is running or already pruned is left alone.
func (db *DB) pruneDeploymentLog(ctx context.Context, id string, now time.Time, total *slipway.PruneResult) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("prune log of deployment %q: %w", id, err)
	}
	defer tx.Rollback()
	fail := func(err error) error { return fmt.Errorf("prune log of deployment %q: %w", id, err) }

	res, err := tx.ExecContext(ctx, `UPDATE deployments SET log_pruned_at = ?
	WHERE id = ? AND status NOT IN ('queued', 'building') AND log_pruned_at IS NULL`, formatTime(now), id)
	if err != nil {
		return fail(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fail(err)
	} else if n == 0 {
		return nil
	}
	var lines, bytes int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(text AS BLOB))), 0) FROM log_lines WHERE deployment = ?`,
		id).Scan(&lines, &bytes); err != nil {
		return fail(err)
	}
	if err := deleteLogLines(ctx, tx, `deployment = ?`, id); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	total.Deployments++
	total.Lines += lines
	total.Bytes += bytes
	return nil
}

// queryStrings returns the first column of the rows query selects.
func (db *DB) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// deleteLogLines deletes the log lines matching where (a condition on
// log_lines with one parameter, arg) and their search index entries,
// within tx.
func deleteLogLines(ctx context.Context, tx *sql.Tx, where string, arg any) error {
	// The index is an external-content FTS5 table: a row is removed by
	// its 'delete' command with the text it was indexed with, and only
	// rows the indexer has reached are in it (migration 6).
	if _, err := tx.ExecContext(ctx, `INSERT INTO log_lines_fts (log_lines_fts, rowid, text)
	SELECT 'delete', rowid, text FROM log_lines
	WHERE `+where+` AND rowid <= (SELECT indexed_upto FROM log_index WHERE id = 1)`, arg); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM log_lines WHERE `+where, arg); err != nil {
		return err
	}
	// SQLite gives a new row the largest rowid plus one: had the deleted
	// lines been the last ones, new lines would reuse rowids the indexer
	// believes it has done. Every rowid between the new largest and the
	// old mark is gone, so moving the mark back to the largest is exact.
	_, err := tx.ExecContext(ctx, `UPDATE log_index SET indexed_upto = (SELECT COALESCE(MAX(rowid), 0) FROM log_lines)
	WHERE id = 1 AND indexed_upto > (SELECT COALESCE(MAX(rowid), 0) FROM log_lines)`)
	return err
}
