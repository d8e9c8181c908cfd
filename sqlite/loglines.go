package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/slipway-ci/slipway"
)

// AppendLogLines stores lines in one transaction: all or none. A line
// whose deployment and number are already stored is skipped (the stored
// line is kept), so redelivered lines are harmless. A line of an unknown
// deployment is ENOTFOUND.
//
// The archiver calls it with up to a thousand lines at a time: one
// prepared single-row INSERT per line. Multi-row INSERTs were slower
// (BenchmarkAppendLogLinesInserts, quiet machine: 118,716 lines/s one by
// one, 64,936 in INSERTs of 64 rows, 35,919 of 1000): a statement that
// writes several rows into pages the transaction already changed needs a
// statement journal, which SQLite allocates and frees (modernc's allocator
// maps and unmaps it) for every statement.
func (db *DB) AppendLogLines(ctx context.Context, lines []slipway.LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append log lines: %w", err)
	}
	defer tx.Rollback()
	if err := appendLogLinesOneByOne(ctx, tx, lines); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append log lines: %w", err)
	}
	db.indexer.poke() // the search index catches up in the background
	return nil
}

// insertLogLines is the INSERT of rows lines.
func insertLogLines(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT OR IGNORE INTO log_lines (deployment, n, time, stream, step, text) VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?, ?, ?, ?, ?)")
	}
	return b.String()
}

// appendLogLinesOneByOne inserts lines one INSERT each, in tx, and says
// which line failed and why.
func appendLogLinesOneByOne(ctx context.Context, tx *sql.Tx, lines []slipway.LogLine) error {
	stmt, err := tx.PrepareContext(ctx, insertLogLines(1))
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

var _ slipway.LogSearcher = (*DB)(nil)

// SearchLogLines returns the lines of q.Deployment that q selects, ordered
// by N. Terms of three or more characters are looked up in the full-text
// index (log_lines_fts, trigrams: substrings, ignoring case); shorter ones,
// and the lines the indexer has not reached yet, are matched with LIKE.
func (db *DB) SearchLogLines(ctx context.Context, q slipway.LogQuery) ([]slipway.LogLine, error) {
	where := []string{"l.deployment = ?", "l.n >= ?"}
	args := []any{q.Deployment, q.From}
	if q.Step != "" {
		where = append(where, "l.step = ?")
		args = append(args, q.Step)
	}
	var phrases, long []string
	for _, term := range slipway.SearchTerms(q.Search) {
		if utf8.RuneCountInString(term) >= 3 {
			phrases = append(phrases, ftsPhrase(term))
			long = append(long, term)
			continue
		}
		where = append(where, `l.text LIKE ? ESCAPE '\'`)
		args = append(args, "%"+likeEscaper.Replace(term)+"%")
	}
	if len(phrases) > 0 {
		// The index knows no deployments, but a deployment's lines lie
		// within a range of rowids (they are stored as they arrive): ask
		// it about that range only. Lines past indexed_upto are not in
		// the index yet: match those directly.
		var lo, hi sql.NullInt64
		var indexed int64
		err := db.read.QueryRowContext(ctx, `SELECT MIN(rowid), MAX(rowid), (SELECT indexed_upto FROM log_index) FROM log_lines WHERE deployment = ?`,
			q.Deployment).Scan(&lo, &hi, &indexed)
		if err != nil {
			return nil, fmt.Errorf("search log lines of deployment %q: %w", q.Deployment, err)
		}
		if !lo.Valid {
			return []slipway.LogLine{}, nil
		}
		likes := make([]string, len(long))
		for i := range long {
			likes[i] = `l.text LIKE ? ESCAPE '\'`
		}
		where = append(where, "((l.rowid <= ? AND l.rowid IN (SELECT rowid FROM log_lines_fts WHERE log_lines_fts MATCH ? AND rowid BETWEEN ? AND ?))"+
			" OR (l.rowid > ? AND "+strings.Join(likes, " AND ")+"))")
		args = append(args, indexed, strings.Join(phrases, " AND "), lo.Int64, min(hi.Int64, indexed), indexed)
		for _, term := range long {
			args = append(args, "%"+likeEscaper.Replace(term)+"%")
		}
	}
	args = append(args, sqlLimit(q.Limit))
	rows, err := db.read.QueryContext(ctx, `SELECT l.deployment, l.n, l.time, l.stream, l.step, l.text FROM log_lines l
	WHERE `+strings.Join(where, " AND ")+` ORDER BY l.n LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("search log lines of deployment %q: %w", q.Deployment, err)
	}
	defer rows.Close()
	lines := []slipway.LogLine{}
	for rows.Next() {
		var l slipway.LogLine
		var t string
		if err := rows.Scan(&l.Deployment, &l.N, &t, &l.Stream, &l.Step, &l.Text); err != nil {
			return nil, fmt.Errorf("search log lines of deployment %q: %w", q.Deployment, err)
		}
		if l.Time, err = parseTime(t); err != nil {
			return nil, fmt.Errorf("search log lines of deployment %q: %w", q.Deployment, err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search log lines of deployment %q: %w", q.Deployment, err)
	}
	return lines, nil
}

// ftsPhrase quotes s as an FTS5 string: a phrase, which the trigram
// tokenizer matches as a substring.
func ftsPhrase(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// likeEscaper escapes LIKE's wildcards for ESCAPE '\'.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
