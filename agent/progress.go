package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/slipway-ci/slipway"
)

// progressTimeout bounds one progress report (a Temporal signal and a NATS
// announcement).
const progressTimeout = 5 * time.Second

// progressReporter sends a deployment's progress to its workflow (see
// builder.SignalProgress for the design) from a goroutine of its own: the
// build only updates a value and never waits. Each report carries the
// whole state, so only the newest one matters: updates made while a report
// is on its way are coalesced into the next.
type progressReporter struct {
	send func(context.Context, slipway.Progress) error
	log  *slog.Logger

	mu      sync.Mutex
	p       slipway.Progress
	pending bool

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// startProgress starts a reporter whose first report is first.
func startProgress(send func(context.Context, slipway.Progress) error, first slipway.Progress, log *slog.Logger) *progressReporter {
	r := &progressReporter{send: send, log: log, p: first, pending: true,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	r.wake <- struct{}{}
	go r.run()
	return r
}

// update changes the state with f and has it reported.
func (r *progressReporter) update(f func(*slipway.Progress)) {
	if r == nil {
		return
	}
	r.mu.Lock()
	f(&r.p)
	r.pending = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// close reports the last state if it was not yet, and stops the reporter;
// safe to call more than once.
func (r *progressReporter) close() {
	if r == nil {
		return
	}
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

func (r *progressReporter) run() {
	defer close(r.done)
	for {
		select {
		case <-r.wake:
			r.flush()
		case <-r.stop:
			r.flush()
			return
		}
	}
}

// flush reports the state if it changed since the last report.
func (r *progressReporter) flush() {
	r.mu.Lock()
	if !r.pending {
		r.mu.Unlock()
		return
	}
	p := r.p
	r.pending = false
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), progressTimeout)
	defer cancel()
	if err := r.send(ctx, p); err != nil {
		// The API then shows an older state until the next report; the
		// build goes on regardless.
		r.log.Debug("report build progress", "phase", p.Phase, "error", err)
	}
}
