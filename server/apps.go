package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/deploy"
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
	rt    *apps.Runtime
	store slipway.Store
	// env returns a project's runtime environment (KEY=VALUE, secrets
	// included): deploy.Projects.RuntimeEnv.
	env func(ctx context.Context, project string) ([]string, error)
	log *slog.Logger
	// idle (running with no open request → frozen) and stopAfter (since
	// the last request → stopped) apply to projects that do not set
	// their own (slipway.AppSettings).
	idle      time.Duration
	stopAfter time.Duration
	// previews serves pull requests' previews (previews.go).
	previews *previews

	mu     sync.Mutex
	apps   map[string]*projectApp
	closed bool
}

func newAppHost(rt *apps.Runtime, store slipway.Store, env func(context.Context, string) ([]string, error), idle, stopAfter time.Duration, log *slog.Logger) *appHost {
	return &appHost{rt: rt, store: store, env: env, log: log, idle: idle, stopAfter: stopAfter, apps: map[string]*projectApp{}}
}

// Lookup implements gateway.Apps. A project not seen yet is looked up in
// the store (one indexed read), so that names that are no project get a
// 404 and no entry. A preview's route: see lookupPreview.
func (h *appHost) Lookup(route gateway.Route) (gateway.App, bool) {
	if route.Preview != 0 {
		return h.lookupPreview(route)
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
		a = h.newApp(project, 0)
		h.apps[project] = a
	}
	return a
}

// newApp makes the app of project, or of its pull request preview's
// when preview is not 0.
func (h *appHost) newApp(project string, preview int) *projectApp {
	a := &projectApp{h: h, project: project, preview: preview}
	a.ep.Store(new(epoch))
	a.setTimers(slipway.AppSettings{})
	return a
}

