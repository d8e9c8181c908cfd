package server

import (
	"context"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/applog"
	"github.com/slipway-ci/slipway/apps"
)

// startAppLogs starts the apps' log pipeline (package applog) once the
// app runtime runs, and follows every app container the runtime has:
// those it starts from now on come through apps.Config.OnStart
// (collectAppLogs). With apps off there is nothing to collect.
func (p *parts) startAppLogs(ctx context.Context) error {
	if p.appsRT == nil {
		return nil
	}
	pl, err := applog.Start(ctx, applog.Config{URL: p.natsURL, Options: p.natsOpts, Source: p.appsRT, Store: p.store, Logger: p.log})
	if err != nil {
		return err
	}
	p.appLogs.Store(pl)
	insts, err := p.appsRT.Reconcile(ctx)
	if err != nil {
		p.log.Warn("app logs: list the apps", "error", err)
	}
	for _, inst := range insts {
		pl.Add(inst)
	}
	p.appsLive.Store(p.appHost)
	return nil
}

func (p *parts) stopAppLogs() {
	p.appsLive.Store(nil)
	if pl := p.appLogs.Swap(nil); pl != nil {
		pl.Close()
	}
}

// collectAppLogs is apps.Config.OnStart: the collector follows every app
// the runtime starts.
func (p *parts) collectAppLogs(inst *apps.Instance) {
	if pl := p.appLogs.Load(); pl != nil {
		pl.Add(inst)
	}
}

// appsView is what the API reads of the server's apps
// (graphql.Config.Apps).
type appsView struct{ p *parts }

// AppStatus returns the state of project's app; "none" while the server
// serves no apps.
func (v appsView) AppStatus(ctx context.Context, project string) (slipway.AppStatus, error) {
	h := v.p.appsLive.Load()
	if h == nil {
		return slipway.AppStatus{State: slipway.AppNone}, nil
	}
	st, err := h.status(ctx, project)
	st.URL = v.p.appURL(project)
	return st, err
}

// FollowAppLogs calls fn with project's app lines numbered above after
// as they come (see applog.Pipeline.Follow).
func (v appsView) FollowAppLogs(ctx context.Context, project string, after int64, release string, fn func([]slipway.AppLogLine) error) error {
	pl := v.p.appLogs.Load()
	if pl == nil {
		return slipway.Errorf(slipway.ECONFLICT, "this server serves no apps (it runs with --apps-listen off): no app output to follow")
	}
	return pl.Follow(ctx, project, after, release, fn)
}
