package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/gateway"
)

// previewStore is what the previews keep in the store.
type previewStore interface {
	slipway.Store
	slipway.PreviewStore
}

// touchEvery is how often at most a preview's last request is written to
// the store: the preview TTL counts from it, so a restart keeps it, to
// within this much.
const touchEvery = time.Minute

// previews implements slipway.Previewer: a pull request's head is built
// as a deployment of its project (Deployment.Preview) and served, once
// one succeeded, as an app of its own at pr-<N>.<project> (see
// lookupPreview), sleeping like any app. A preview is removed when its
// pull request closes, or after ttl without a request.
type previews struct {
	store    previewStore
	deployer slipway.Deployer
	log      *slog.Logger
	// ttl is how long a preview lives without a request; <= 0: for ever.
	ttl time.Duration
	// host serves the previews' apps: nil until the app runtime runs, and
	// for ever with apps off (previews are then built, not served).
	host atomic.Pointer[appHost]

	mu sync.Mutex
	// seen holds, per preview (route.String()), the last request's time
	// (unix ns) and the last one written to the store.
	seen map[string]*previewSeen

	stop chan struct{}
	done chan struct{}
}

type previewSeen struct {
	project string
	number  int
	last    atomic.Int64
	written atomic.Int64
}

func newPreviews(store previewStore, deployer slipway.Deployer, ttl time.Duration, log *slog.Logger) *previews {
	return &previews{store: store, deployer: deployer, ttl: ttl, log: log, seen: map[string]*previewSeen{}}
}

var _ slipway.Previewer = (*previews)(nil)

// OpenPreview implements slipway.Previewer: the head is deployed like a
// push to refs/pull/<N>/head, so a newer head supersedes the older build
// of the same pull request and nothing else.
func (s *previews) OpenPreview(ctx context.Context, req slipway.PreviewRequest) (*slipway.Deployment, slipway.DeployOutcome, error) {
	d, outcome, err := s.deployer.Deploy(ctx, slipway.DeployRequest{
		Project: req.Project, Ref: slipway.PreviewRef(req.Number), Commit: req.HeadSHA,
		Trigger: slipway.TriggerWebhook, DeliveryID: req.DeliveryID, Preview: req.Number,
	})
	if err != nil {
		return nil, "", err
	}
	_, err = s.store.PutPreview(ctx, &slipway.Preview{
		Project: req.Project, Number: req.Number, HeadBranch: req.HeadBranch, HeadSHA: d.Commit, Deployment: d.ID,
	})
	if err != nil {
		return nil, "", err
	}
	s.log.Info("preview opened", "project", req.Project, "pull_request", req.Number, "commit", d.Commit, "deployment", d.ID, "outcome", outcome)
	return d, outcome, nil
}

// ClosePreview implements slipway.Previewer. The record is marked closed
// first, so that a removal cut short (a crash) is finished at the next
// start (reconcile) or by the TTL sweep.
func (s *previews) ClosePreview(ctx context.Context, project string, n int) (bool, error) {
	err := s.store.SetPreviewState(ctx, project, n, slipway.PreviewClosed)
	had := err == nil
	if err != nil && slipway.ErrorCode(err) != slipway.ENOTFOUND {
		return false, err
	}
	if err := s.remove(ctx, project, n); err != nil {
		return had, err
	}
	return had, nil
}

// remove cancels the unfinished builds of a preview, removes its app's
// containers and its record.
func (s *previews) remove(ctx context.Context, project string, n int) error {
	ds, err := s.store.UnfinishedDeployments(ctx)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if d.Project == project && d.Preview == n {
			if _, err := s.deployer.Cancel(ctx, d.ID); err != nil && slipway.ErrorCode(err) != slipway.ECONFLICT {
				s.log.Warn("preview: cancel a build", "project", project, "pull_request", n, "deployment", d.ID, "error", err)
			}
		}
	}
	if h := s.host.Load(); h != nil {
		if err := h.removePreviewApp(ctx, project, n); err != nil {
			return fmt.Errorf("remove the preview of pull request #%d of %s: %w", n, project, err)
		}
	}
	s.mu.Lock()
	delete(s.seen, gateway.Route{Project: project, Preview: n}.String())
	s.mu.Unlock()
	if err := s.store.DeletePreview(ctx, project, n); err != nil {
		return err
	}
	s.log.Info("preview removed", "project", project, "pull_request", n)
	return nil
}

