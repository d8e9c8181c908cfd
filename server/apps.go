package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/gateway"
)

// releaseRecheck is how long a serving app is trusted to run its
// project's current release: after it, the next request goes through a
// wake, which reads the current release from the store and switches to
// it if it changed (a new deployment, a rollback).
const releaseRecheck = 2 * time.Second

// appHost implements gateway.Apps over the app runtime and the store: a
// project's app runs its current release, the image of its latest
// succeeded deployment (a rollback is a deployment too).
type appHost struct {
	rt        *apps.Runtime
	store     slipway.Store
	log       *slog.Logger
	idle      time.Duration // running with no open request → frozen
	stopAfter time.Duration // since the last request → stopped

	mu     sync.Mutex
	apps   map[string]*projectApp
	closed bool
}

func newAppHost(rt *apps.Runtime, store slipway.Store, idle, stopAfter time.Duration, log *slog.Logger) *appHost {
	return &appHost{rt: rt, store: store, log: log, idle: idle, stopAfter: stopAfter, apps: map[string]*projectApp{}}
}

// Lookup implements gateway.Apps. A project not seen yet is looked up in
// the store (one indexed read), so that names that are no project get a
// 404 and no entry. Previews are not served yet.
func (h *appHost) Lookup(route gateway.Route) (gateway.App, bool) {
	if route.Preview != 0 {
		return nil, false
	}
	h.mu.Lock()
	a, ok := h.apps[route.Project]
	h.mu.Unlock()
	if ok {
		return a, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.store.Project(ctx, route.Project); err != nil {
		if slipway.ErrorCode(err) != slipway.ENOTFOUND {
			h.log.Warn("apps: look up project", "project", route.Project, "error", err)
		}
		return nil, false
	}
	return h.app(route.Project), true
}

// app returns the project's app, made on first use.
func (h *appHost) app(project string) *projectApp {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.apps[project]
	if !ok {
		a = &projectApp{h: h, project: project}
		h.apps[project] = a
	}
	return a
}

// adopt takes over the containers a restarted server finds
// (apps.Runtime.Reconcile): a project's running one serves until its idle
// timer puts it to sleep, a frozen one is stopped at stop-after unless a
// request wakes it first.
func (h *appHost) adopt(ctx context.Context) error {
	insts, err := h.rt.Reconcile(ctx)
	if err != nil {
		return err
	}
	for _, inst := range insts {
		st, err := h.rt.State(ctx, inst)
		if err != nil || (st != apps.Running && st != apps.Frozen) {
			continue
		}
		a := h.app(inst.Project)
		if !a.cur.CompareAndSwap(nil, inst) {
			continue
		}
		if st == apps.Running {
			a.setServing(inst.Addr())
			a.idleFrom(a.gen.Add(1))
			continue
		}
		g := a.gen.Add(1) // frozen: stopped at stop-after, unless woken
		time.AfterFunc(max(h.stopAfter-h.idle, 0), func() { a.sleep(g, apps.Stopped) })
	}
	return nil
}

// close stops the idle timers and waits for a sleep in progress; the
// apps keep running as they are (a restarted server adopts them).
func (h *appHost) close() {
	h.mu.Lock()
	h.closed = true
	as := make([]*projectApp, 0, len(h.apps))
	for _, a := range h.apps {
		as = append(as, a)
	}
	h.mu.Unlock()
	for _, a := range as {
		a.mu.Lock()
		a.gen.Add(1)
		a.mu.Unlock()
	}
}

func (h *appHost) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// projectApp is one project's app: implements gateway.App.
type projectApp struct {
	h       *appHost
	project string

	// mu serializes wakes and sleeps.
	mu sync.Mutex
	// cur is the instance of the release that serves (or last served).
	cur atomic.Pointer[apps.Instance]
	// addr is the backend's address while it serves, else "";
	// checked when the release it runs was last found current (unix ns).
	addr    atomic.Pointer[string]
	checked atomic.Int64
	// open counts the requests in flight; gen advances with every
	// request's start and end and cancels older idle timers.
	open atomic.Int64
	gen  atomic.Uint64
	// lastOutput is the output of the last start that failed.
	lastOutput atomic.Pointer[[]string]
	// lastWake is when the last wake that did something began, and how
	// long it took (appstate.go).
	lastWake atomic.Pointer[wakeRecord]
}

func (a *projectApp) setServing(addr string) {
	a.addr.Store(&addr)
	a.checked.Store(time.Now().UnixNano())
}

// Serving implements gateway.App.
func (a *projectApp) Serving() (string, bool) {
	p := a.addr.Load()
	if p == nil || *p == "" || time.Since(time.Unix(0, a.checked.Load())) > releaseRecheck {
		return "", false
	}
	return *p, true
}

// Begin implements gateway.App.
func (a *projectApp) Begin() func() {
	a.open.Add(1)
	a.gen.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			g := a.gen.Add(1)
			if a.open.Add(-1) == 0 {
				a.idleFrom(g)
			}
		})
	}
}

