package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ci/slipway"
)

// wake is one wake of one app in flight, shared by the requests that
// arrive while it lasts.
type wake struct {
	done chan struct{} // closed when res and err are set
	res  Woken
	err  error
	// timedOut says the wake did not end within Config.WakeTimeout.
	timedOut bool
	// waiting counts the requests held on this wake (guarded by
	// Gateway.mu).
	waiting int
}

// errQueueFull is join's answer when an app's wake holds
// Config.MaxQueuedPerApp requests already.
var errQueueFull = errors.New("too many requests waiting for the app to wake")

// hold waits until route's app serves, running its wake or sharing the
// one in flight, and returns the backend's address. When the wake fails
// or the client leaves, it answers w itself (if anyone listens) and
// reports false. The response of a held request carries Server-Timing:
// how long it was held, and the wake's phases.
func (g *Gateway) hold(w http.ResponseWriter, r *http.Request, route Route, app App) (string, bool) {
	held := time.Now()
	wk, leader, err := g.join(route, app)
	if err != nil {
		g.unavailable(w, r, "Too many requests are waiting for this app to start; try again in a moment.", 1)
		return "", false
	}
	defer g.leave(wk)
	if leader {
		g.run(route, app, wk)
	}
	select {
	case <-wk.done:
	case <-r.Context().Done():
		return "", false // the client left; nobody reads an answer
	}
	if wk.err != nil {
		g.wakeFailed(w, r, app, wk)
		return "", false
	}
	if len(wk.res.Phases) > 0 {
		w.Header().Set("Server-Timing", serverTiming(time.Since(held), wk.res.Phases))
	}
	return wk.res.Addr, true
}

// join returns the wake in flight of route, or a new one whose leader
// (the caller, then) runs it, and counts the caller as held on it. When
// the app serves already, it returns a finished wake with its address.
func (g *Gateway) join(route Route, app App) (wk *wake, leader bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	wk = g.wakes[route]
	if wk == nil {
		// A wake ends (its app serving) before it leaves the map, so an
		// app without a wake in flight that serves now was woken by
		// one that just ended.
		if addr, ok := app.Serving(); ok {
			wk = &wake{done: make(chan struct{}), res: Woken{Addr: addr}}
			close(wk.done)
			wk.waiting++
			return wk, false, nil
		}
		wk = &wake{done: make(chan struct{})}
		g.wakes[route] = wk
		leader = true
	}
	if wk.waiting >= g.cfg.MaxQueuedPerApp {
		return nil, false, errQueueFull
	}
	wk.waiting++
	return wk, leader, nil
}

// leave uncounts a request held on wk.
func (g *Gateway) leave(wk *wake) {
	g.mu.Lock()
	wk.waiting--
	g.mu.Unlock()
}

// run wakes app, bounded by Config.WakeTimeout and by Close but not by
// any one request (whoever started the wake may leave; the others still
// wait for it), then ends wk.
func (g *Gateway) run(route Route, app App, wk *wake) {
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.WakeTimeout)
	defer cancel()
	start := time.Now()
	res, err := app.Wake(ctx)
	if err == nil && res.Addr == "" {
		err = errors.New("the app's wake reported no address")
	}
	took := time.Since(start)
	wk.res, wk.err = res, err
	wk.timedOut = err != nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded))
	g.mu.Lock()
	if g.wakes[route] == wk {
		delete(g.wakes, route)
	}
	g.mu.Unlock()
	close(wk.done)
	log := g.cfg.Logger.With(slog.String("project", route.Project), slog.Int("preview", route.Preview),
		slog.Duration("took", took))
	if err != nil {
		log.Warn("app did not wake", slog.Bool("timed_out", wk.timedOut), slog.Any("error", err))
		return
	}
	if len(res.Phases) == 0 {
		// Nothing was started or thawed (an app re-checking which
		// release it serves): not worth a line at info, under traffic.
		log.Debug("app already serving")
		return
	}
	log.Info("app woke", slog.String("phases", phaseList(res.Phases)))
}

// waiting returns how many requests are held on route's wake in flight.
func (g *Gateway) waiting(route Route) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if wk := g.wakes[route]; wk != nil {
		return wk.waiting
	}
	return 0
}

// wakeFailed answers a request whose app did not wake.
func (g *Gateway) wakeFailed(w http.ResponseWriter, r *http.Request, app App, wk *wake) {
	lines := app.LastOutput(g.cfg.OutputLines)
	switch {
	case g.ctx.Err() != nil:
		g.unavailable(w, r, "The gateway is shutting down.", 0)
	case wk.timedOut:
		g.page(w, r, page{status: http.StatusGatewayTimeout, title: "The app did not start in time",
			message: "The app did not become healthy within " + g.cfg.WakeTimeout.String() + ".", output: lines})
	case slipway.ErrorCode(wk.err) == slipway.ENOTFOUND:
		g.page(w, r, page{status: http.StatusNotFound, title: "Nothing to serve", message: slipway.ErrorMessage(wk.err)})
	default:
		msg := "The app could not start."
		if slipway.ErrorCode(wk.err) != slipway.EINTERNAL {
			msg += " " + slipway.ErrorMessage(wk.err)
		}
		g.page(w, r, page{status: http.StatusBadGateway, title: "The app could not start", message: msg, output: lines})
	}
}

// serverTiming formats the Server-Timing header of a held request: how
// long it was held ("wake"), then the wake's phases, in milliseconds.
func serverTiming(held time.Duration, phases []Phase) string {
	var b strings.Builder
	b.WriteString("wake;dur=")
	b.WriteString(ms(held))
	for _, p := range phases {
		name := token(p.Name)
		if name == "" || name == "wake" {
			continue
		}
		b.WriteString(", ")
		b.WriteString(name)
		b.WriteString(";dur=")
		b.WriteString(ms(p.Dur))
	}
	return b.String()
}

// phaseList formats phases for the log: "start=400ms health=120ms".
func phaseList(phases []Phase) string {
	parts := make([]string, 0, len(phases))
	for _, p := range phases {
		parts = append(parts, token(p.Name)+"="+p.Dur.Round(100*time.Microsecond).String())
	}
	return strings.Join(parts, " ")
}

// ms formats d in milliseconds with one decimal.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

// token keeps the characters of s that may stand in a Server-Timing
// metric name.
func token(s string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return -1
	}, s)
}