// adopt takes over the containers a restarted server finds
// (apps.Runtime.Reconcile): a project's current release, running, serves
// until its idle timer puts it to sleep; frozen, it is stopped at
// stop-after unless a request wakes it first. A running or frozen
// container of another release (one the server was draining when it
// stopped) is stopped.
func (h *appHost) adopt(ctx context.Context) error {
	insts, err := h.rt.Reconcile(ctx)
	if err != nil {
		return err
	}
	if insts, err = h.previews.reconcile(ctx, h, insts); err != nil {
		h.log.Error("apps: reconcile the previews", "error", err)
	}
	for _, inst := range insts {
		st, err := h.rt.State(ctx, inst)
		if err != nil || (st != apps.Running && st != apps.Frozen) {
			continue
		}
		a := h.appOf(inst)
		cur, err := a.currentRelease(ctx)
		if err != nil || !a.runs(ctx, inst, cur) || !a.cur.CompareAndSwap(nil, inst) {
			h.log.Info("apps: stop a release that no longer serves", "project", inst.Project, "release", inst.Release)
			go h.retireQuietly(inst)
			continue
		}
		a.release.Store(&cur.ID)
		if st == apps.Running {
			a.setServing(inst.Addr())
			a.idleFrom(a.gen.Add(1))
			continue
		}
		g := a.gen.Add(1) // frozen: stopped at stop-after, unless woken
		time.AfterFunc(max(time.Duration(a.stopAfter.Load()-a.idle.Load()), 0), func() { a.sleep(g, apps.Stopped) })
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
	// preview is the pull request whose preview this is, 0 for the
	// project's own app.
	preview int

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
	// release is the deployment whose release cur serves: cur's own, or
	// a later one of the same spec (a rollback).
	release atomic.Pointer[string]
	// lastOutput is the output of the last start that failed.
	lastOutput atomic.Pointer[[]string]
	// ep counts the requests begun since the last switch of release, so
	// that the release it replaced can drain them.
	ep atomic.Pointer[epoch]
	// idle and stopAfter are the project's sleep timers (nanoseconds),
	// read from its settings at each wake and release.
	idle, stopAfter atomic.Int64
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
	e := a.ep.Load()
	e.open.Add(1)
	a.open.Add(1)
	a.gen.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			e.open.Add(-1)
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
	idle, stopAfter := time.Duration(a.idle.Load()), time.Duration(a.stopAfter.Load())
	time.AfterFunc(idle, func() {
		if a.sleep(g, apps.Frozen) {
			time.AfterFunc(max(stopAfter-idle, 0), func() { a.sleep(g, apps.Stopped) })
		}
	})
}

// setTimers takes the project's idle timeout and stop-after, or the
// server's where it sets none.
func (a *projectApp) setTimers(s slipway.AppSettings) {
	idle, stopAfter := s.IdleTimeout, s.StopAfter
	if idle <= 0 {
		idle = a.h.idle
	}
	if stopAfter <= 0 {
		stopAfter = a.h.stopAfter
	}
	a.idle.Store(int64(idle))
	a.stopAfter.Store(int64(max(stopAfter, idle)))
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
	if old != nil && (old.Release == d.ID || a.serves() == d.ID) {
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
	a.take(inst, d.ID)
	return gateway.Woken{Addr: inst.Addr(), Phases: phases}, nil
}

// bring wakes a container that runs d's release as it would start now
// (its own, or one of an earlier release with the same image, settings
// and environment: a rollback), else starts one. A sleeping container of
// d set up otherwise (the project's settings or environment changed
// since) is replaced: a change takes effect at the app's next start.
func (a *projectApp) bring(ctx context.Context, d *slipway.Deployment) (*apps.Instance, []gateway.Phase, error) {
	spec, err := a.spec(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	inst, err := a.h.rt.Get(ctx, a.project, d.ID)
	if err == nil && a.stale(ctx, inst, spec) {
		err = a.h.rt.Remove(ctx, inst) // started anew below, as set up now
		if err == nil {
			err = apps.ErrNotFound
		}
	}
	if errors.Is(err, apps.ErrNotFound) {
		inst, err = a.h.rt.Find(ctx, spec)
	}
	if err == nil {
		rep, err := a.h.rt.Wake(ctx, inst)
		return inst, wakePhases(rep), err
	}
	if !errors.Is(err, apps.ErrNotFound) {
		return nil, nil, err
	}
	inst, rep, err := a.h.rt.StartTimed(ctx, spec)
	if err != nil {
		return nil, nil, err
	}
	a.h.log.Info("app started", "project", a.project, "release", d.ID, "image", d.Image, "took", rep.Total)
	return inst, wakePhases(rep), nil
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

// currentRelease is the project's current release (Project.Release),
// or for a project released before the release phase existed its latest
// succeeded deployment with an image, never a preview's; a preview's app
// runs its own (previews.release). ENOTFOUND when there is none. It takes
// the project's sleep timers on the way.
func (a *projectApp) currentRelease(ctx context.Context) (*slipway.Deployment, error) {
	p, err := a.h.store.Project(ctx, a.project)
	if err != nil {
		return nil, err
	}
	a.setTimers(p.App)
	if a.preview != 0 {
		return a.h.previews.release(ctx, a.project, a.preview)
	}
	if p.Release != "" {
		d, err := a.h.store.Deployment(ctx, p.Release)
		if err == nil && d.Image != "" && d.Preview == 0 {
			return d, nil
		}
		if err != nil && slipway.ErrorCode(err) != slipway.ENOTFOUND {
			return nil, err
		}
	}
	for _, limit := range []int{20, 0} {
		ds, err := a.h.store.Deployments(ctx, a.project, limit)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.Status == slipway.StatusSucceeded && d.Image != "" && d.Preview == 0 {
				return d, nil
			}
		}
		if len(ds) < limit {
			break
		}
	}
	return nil, slipway.Errorf(slipway.ENOTFOUND, "project %s has nothing deployed yet: deploy it with `slipway deploy %s`", a.project, a.project)
}

// wakePhases are the Server-Timing phases of rep (of a Wake or a
// StartTimed), those it went through: none when the app was running
// already.
func wakePhases(rep apps.WakeReport) []gateway.Phase {
	if rep.From == apps.Running {
		return nil
	}
	var ps []gateway.Phase
	for _, p := range []gateway.Phase{{Name: "thaw", Dur: rep.Thaw}, {Name: "pull", Dur: rep.Pull},
		{Name: "create", Dur: rep.Create}, {Name: "start", Dur: rep.Start}, {Name: "health", Dur: rep.Health}} {
		if p.Dur > 0 {
			ps = append(ps, p)
		}
	}
	return ps
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
	cfg := apps.Config{Dir: dir, RegistryInsecure: !registryTLSVerify(p.cfg), NoPrime: p.cfg.AppsNoPrime, Logger: p.log.With("part", "apps"),
		OnStart: p.collectAppLogs}
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
	env := deploy.NewProjects(deploy.ProjectsConfig{Store: p.store}).RuntimeEnv
	p.appHost = newAppHost(rt, p.store, env, p.cfg.AppIdleTimeout, p.cfg.AppStopAfter, p.log)
	p.appHost.previews = p.previews
	p.previews.host.Store(p.appHost)
	if err := p.appHost.adopt(ctx); err != nil {
		p.log.Error("apps: adopt the running apps", "error", err)
	}
	p.previews.start(p.appHost)
	return nil
}

func (p *parts) stopApps() {
	if p.appsRT == nil {
		return
	}
	p.previews.close()
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
	trusted, err := parseTrustedProxies(p.cfg.AppsTrustedProxies)
	if err != nil {
		return err
	}
	gw, err := gateway.New(gateway.Config{Apps: p.appHost, Dial: p.appsRT.DialContext, Domain: p.cfg.AppsDomain,
		WakeTimeout: p.cfg.WakeTimeout, TrustedProxies: trusted, Logger: p.log})
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

// parseTrustedProxies parses --apps-trusted-proxy values: addresses
// (one host) or CIDRs.
func parseTrustedProxies(vals []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if pfx, err := netip.ParsePrefix(v); err == nil {
			out = append(out, pfx.Masked())
			continue
		}
		addr, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("--apps-trusted-proxy %q is neither an IP address (10.0.0.5) nor a CIDR (10.0.0.0/8)", v)
		}
		out = append(out, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
	}
	return out, nil
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
