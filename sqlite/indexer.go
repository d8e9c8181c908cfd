package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// indexBatch is how many log lines the indexer adds to the search index
// in one transaction; indexPause is its pause between batches, which lets
// the lines of running builds be stored in between.
const (
	indexBatch = 2000
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
	for {
		for {
			n, err := indexStep(ctx, ix.db, indexBatch)
			ix.mu.Lock()
			ix.lastErr = err
			ix.mu.Unlock()
			if err != nil || n < indexBatch {
				break
			}
			select {
			case <-ix.stop:
				return
			case <-time.After(indexPause):
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

// indexStep adds up to limit log lines past log_index.indexed_upto to the
// search index and moves the mark past them, in one transaction, and
// returns how many it added. Concurrent callers (two processes on one
// file) each index different lines: the write transaction serialises them.
func indexStep(ctx context.Context, db *sql.DB, limit int) (int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("index log lines: %w", err)
	}
	defer tx.Rollback()
	var from int64
	if err := tx.QueryRowContext(ctx, `SELECT indexed_upto FROM log_index WHERE id = 1`).Scan(&from); err != nil {
		return 0, fmt.Errorf("index log lines: %w", err)
	}
	var upto sql.NullInt64
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT MAX(rowid), COUNT(*) FROM (SELECT rowid FROM log_lines WHERE rowid > ? ORDER BY rowid LIMIT ?)`,
		from, limit).Scan(&upto, &n); err != nil {
		return 0, fmt.Errorf("index log lines: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO log_lines_fts (rowid, text) SELECT rowid, text FROM log_lines WHERE rowid > ? AND rowid <= ?`,
		from, upto.Int64); err != nil {
		return 0, fmt.Errorf("index log lines: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE log_index SET indexed_upto = ? WHERE id = 1`, upto.Int64); err != nil {
		return 0, fmt.Errorf("index log lines: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("index log lines: %w", err)
	}
	return n, nil
}
