package server

import (
	"context"
	"log/slog"
)

// component is one part of the server (the store, Temporal, NATS, the
// HTTP listener, ...). Run starts the server's components one after the
// other, in the order of parts.components, and stops the started ones in
// reverse order: at shutdown, and when one fails to start.
type component struct {
	// name names the part in the messages of its stop.
	name string
	// start starts the part, with what the parts before it provide, and
	// returns once it serves. A start that fails has released whatever it
	// took. Nil: the part has nothing to start (stop only).
	start func(ctx context.Context) error
	// stop stops the part and returns once every goroutine it started has
	// ended. Nil: nothing to stop. It is called only after start succeeded.
	stop func(ctx context.Context) error
}

// startAll starts cs in order. It returns stopAll, which stops them in
// reverse order (a stop that fails is logged: the others stop anyway). When
// a start fails, the components started before it are stopped and its
// error is returned.
func startAll(ctx context.Context, cs []component, log *slog.Logger) (stopAll func(), err error) {
	var started []component
	stopAll = func() {
		// The stops outlive ctx, which has usually ended by now.
		sctx := context.WithoutCancel(ctx)
		for i := len(started) - 1; i >= 0; i-- {
			c := started[i]
			if c.stop == nil {
				continue
			}
			if err := c.stop(sctx); err != nil {
				log.Warn("stop "+c.name, "error", err)
			}
		}
	}
	for _, c := range cs {
		if c.start != nil {
			if err := c.start(ctx); err != nil {
				stopAll()
				return nil, err
			}
		}
		started = append(started, c)
	}
	return stopAll, nil
}

// noError adapts a stop that cannot fail.
func noError(f func()) func(context.Context) error {
	return func(context.Context) error {
		f()
		return nil
	}
}
