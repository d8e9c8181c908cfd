package server

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
)

// An early wake runs only while a build slot is free; Stop cancels the
// wakes in progress and returns once they ended; a wake after Stop does
// nothing.
func TestEarlyWaker(t *testing.T) {
	free := atomic.Bool{}
	var calls atomic.Int32
	started, ended := make(chan struct{}, 1), make(chan struct{}, 1)
	w := newEarlyWaker(free.Load, func(ctx context.Context, project string) error {
		calls.Add(1)
		started <- struct{}{}
		<-ctx.Done()
		ended <- struct{}{}
		return ctx.Err()
	}, slog.New(slog.DiscardHandler))

	w.Wake(t.Context(), "web")
	if n := calls.Load(); n != 0 {
		t.Errorf("wakes without a free slot = %d, want 0", n)
	}
	free.Store(true)
	// The request's context ending does not end the wake.
	req, cancel := context.WithCancel(t.Context())
	w.Wake(req, "web")
	cancel()
	<-started
	select {
	case <-ended:
		t.Fatal("the wake ended with the request's context")
	default:
	}
	w.Stop()
	select {
	case <-ended:
	default:
		t.Fatal("Stop returned before the wake in progress ended")
	}
	w.Wake(t.Context(), "web")
	w.Stop()
	if n := calls.Load(); n != 1 {
		t.Errorf("wakes = %d, want 1 (none after Stop)", n)
	}
}