// idleFrom freezes the app after the idle timeout, then stops it at
// stop-after, unless a request starts or ends meanwhile (gen changes).
func (a *projectApp) idleFrom(g uint64) {
	time.AfterFunc(a.h.idle, func() {
		if a.sleep(g, apps.Frozen) {
			time.AfterFunc(max(a.h.stopAfter-a.h.idle, 0), func() { a.sleep(g, apps.Stopped) })
		}
	})
}

// sleep freezes or stops the app if no request started or ended since
// the timer of generation g was set; it reports whether it did.
func (a *projectApp) sleep(g uint64, depth apps.State) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	inst := a.cur.Load()
	if inst == nil || a.h.isClosed() || a.gen.Load() != g {
		return false
	}
	prev := a.addr.Swap(new(string))
	if a.open.Load() > 0 || a.gen.Load() != g {
		a.addr.Store(prev) // a request started: it is served as before
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	if depth == apps.Frozen {
		err = a.h.rt.Freeze(ctx, inst)
	} else {
		err = a.h.rt.Stop(ctx, inst)
	}
	if err != nil {
		a.h.log.Warn("apps: put app to sleep", "project", a.project, "depth", depth, "error", err)
		return false
	}
	a.h.log.Info("app asleep", "project", a.project, "release", inst.Release, "state", depth)
	return true
}

// Wake implements gateway.App: it brings the project's current release
// to serving, starting it if it never ran here, and stops the release it
// replaces (kept stopped for a rollback).
func (a *projectApp) Wake(ctx context.Context) (w gateway.Woken, err error) {
	defer a.noteWake(time.Now(), &w, &err)
	a.mu.Lock()
	defer a.mu.Unlock()
	d, err := a.currentRelease(ctx)
	if err != nil {
		return gateway.Woken{}, err
	}
	old := a.cur.Load()
	if old != nil && old.Release == d.ID {
		rep, err := a.h.rt.Wake(ctx, old)
		if err == nil {
			a.setServing(old.Addr())
			return gateway.Woken{Addr: old.Addr(), Phases: wakePhases(rep)}, nil
		}
		if !errors.Is(err, apps.ErrNotFound) {
			return gateway.Woken{}, a.failed(err)
		}
	}
	inst, phases, err := a.bring(ctx, d)
	if err != nil {
		return gateway.Woken{}, a.failed(err)
	}
	a.cur.Store(inst)
	a.lastOutput.Store(nil)
	a.setServing(inst.Addr())
	if old != nil && old.Release != inst.Release {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := a.h.rt.Stop(sctx, old); err != nil && !errors.Is(err, apps.ErrNotFound) {
			a.h.log.Warn("apps: stop the replaced release", "project", a.project, "release", old.Release, "error", err)
		}
	}
	return gateway.Woken{Addr: inst.Addr(), Phases: phases}, nil
}

// bring wakes the container of d's release if it exists, else starts it.
func (a *projectApp) bring(ctx context.Context, d *slipway.Deployment) (*apps.Instance, []gateway.Phase, error) {
	inst, err := a.h.rt.Get(ctx, a.project, d.ID)
	if err == nil {
		rep, err := a.h.rt.Wake(ctx, inst)
		return inst, wakePhases(rep), err
	}
	if !errors.Is(err, apps.ErrNotFound) {
		return nil, nil, err
	}
	start := time.Now()
	inst, err = a.h.rt.Start(ctx, apps.Spec{Project: a.project, Release: d.ID, Image: d.Image})
	if err != nil {
		return nil, nil, err
	}
	a.h.log.Info("app started", "project", a.project, "release", d.ID, "image", d.Image, "took", time.Since(start))
	return inst, []gateway.Phase{{Name: "start", Dur: time.Since(start)}}, nil
}

// failed keeps the output of an app that did not become healthy for
// LastOutput.
func (a *projectApp) failed(err error) error {
	var ue *apps.UnhealthyError
	if errors.As(err, &ue) {
		out := ue.Output
		a.lastOutput.Store(&out)
	}
	return err
}