// release is the app's release of pull request n of project: the
// succeeded build of its head, else its latest succeeded build; ENOTFOUND
// while it has none, or when the pull request has no open preview.
func (s *previews) release(ctx context.Context, project string, n int) (*slipway.Deployment, error) {
	p, err := s.store.Preview(ctx, project, n)
	if err != nil || p.State != slipway.PreviewOpen {
		if err == nil || slipway.ErrorCode(err) == slipway.ENOTFOUND {
			return nil, noPreview(project, n)
		}
		return nil, err
	}
	// The build of its head (which may be older than another build, when
	// the pull request was pushed back to an earlier head), else, while
	// that builds, the latest successful one.
	servable := func(d *slipway.Deployment) bool {
		return d.Preview == n && d.Status == slipway.StatusSucceeded && d.Image != ""
	}
	if d, err := s.store.Deployment(ctx, p.Deployment); err == nil && servable(d) {
		return d, nil
	}
	for _, limit := range []int{50, 0} {
		ds, err := s.store.Deployments(ctx, project, limit)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if servable(d) {
				return d, nil
			}
		}
		if len(ds) < limit {
			break
		}
	}
	return nil, slipway.Errorf(slipway.ENOTFOUND, "the preview of pull request #%d of %s has no successful build yet (deployment %s of %s)", n, project, p.Deployment, short(p.HeadSHA))
}

func noPreview(project string, n int) error {
	return slipway.Errorf(slipway.ENOTFOUND, "pull request #%d of project %s has no preview: it was closed, or never opened (a preview is built when a pull request is opened or pushed to)", n, project)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// requested notes a request to route's preview (lock-free after its
// first request).
func (s *previews) requested(route gateway.Route) {
	key := route.String()
	s.mu.Lock()
	e, ok := s.seen[key]
	if !ok {
		e = &previewSeen{project: route.Project, number: route.Preview}
		s.seen[key] = e
	}
	s.mu.Unlock()
	e.last.Store(time.Now().UnixNano())
}

// lookupPreview is appHost.Lookup for a preview's route: the app of an
// open preview (made on first use), or, for a project that exists, an
// app that is not kept whose wake answers 404 saying why.
func (h *appHost) lookupPreview(route gateway.Route) (gateway.App, bool) {
	if h.previews == nil {
		return nil, false
	}
	key := route.String()
	h.mu.Lock()
	a, ok := h.apps[key]
	h.mu.Unlock()
	if ok {
		h.previews.requested(route)
		return a, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := h.previews.store.Preview(ctx, route.Project, route.Preview)
	switch {
	case err == nil && p.State == slipway.PreviewOpen:
		h.previews.requested(route)
		return h.previewApp(route), true
	case err != nil && slipway.ErrorCode(err) != slipway.ENOTFOUND:
		h.log.Warn("apps: look up preview", "route", key, "error", err)
		return nil, false
	}
	if _, err := h.store.Project(ctx, route.Project); err != nil {
		return nil, false
	}
	return h.newApp(route.Project, route.Preview), true
}

// previewApp returns route's preview app, made on first use.
func (h *appHost) previewApp(route gateway.Route) *projectApp {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := route.String()
	a, ok := h.apps[key]
	if !ok {
		a = h.newApp(route.Project, route.Preview)
		h.apps[key] = a
	}
	return a
}

// appOf returns the app an adopted container belongs to.
func (h *appHost) appOf(inst *apps.Instance) *projectApp {
	if inst.Preview != 0 {
		return h.previewApp(gateway.Route{Project: inst.Project, Preview: inst.Preview})
	}
	return h.app(inst.Project)
}

// removePreviewApp stops serving pull request n's preview of project and
// removes its containers.
func (h *appHost) removePreviewApp(ctx context.Context, project string, n int) error {
	key := gateway.Route{Project: project, Preview: n}.String()
	h.mu.Lock()
	a := h.apps[key]
	delete(h.apps, key)
	h.mu.Unlock()
	if a != nil {
		a.mu.Lock() // wait for a wake in progress
		defer a.mu.Unlock()
		a.gen.Add(1) // its idle timers do nothing now
		a.addr.Store(new(string))
		a.cur.Store(nil)
	}
	insts, err := h.rt.Reconcile(ctx)
	if err != nil {
		return err
	}
	// The images stay in the runtime's storage: a prune here could race
	// another app's start between its pull and its create.
	for _, inst := range insts {
		if inst.Project == project && inst.Preview == n {
			if err := h.rt.Remove(ctx, inst); err != nil {
				return err
			}
		}
	}
	return nil
}

// reconcile sorts the containers a restarted server finds against the
// recorded previews: a closed preview's containers and record are
// removed, an open one's are returned to be adopted with the projects'
// own apps, and preview containers without a record are removed.
func (s *previews) reconcile(ctx context.Context, h *appHost, insts []*apps.Instance) ([]*apps.Instance, error) {
	if s == nil {
		return insts, nil
	}
	ps, err := s.store.Previews(ctx, "")
	if err != nil {
		return insts, err
	}
	open := map[string]bool{}
	for _, p := range ps {
		if p.State == slipway.PreviewOpen {
			open[gateway.Route{Project: p.Project, Preview: p.Number}.String()] = true
			continue
		}
		if err := s.remove(ctx, p.Project, p.Number); err != nil {
			s.log.Warn("preview: finish removing a closed preview", "project", p.Project, "pull_request", p.Number, "error", err)
		}
	}
	var keep []*apps.Instance
	for _, inst := range insts {
		route := gateway.Route{Project: inst.Project, Preview: inst.Preview}
		switch {
		case inst.Preview == 0 || open[route.String()]:
			keep = append(keep, inst)
		default:
			if err := h.rt.Remove(ctx, inst); err != nil && !errors.Is(err, apps.ErrNotFound) {
				s.log.Warn("preview: remove a container of no preview", "app", inst.Name, "error", err)
			}
		}
	}
	return keep, nil
}

// start runs the sweep (sweepEvery) until close: it writes the previews'
// last requests to the store and removes those idle past the TTL.
func (s *previews) start(h *appHost) {
	s.host.Store(h)
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	every := touchEvery
	if s.ttl > 0 {
		every = min(touchEvery, max(s.ttl/4, time.Second))
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				s.sweep(ctx, time.Now())
				cancel()
			}
		}
	}()
}

