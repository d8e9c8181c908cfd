package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/slipway-ci/slipway"
)

// DefaultLogPruneEvery is how often the server applies the projects' log
// retention when Config.LogPruneEvery is not set.
const DefaultLogPruneEvery = 10 * time.Minute

// startLogPruner applies the projects' log retention once now and then
// every interval, until the returned stop is called (which waits for a
// pass in progress to end). Failures are logged and retried at the next
// pass: retention is housekeeping and must never stop the server.
func startLogPruner(ctx context.Context, p slipway.LogPruner, every time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			start := time.Now()
			res, err := p.PruneLogs(ctx, start)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Error("log retention", "error", err)
			case res.Deployments > 0 || res.AppLines > 0:
				log.Info("log retention pruned old logs", "deployments", res.Deployments, "lines", res.Lines, "bytes", res.Bytes,
					"app_lines", res.AppLines, "took", time.Since(start).Round(time.Millisecond))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(cancel)
		wg.Wait()
	}
}
