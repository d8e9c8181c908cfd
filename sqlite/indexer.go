package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// indexBatch and indexBatchBytes bound the log lines the indexer adds to
// the search index in one transaction (whichever is reached first; at
// least one line); indexPause is its pause between batches, which lets
// the lines of running builds be stored in between. The byte bound
// matters for binary output: the trigram index of 2000 lines of random
// bytes took seconds, holding the only write connection, and archiving a
// build's log fell tens of seconds behind the build.
const (
	indexBatch      = 2000
	indexBatchBytes = 1 << 20
	// indexYield is how many times as long as its last batch took the
	// indexer leaves the write connection to others before the next one.
	indexYield = 4
	indexPause = 20 * time.Millisecond
	indexEvery = time.Second
)

// indexer adds stored log lines to the full-text index in the
// background (see migration 6): storing a build's output never waits for
// the index.
type indexer struct {
	db   *sql.DB
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	lastErr error
}

func startIndexer(db *sql.DB) *indexer {
	ix := &indexer{db: db, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go ix.run()
	return ix
}

// poke tells the indexer there are new lines.
func (ix *indexer) poke() {
	if ix == nil {
		return
	}
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

// close stops the indexer and waits for it; safe to call more than once.
func (ix *indexer) close() {
	if ix == nil {
		return
	}
	ix.once.Do(func() { close(ix.stop) })
	<-ix.done
}

func (ix *indexer) run() {
	defer close(ix.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ix.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(indexEvery)
	defer tick.Stop()
	var rest time.Duration // the pause owed before the next batch
	for {
		for {
			if !ix.pause(rest) {
				return
			}
			start := time.Now()
			more, err := indexStep(ctx, ix.db, indexBatch, indexBatchBytes)
			rest = max(indexPause, indexYield*time.Since(start))
			ix.mu.Lock()
			ix.lastErr = err
			ix.mu.Unlock()
			if err != nil || !more {
				break
			}
		}
		select {
		case <-ix.stop:
			return
		case <-ix.wake:
		case <-tick.C:
		}
	}
}

// pause waits d, or returns false if the indexer is stopped first.
func (ix *indexer) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ix.stop:
		return false
	case <-t.C:
		return true
	}
}

// indexStep adds up to limit log lines past log_index.indexed_upto, and
// at most maxBytes of text unless the first line alone is longer, to the
// search index and moves the mark past them, in one transaction. It
// reports whether it stopped at a bound (more lines may wait). Concurrent
// callers (two processes on one file) each index different lines: the
// write transaction serialises them.
func indexStep(ctx context.Context, db *sql.DB, limit, maxBytes int) (more bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("index log lines: %w", err)
	}
	defer tx.Rollback()
	var from int64
	if err := tx.QueryRowContext(ctx, `SELECT indexed_upto FROM log_index WHERE id = 1`).Scan(&from); err != nil {
		return false, fmt.Errorf("index log lines: %w", err)
	}
	var upto sql.NullInt64
	var n, candidates int
	if err := tx.QueryRowContext(ctx, `SELECT MAX(CASE WHEN acc <= ? OR rn = 1 THEN rowid END), COALESCE(SUM(acc <= ? OR rn = 1), 0), COUNT(*) FROM (
		SELECT rowid, SUM(size) OVER w AS acc, ROW_NUMBER() OVER w AS rn FROM (
			SELECT rowid, length(CAST(text AS BLOB)) AS size FROM log_lines WHERE rowid > ? ORDER BY rowid LIMIT ?)
		WINDOW w AS (ORDER BY rowid ROWS UNBOUNDED PRECEDING))`,
		maxBytes, maxBytes, from, limit).Scan(&upto, &n, &candidates); err != nil {
		return false, fmt.Errorf("index log lines: %w", err)
	}
	if candidates == 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO log_lines_fts (rowid, text) SELECT rowid, text FROM log_lines WHERE rowid > ? AND rowid <= ?`,
		from, upto.Int64); err != nil {
		return false, fmt.Errorf("index log lines: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE log_index SET indexed_upto = ? WHERE id = 1`, upto.Int64); err != nil {
		return false, fmt.Errorf("index log lines: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("index log lines: %w", err)
	}
	return n < candidates || candidates == limit, nil
}