// close stops the sweep, waits for it and writes the last requests not
// written yet; safe without start.
func (s *previews) close() {
	if s.stop == nil {
		return
	}
	close(s.stop)
	<-s.done
	s.stop = nil
	// The last requests since the last write: the TTL counts from them
	// after a restart.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.flush(ctx, time.Now(), true)
}

// sweep writes the last requests seen since the last write (at most one
// write per preview per touchEvery), finishes removing closed previews
// and removes the open ones idle past the TTL.
func (s *previews) sweep(ctx context.Context, now time.Time) {
	seen := s.flush(ctx, now, false)
	ps, err := s.store.Previews(ctx, "")
	if err != nil {
		s.log.Warn("preview: list previews", "error", err)
		return
	}
	for _, p := range ps {
		key := gateway.Route{Project: p.Project, Preview: p.Number}.String()
		switch {
		case p.State == slipway.PreviewClosed:
			if err := s.remove(ctx, p.Project, p.Number); err != nil {
				s.log.Warn("preview: remove a closed preview", "project", p.Project, "pull_request", p.Number, "error", err)
			}
		case s.ttl > 0 && s.idle(p, seen[key], now) > s.ttl && !s.busy(key):
			s.log.Info("preview idle past the preview TTL: removing it", "project", p.Project, "pull_request", p.Number, "ttl", s.ttl)
			if _, err := s.ClosePreview(ctx, p.Project, p.Number); err != nil {
				s.log.Warn("preview: remove an idle preview", "project", p.Project, "pull_request", p.Number, "error", err)
			}
		}
	}
}

// flush writes the previews' last requests seen since the last write: all
// of them, or (unless all) those whose last write is touchEvery old. It
// returns what it looked at, by route.
func (s *previews) flush(ctx context.Context, now time.Time, all bool) map[string]*previewSeen {
	s.mu.Lock()
	seen := make(map[string]*previewSeen, len(s.seen))
	for k, e := range s.seen {
		seen[k] = e
	}
	s.mu.Unlock()
	for _, e := range seen {
		last, written := e.last.Load(), e.written.Load()
		if last > written && (all || now.Sub(time.Unix(0, written)) >= touchEvery) {
			if err := s.store.TouchPreview(ctx, e.project, e.number, time.Unix(0, last)); err != nil {
				s.log.Warn("preview: record the last request", "project", e.project, "pull_request", e.number, "error", err)
				continue
			}
			e.written.Store(last)
		}
	}
	return seen
}

// idle is how long p has had no request at now: since its last request
// (recorded, or seen by this server since), else since its record last
// changed (a new head).
func (s *previews) idle(p *slipway.Preview, e *previewSeen, now time.Time) time.Duration {
	last := p.UpdatedAt
	if p.LastRequestAt != nil && p.LastRequestAt.After(last) {
		last = *p.LastRequestAt
	}
	if e != nil {
		if t := time.Unix(0, e.last.Load()); t.After(last) {
			last = t
		}
	}
	return now.Sub(last)
}

// busy reports whether the preview's app has a request open (a WebSocket,
// a long download).
func (s *previews) busy(key string) bool {
	h := s.host.Load()
	if h == nil {
		return false
	}
	h.mu.Lock()
	a := h.apps[key]
	h.mu.Unlock()
	return a != nil && a.open.Load() > 0
}

// previewURL is the URL of pull request n's preview of project, or ""
// while no apps are served (graphql.Config.PreviewURL).
func (p *parts) previewURL(project string, n int) string {
	addr := p.appsAddr.Load()
	if addr == nil {
		return ""
	}
	return gateway.Route{Project: project, Preview: n}.URL(p.cfg.AppsDomain, *addr)
}
