package sqlite

import (
	"context"
	"fmt"

	"github.com/slipway-ci/slipway"
)

// AppendLogLines stores lines in one transaction: all or none. A line
// whose deployment and number are already stored is skipped (the stored
// line is kept), so redelivered lines are harmless. A line of an unknown
// deployment is ENOTFOUND.
func (db *DB) AppendLogLines(ctx context.Context, lines []slipway.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append log lines: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO log_lines (deployment, n, time, stream, step, text)
	VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("append log lines: %w", err)
	}
	defer stmt.Close()
	for _, l := range lines {
		_, err := stmt.ExecContext(ctx, l.Deployment, l.N, formatTime(l.Time), l.Stream, l.Step, l.Text)
		if isConstraint(err, codeConstraintForeignKey) {
			return slipway.Errorf(slipway.ENOTFOUND, "deployment %q not found", l.Deployment)
		} else if err != nil {
			return fmt.Errorf("append log line %d of deployment %q: %w", l.N, l.Deployment, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append log lines: %w", err)
	}
	return nil
}

// LogLines returns a deployment's lines with N >= from, ordered by N; limit
// <= 0 means all. An unknown deployment has no lines (no error).
func (db *DB) LogLines(ctx context.Context, deployment string, from int64, limit int) ([]slipway.LogLine, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT deployment, n, time, stream, step, text FROM log_lines
	WHERE deployment = ? AND n >= ? ORDER BY n LIMIT ?`, deployment, from, sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("read log lines of deployment %q: %w", deployment, err)
	}
	defer rows.Close()
	lines := []slipway.LogLine{}
	for rows.Next() {
		var l slipway.LogLine
		var t string
		if err := rows.Scan(&l.Deployment, &l.N, &t, &l.Stream, &l.Step, &l.Text); err != nil {
			return nil, fmt.Errorf("read log lines of deployment %q: %w", deployment, err)
		}
		if l.Time, err = parseTime(t); err != nil {
			return nil, fmt.Errorf("read log lines of deployment %q: %w", deployment, err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read log lines of deployment %q: %w", deployment, err)
	}
	return lines, nil
}
