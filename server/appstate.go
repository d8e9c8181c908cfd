package server

import (
	"context"
	"errors"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/gateway"
)

// wakeRecord is one wake of an app that did something (a thaw, a start).
type wakeRecord struct {
	at   time.Time
	took time.Duration
}

// noteWake records a wake that began at start if it woke the app (it
// has phases); Wake defers it.
func (a *projectApp) noteWake(start time.Time, w *gateway.Woken, err *error) {
	if *err == nil && len(w.Phases) > 0 {
		a.lastWake.Store(&wakeRecord{at: start, took: time.Since(start)})
	}
}

// status says what the project's app does now, for the API: the state
// of the release it runs (asked of podman when it does not serve), else
// whether anything is deployed.
func (h *appHost) status(ctx context.Context, project string) (slipway.AppStatus, error) {
	a := h.app(project)
	st := slipway.AppStatus{State: slipway.AppNone}
	if w := a.lastWake.Load(); w != nil {
		st.LastWake, st.LastWakeDuration = w.at, w.took
	}
	inst := a.cur.Load()
	if inst == nil {
		d, err := a.currentRelease(ctx)
		if slipway.ErrorCode(err) == slipway.ENOTFOUND {
			return st, nil
		} else if err != nil {
			return st, err
		}
		// Deployed, never run since the server started: its container
		// (if any) is stopped, and the first request starts it.
		st.State, st.Release = slipway.AppStopped, d.ID
		return st, nil
	}
	st.Release = inst.Release
	if r := a.serves(); r != "" {
		st.Release = r // a rollback serves an earlier release's container
	}
	if addr := a.addr.Load(); addr != nil && *addr != "" {
		st.State = slipway.AppServing
		return st, nil
	}
	if out := a.lastOutput.Load(); out != nil && len(*out) > 0 {
		st.State = slipway.AppFailed // its last wake did not become healthy
		return st, nil
	}
	s, err := h.rt.State(ctx, inst)
	switch {
	case errors.Is(err, apps.ErrNotFound):
		st.State = slipway.AppStopped
	case err != nil:
		return st, err
	case s == apps.Running:
		st.State = slipway.AppServing
	case s == apps.Frozen:
		st.State = slipway.AppFrozen
	case s == apps.Failed:
		st.State = slipway.AppFailed
	default:
		st.State = slipway.AppStopped
	}
	return st, nil
}
