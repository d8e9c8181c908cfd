package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/slipway-ci/slipway"
)

var _ slipway.AppLogStore = (*DB)(nil)

// AppendAppLogLines stores lines in one transaction (see
// slipway.AppLogStore).
func (db *DB) AppendAppLogLines(ctx context.Context, lines []slipway.AppLogLine) error {
	if len(lines) == 0 {
		return nil
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append app log lines: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO app_log_lines (project, n, release, time, stream, text) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("append app log lines: %w", err)
	}
	defer stmt.Close()
	for _, l := range lines {
		_, err := stmt.ExecContext(ctx, l.Project, l.N, l.Release, formatTime(l.Time), l.Stream, l.Text)
		if isConstraint(err, codeConstraintForeignKey) {
			return slipway.Errorf(slipway.ENOTFOUND, "project %q not found", l.Project)
		} else if err != nil {
			return fmt.Errorf("append app log line %d of project %q: %w", l.N, l.Project, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append app log lines: %w", err)
	}
	return nil
}

// AppLogLines returns the lines q selects, in order.
func (db *DB) AppLogLines(ctx context.Context, q slipway.AppLogQuery) ([]slipway.AppLogLine, error) {
	where := `project = ? AND n > ?`
	args := []any{q.Project, q.After}
	if q.Release != "" {
		where += ` AND release = ?`
		args = append(args, q.Release)
	}
	query := `SELECT project, n, release, time, stream, text FROM app_log_lines WHERE ` + where + ` ORDER BY n`
	if q.Tail > 0 {
		query = `SELECT * FROM (SELECT project, n, release, time, stream, text FROM app_log_lines WHERE ` + where +
			` ORDER BY n DESC LIMIT ?) ORDER BY n`
		args = append(args, q.Tail)
	}
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read app log of project %q: %w", q.Project, err)
	}
	defer rows.Close()
	lines := []slipway.AppLogLine{}
	for rows.Next() {
		l, err := scanAppLogLine(rows)
		if err != nil {
			return nil, fmt.Errorf("read app log of project %q: %w", q.Project, err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read app log of project %q: %w", q.Project, err)
	}
	return lines, nil
}

// LastAppLogLine returns the project's last stored app line, or ENOTFOUND.
func (db *DB) LastAppLogLine(ctx context.Context, project string) (*slipway.AppLogLine, error) {
	row := db.read.QueryRowContext(ctx, `SELECT project, n, release, time, stream, text FROM app_log_lines
	WHERE project = ? ORDER BY n DESC LIMIT 1`, project)
	l, err := scanAppLogLine(row)
	if err == sql.ErrNoRows {
		return nil, slipway.Errorf(slipway.ENOTFOUND, "project %q has no app output stored", project)
	} else if err != nil {
		return nil, fmt.Errorf("read the last app log line of project %q: %w", project, err)
	}
	return &l, nil
}

func scanAppLogLine(row interface{ Scan(...any) error }) (slipway.AppLogLine, error) {
	var l slipway.AppLogLine
	var t string
	if err := row.Scan(&l.Project, &l.N, &l.Release, &t, &l.Stream, &l.Text); err != nil {
		return l, err
	}
	var err error
	l.Time, err = parseTime(t)
	return l, err
}

// pruneAppLogs applies the project's log retention to its app output:
// lines older than maxAge (0: no limit) go, then the oldest while the
// text is larger than maxBytes (0: no limit), and always all but the
// last slipway.AppLogMaxLines. It returns how many lines it deleted.
func (db *DB) pruneAppLogs(ctx context.Context, project string, maxAge time.Duration, maxBytes int64, now time.Time) (int64, error) {
	var deleted int64
	exec := func(q string, args ...any) error {
		res, err := db.write.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("prune app log of project %q: %w", project, err)
		}
		n, _ := res.RowsAffected()
		deleted += n
		return nil
	}
	if maxAge > 0 {
		if err := exec(`DELETE FROM app_log_lines WHERE project = ? AND time < ?`, project, formatTime(now.Add(-maxAge))); err != nil {
			return deleted, err
		}
	}
	if maxBytes > 0 {
		// The newest lines whose text fits in maxBytes are kept.
		if err := exec(`DELETE FROM app_log_lines WHERE project = ? AND n < COALESCE((
			SELECT MIN(n) FROM (SELECT n, SUM(LENGTH(CAST(text AS BLOB))) OVER (ORDER BY n DESC) AS upto
				FROM app_log_lines WHERE project = ?) WHERE upto <= ?), 9223372036854775807)`, project, project, maxBytes); err != nil {
			return deleted, err
		}
	}
	err := exec(`DELETE FROM app_log_lines WHERE project = ? AND n <= (SELECT MAX(n) FROM app_log_lines WHERE project = ?) - ?`,
		project, project, slipway.AppLogMaxLines)
	return deleted, err
}

// pruneAllAppLogs applies pruneAppLogs to every project with app output.
func (db *DB) pruneAllAppLogs(ctx context.Context, now time.Time) (int64, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT name, log_retention_seconds, log_retention_bytes FROM projects
	WHERE EXISTS (SELECT 1 FROM app_log_lines WHERE project = name) ORDER BY name`)
	if err != nil {
		return 0, fmt.Errorf("prune app logs: %w", err)
	}
	type limits struct {
		name           string
		secs, maxBytes int64
	}
	var ps []limits
	for rows.Next() {
		var l limits
		if err := rows.Scan(&l.name, &l.secs, &l.maxBytes); err != nil {
			rows.Close()
			return 0, fmt.Errorf("prune app logs: %w", err)
		}
		ps = append(ps, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("prune app logs: %w", err)
	}
	var total int64
	for _, p := range ps {
		n, err := db.pruneAppLogs(ctx, p.name, time.Duration(p.secs)*time.Second, p.maxBytes, now)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