// currentRelease is the project's latest succeeded deployment with an
// image, or ENOTFOUND.
func (a *projectApp) currentRelease(ctx context.Context) (*slipway.Deployment, error) {
	for _, limit := range []int{20, 0} {
		ds, err := a.h.store.Deployments(ctx, a.project, limit)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.Status == slipway.StatusSucceeded && d.Image != "" {
				return d, nil
			}
		}
		if len(ds) < limit {
			break
		}
	}
	return nil, slipway.Errorf(slipway.ENOTFOUND, "project %s has nothing deployed yet: deploy it with `slipway deploy %s`", a.project, a.project)
}

// wakePhases are the Server-Timing phases of rep: none when the app was
// running already.
func wakePhases(rep apps.WakeReport) []gateway.Phase {
	switch rep.From {
	case apps.Frozen:
		return []gateway.Phase{{Name: "thaw", Dur: rep.Thaw}}
	case apps.Stopped, apps.Failed:
		return []gateway.Phase{{Name: "start", Dur: rep.Start}, {Name: "health", Dur: rep.Health}}
	}
	return nil
}

// LastOutput implements gateway.App.
func (a *projectApp) LastOutput(n int) []string {
	if p := a.lastOutput.Load(); p != nil && len(*p) > 0 {
		out := *p
		return out[max(len(out)-n, 0):]
	}
	if inst := a.cur.Load(); inst != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if lines, err := a.h.rt.Logs(ctx, inst, n); err == nil {
			return lines
		}
	}
	return nil
}

// startApps starts the app runtime on DATA/apps, with a login to the
// registry that may pull every project's images, and adopts the apps a
// previous run left.
func (p *parts) startApps(ctx context.Context) error {
	if p.cfg.AppsListen == AppsOff {
		p.log.Info("apps are off (--apps-listen off)")
		return nil
	}
	dir := filepath.Join(p.dataDir, "apps")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cfg := apps.Config{Dir: dir, RegistryInsecure: !registryTLSVerify(p.cfg), Logger: p.log.With("part", "apps"), OnStart: p.collectAppLogs}
	if rc := p.registryClient(); rc.cred != "" {
		cfg.AuthFile = filepath.Join(dir, "containers-auth.json")
		if err := buildah.WriteAuthFile(cfg.AuthFile, strings.SplitN(rc.host, "/", 2)[0], rc.user, rc.cred); err != nil {
			return fmt.Errorf("apps: registry login: %w", err)
		}
	}
	rt, err := apps.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start the app runtime (--apps-listen off turns apps off): %w", err)
	}
	p.appsRT = rt
	p.appHost = newAppHost(rt, p.store, p.cfg.AppIdleTimeout, p.cfg.AppStopAfter, p.log)
	if err := p.appHost.adopt(ctx); err != nil {
		p.log.Error("apps: adopt the running apps", "error", err)
	}
	return nil
}

func (p *parts) stopApps() {
	if p.appsRT == nil {
		return
	}
	p.appHost.close()
	if err := p.appsRT.Close(); err != nil {
		p.log.Warn("stop the app runtime", "error", err)
	}
}

// startAppsGateway serves the apps on Config.AppsListen.
func (p *parts) startAppsGateway(context.Context) error {
	if p.appHost == nil {
		return nil
	}
	gw, err := gateway.New(gateway.Config{Apps: p.appHost, Domain: p.cfg.AppsDomain, WakeTimeout: p.cfg.WakeTimeout, Logger: p.log})
	if err != nil {
		return err
	}
	p.appsServer, err = gateway.Listen(p.cfg.AppsListen, gw, p.log)
	if err != nil {
		gw.Close()
		return fmt.Errorf("%w (--apps-listen picks another address, off turns apps off)", err)
	}
	addr := p.appsServer.Addr().String()
	p.appsAddr.Store(&addr)
	return nil
}

func (p *parts) stopAppsGateway(ctx context.Context) error {
	if p.appsServer == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, httpShutdownTimeout)
	defer cancel()
	return p.appsServer.Close(sctx)
}

// appsURL is the URL of project's app, or "off".
func (p *parts) appsURL(project string) string {
	if u := p.appURL(project); u != "" {
		return u
	}
	return AppsOff
}

// appURL is the URL of project's app, or "" while no apps are served
// (graphql.Config.AppURL).
func (p *parts) appURL(project string) string {
	addr := p.appsAddr.Load()
	if addr == nil {
		return ""
	}
	return gateway.Route{Project: project}.URL(p.cfg.AppsDomain, *addr)
}
