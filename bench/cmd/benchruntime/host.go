package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/gateway"
)

// host is the wiring `slipway server` has between the gateway and the
// app runtime (server/apps.go's appHost), without the store: each project
// has one instance, which serves until the benchmark puts it to sleep.
// It implements gateway.Apps.
type host struct {
	rt *apps.Runtime

	mu   sync.Mutex
	apps map[string]*app
}

func newHost(rt *apps.Runtime) *host { return &host{rt: rt, apps: map[string]*app{}} }

// Lookup implements gateway.Apps.
func (h *host) Lookup(route gateway.Route) (gateway.App, bool) {
	if route.Preview != 0 {
		return nil, false
	}
	h.mu.Lock()
	a, ok := h.apps[route.Project]
	h.mu.Unlock()
	return a, ok
}

// add serves inst as its project's app.
func (h *host) add(inst *apps.Instance) *app {
	a := &app{rt: h.rt, inst: inst}
	a.setServing(true)
	h.mu.Lock()
	h.apps[inst.Project] = a
	h.mu.Unlock()
	return a
}

// app is one project's app: implements gateway.App as projectApp does.
type app struct {
	rt   *apps.Runtime
	inst *apps.Instance

	addr atomic.Pointer[string]
	open atomic.Int64
	// last is the report of the last wake.
	mu   sync.Mutex
	last apps.WakeReport
}

func (a *app) setServing(on bool) {
	addr := ""
	if on {
		addr = a.inst.Addr()
	}
	a.addr.Store(&addr)
}

// Serving implements gateway.App.
func (a *app) Serving() (string, bool) {
	if p := a.addr.Load(); p != nil && *p != "" {
		return *p, true
	}
	return "", false
}

// Begin implements gateway.App.
func (a *app) Begin() func() {
	a.open.Add(1)
	return a.end
}

func (a *app) end() { a.open.Add(-1) }

// Wake implements gateway.App.
func (a *app) Wake(ctx context.Context) (gateway.Woken, error) {
	rep, err := a.rt.Wake(ctx, a.inst)
	a.mu.Lock()
	a.last = rep
	a.mu.Unlock()
	if err != nil {
		return gateway.Woken{}, err
	}
	a.setServing(true)
	var phases []gateway.Phase
	switch rep.From {
	case apps.Frozen:
		phases = []gateway.Phase{{Name: "thaw", Dur: rep.Thaw}}
	case apps.Stopped, apps.Failed:
		phases = []gateway.Phase{{Name: "start", Dur: rep.Start}, {Name: "health", Dur: rep.Health}}
	}
	return gateway.Woken{Addr: a.inst.Addr(), Phases: phases}, nil
}

// lastWake returns the report of the last wake.
func (a *app) lastWake() apps.WakeReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// LastOutput implements gateway.App.
func (a *app) LastOutput(n int) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lines, _ := a.rt.Logs(ctx, a.inst, n)
	return lines
}

// sleep puts the app to sleep at depth (apps.Frozen or apps.Stopped), as
// the idle timers do: not serving first, then frozen or stopped.
func (a *app) sleep(ctx context.Context, gw *gateway.Gateway, depth apps.State) error {
	// A request's end is counted when the gateway's handler returns,
	// which may be just after its client read the answer.
	for deadline := time.Now().Add(5 * time.Second); a.open.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("app %s: %d requests are open", a.inst.Name, a.open.Load())
		}
	}
	a.setServing(false)
	if depth == apps.Frozen {
		return a.rt.Freeze(ctx, a.inst)
	}
	if err := a.rt.Stop(ctx, a.inst); err != nil {
		return err
	}
	gw.CloseIdleConnections()
	return nil
}
