package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// earlyWakeTimeout bounds one early wake.
const earlyWakeTimeout = 30 * time.Second

// earlyWaker starts a project's machine while Temporal schedules its build
// (deploy.ServiceConfig.EarlyWake), unless the build will wait for a slot:
// then the deployment's WakeMachine activity wakes it in time. A failed
// wake is only logged; the deployment wakes its machine itself. It owns
// the goroutines doing the wakes: Stop cancels and awaits them.
type earlyWaker struct {
	// free reports whether a build slot is free (deploy.Slots.Free).
	free func() bool
	// start starts the project's machine (slipway.MachineProvider.Start).
	start func(ctx context.Context, project string) error
	log   *slog.Logger

	mu      sync.Mutex
	stopped bool
	// stopCtx ends with Stop: wakes in progress are canceled.
	stopCtx context.Context
	stop    context.CancelFunc
	wakes   sync.WaitGroup
}

func newEarlyWaker(free func() bool, start func(ctx context.Context, project string) error, log *slog.Logger) *earlyWaker {
	stopCtx, stop := context.WithCancel(context.Background())
	return &earlyWaker{free: free, start: start, log: log, stopCtx: stopCtx, stop: stop}
}

// Wake starts project's machine in the background if a build slot is
// free. The wake outlives ctx (a request's) by up to earlyWakeTimeout, but
// not Stop.
func (w *earlyWaker) Wake(ctx context.Context, project string) {
	if !w.free() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), earlyWakeTimeout)
	unhook := context.AfterFunc(w.stopCtx, cancel)
	w.wakes.Add(1)
	go func() {
		defer w.wakes.Done()
		defer cancel()
		defer unhook()
		if err := w.start(ctx, project); err != nil {
			w.log.Warn("early wake failed; the deployment wakes its machine itself", "project", project, "error", err)
		}
	}()
}

// Stop cancels the wakes in progress and waits for them; later wakes do
// nothing. It is safe to call more than once.
func (w *earlyWaker) Stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.stop()
	w.wakes.Wait()
}
