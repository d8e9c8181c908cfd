// Package sqlite implements slipway.Store on one SQLite database file, using
// the pure-Go driver modernc.org/sqlite.
//
// It owns the schema (see migrations) and turns SQLite failures into
// slipway's coded errors: a taken name is ECONFLICT, a missing row is
// ENOTFOUND. It keeps the data consistent (one deployment per webhook
// delivery, the first result of a deployment wins) but holds no other
// business rules: deciding whether a push deploys, starting workflows or
// talking to builders belongs to other packages. It must not import other
// adapter packages, and must not show SQL or driver errors to users as
// anything but internal errors.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/slipway-ci/slipway"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DB is a slipway.Store backed by an SQLite file. It is safe for concurrent
// use: writes go through one connection (so goroutines queue in Go instead
// of failing with "database is locked"), reads use a pool of read-only
// connections that WAL mode lets run while a write is in progress.
type DB struct {
	path    string
	write   *sql.DB
	read    *sql.DB
	now     func() time.Time
	indexer *indexer
	// tokenByHash is prepared once: every API request looks its token up,
	// and parsing the SQL each time cost more than the lookup.
	tokenByHash *sql.Stmt

	// keyMu guards key, the secrets key once read (see secrets.go).
	keyMu sync.Mutex
	key   []byte
}

var _ slipway.Store = (*DB)(nil)

// Open opens the database file at path, creating it if it does not exist,
// and brings its schema up to date. The file's directory must exist.
//
// Open fails with an error wrapping ErrNewerSchema if the file was written by
// a newer Slipway whose schema this one does not know.
func Open(path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open sqlite database: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	db := &DB{path: abs, now: time.Now}

	db.write, err = sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	// One writer: SQLite allows one write transaction at a time anyway, and
	// queueing on database/sql's pool never times out the way SQLITE_BUSY does.
	db.write.SetMaxOpenConns(1)
	db.write.SetConnMaxIdleTime(0)
	db.write.SetConnMaxLifetime(0)

	ctx := context.Background()
	if err := db.write.PingContext(ctx); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	if err := migrate(ctx, db.write, migrations, func() ([]byte, error) { return db.secretsKey(true) }); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}

	db.read, err = sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	db.read.SetMaxOpenConns(n)
	db.read.SetMaxIdleConns(n)
	if err := db.read.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	db.tokenByHash, err = db.read.PrepareContext(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE hash = ?`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	db.indexer = startIndexer(db.write)
	return db, nil
}

// dsn returns the driver's data source name for the file at abs. Every
// connection the pool opens runs the _pragma values, which matters for the
// per-connection settings (busy_timeout, foreign_keys, synchronous).
func dsn(abs string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)") // persistent: stored in the file
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// that reads then writes never fails with SQLITE_BUSY half-way
		// (which busy_timeout cannot help with) when another process
		// writes the same file.
		q.Set("_txlock", "immediate")
	}
	// A file: URI escapes '?', '#' and '%' in the path; SQLite decodes them.
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}).String()
}

// Close closes the database. Calls made after Close fail.
func (db *DB) Close() error {
	db.indexer.close()
	var errs []error
	if db.tokenByHash != nil {
		errs = append(errs, db.tokenByHash.Close())
	}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	errs = append(errs, db.write.Close())
	return errors.Join(errs...)
}

// timeLayout is RFC 3339 with a fixed nine-digit fraction, always in UTC:
// stored times keep nanoseconds and compare correctly as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

func nullTime(t *time.Time) sql.NullString {
	if t == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(*t), Valid: true}
}

func parseNullTime(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// Extended SQLite result codes (https://www.sqlite.org/rescode.html) that
// the store maps to application errors.
const (
	codeConstraintForeignKey = 787
	codeConstraintPrimaryKey = 1555
	codeConstraintUnique     = 2067
)

// sqliteCode returns the extended result code of the SQLite error in err's
// chain, or 0. It matches the driver's error by method so that the driver
// package is only imported for its side effect.
func sqliteCode(err error) int {
	var e interface{ Code() int }
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// isConstraint reports whether err is an SQLite constraint violation with
// one of the given extended codes.
func isConstraint(err error, codes ...int) bool {
	c := sqliteCode(err)
	for _, want := range codes {
		if c == want {
			return true
		}
	}
	return false
}

// rowQueryer is what *sql.DB and *sql.Tx have in common for single-row reads.
type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// sqlLimit turns "limit <= 0 means all" into SQLite's LIMIT -1.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}
