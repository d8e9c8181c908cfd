package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	// Package main has a type builder (the local floor's and clean CI's).
	contract "github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/server"
)

// The orchestration benchmark (-orchestration N): the path from a push
// webhook to the first build command, on a project whose build is tiny
// (FROM scratch, COPY one file), so that nothing but orchestration is
// timed. Each slipway binary given with -slipway gets its own server and
// project; their pushes are interleaved (the order rotates every run), so
// two builds (before and after a change) are compared side by side on the
// same machine load.
//
// Every push is broken down with the deployment's Temporal histories (the
// server's clock) and the agent's log lines (the agent's clock; one host):
// each milestone is printed as the time since the webhook POST.

// orchMilestones are the milestones of one push, in path order.
var orchMilestones = []struct{ key, title string }{
	{"answered", "webhook answered"},
	{"projectWF", "ProjectWorkflow signalled"},
	{"deployWF", "DeploymentWorkflow started"},
	{"slot", "build slot held"},
	{"marked", "marked building"},
	{"wakeStart", "WakeMachine started"},
	{"wakeDone", "WakeMachine done (agent polls)"},
	{"buildWF", "BuildWorkflow started"},
	{"agentTask", "agent's first workflow task"},
	{"agentTaskDone", "agent's first workflow task done"},
	{"fetchScheduled", "Fetch scheduled"},
	{"fetchStart", "Fetch started (agent)"},
	{"fetchLine", "agent: fetching"},
	{"fetchDone", "agent: checked out"},
	{"buildStart", "Build started (agent)"},
	{"building", "agent: building (POST → building)"},
	{"podman", "podman's first output"},
}

// orchSample is one push: milestone → ms since the POST, and the
// deployment's own timings.
type orchSample struct {
	Binary  string
	At      map[string]int64
	Timings map[string]int64
	Load1   float64
}

type orchTarget struct {
	bin     string
	srv     *slipwayServer
	tc      client.Client
	project string
	repo    *appRepo
}

// RunOrchestration runs the orchestration benchmark: n pushes per binary.
func RunOrchestration(ctx context.Context, cfg Config, n int) error {
	work, err := workDir(cfg.WorkDir, "slipway-orch-")
	if err != nil {
		return err
	}
	defer func() {
		if cfg.Keep {
			progress("kept the work directory %s", work)
			return
		}
		unmountUnder(work)
		_ = os.RemoveAll(work)
	}()
	bins := splitList(cfg.Slipway)
	if len(bins) == 0 {
		bin := filepath.Join(work, "bin", "slipway")
		progress("building slipway and slipway-agent")
		if err := buildSlipway(ctx, cfg.RepoRoot, bin); err != nil {
			return err
		}
		bins = []string{bin}
	}
	progress("machine: %s", describeMachine().String())
	var targets []*orchTarget
	defer func() {
		for _, t := range targets {
			if t.tc != nil {
				t.tc.Close()
			}
			t.srv.stop()
		}
	}()
	for i, bin := range bins {
		dir := filepath.Join(work, fmt.Sprintf("s%d", i+1))
		if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o711); err != nil {
			return err
		}
		logf, err := os.Create(filepath.Join(dir, "logs", "server.log"))
		if err != nil {
			return err
		}
		defer logf.Close()
		srv, err := startSlipway(ctx, bin, filepath.Join(dir, "data"), cfg.RepoRoot, &syncWriter{w: logf})
		if err != nil {
			return fmt.Errorf("%s: %w", bin, err)
		}
		t := &orchTarget{bin: bin, srv: srv, project: fmt.Sprintf("orch%d-%d", os.Getpid()%10000, i+1)}
		targets = append(targets, t)
		if t.tc, err = dialServerTemporal(ctx, srv.dataDir); err != nil {
			return err
		}
		if t.repo, err = newTinyRepo(ctx, filepath.Join(dir, "repo")); err != nil {
			return err
		}
		if err := srv.addProject(ctx, t.project, t.repo.Dir, webhookSecret, nil); err != nil {
			return err
		}
		progress("%s: server at %s, project %s", bin, srv.URL, t.project)
	}
	samples, err := measureOrchestration(ctx, targets, n, cfg.BuildTimeout)
	if err != nil {
		return err
	}
	printOrchestration(os.Stdout, bins, samples)
	return nil
}

// measureOrchestration pushes to each target once to warm it up, then n
// times, in an order that rotates from run to run.
func measureOrchestration(ctx context.Context, targets []*orchTarget, n int, timeout time.Duration) ([]orchSample, error) {
	// A first (cold) push per server creates the machine, the builder user
	// and the mirror; it is not counted.
	for _, t := range targets {
		if _, err := t.push(ctx, timeout, 0); err != nil {
			return nil, fmt.Errorf("%s: warm-up push: %w", t.bin, err)
		}
	}
	var samples []orchSample
	for run := 1; run <= n; run++ {
		order := slices.Clone(targets)
		k := run % len(order)
		order = append(order[k:], order[:k]...)
		for _, t := range order {
			s, err := t.push(ctx, timeout, run)
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", t.bin, run, err)
			}
			samples = append(samples, s)
			progress("[%d/%d] %s: POST → building %d ms (queue %d, wake %d, fetch %d; load %.1f)", run, n, t.bin,
				s.At["building"], s.Timings["queue"], s.Timings["wake"], s.Timings["fetch"], s.Load1)
		}
	}
	return samples, nil
}

// newTinyRepo makes a repository whose build is one COPY onto scratch.
func newTinyRepo(ctx context.Context, dir string) (*appRepo, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY version.txt /version.txt\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "version.txt"), []byte("0\n"), 0o644); err != nil {
		return nil, err
	}
	return initRepo(ctx, dir, "tiny app")
}

// push commits a change (a new version.txt: the build runs) and measures
// one webhook push of it.
func (t *orchTarget) push(ctx context.Context, timeout time.Duration, run int) (orchSample, error) {
	before := t.repo.Head
	if run > 0 {
		if err := os.WriteFile(filepath.Join(t.repo.Dir, "version.txt"), []byte(fmt.Sprintln(run)), 0o644); err != nil {
			return orchSample{}, err
		}
		if _, err := t.repo.commit(ctx, fmt.Sprintf("run %d", run)); err != nil {
			return orchSample{}, err
		}
	} else {
		before = strings.Repeat("0", 40)
	}
	load := loadAvg()
	smp, err := t.srv.deploy(ctx, t.project, t.repo.Dir, webhookSecret, before, t.repo.Head, timeout)
	if err != nil {
		return orchSample{}, err
	}
	start := smp.start
	s := orchSample{Binary: t.bin, At: map[string]int64{}, Timings: smp.PhasesMs, Load1: load}
	at := func(key string, tm time.Time) {
		if !tm.IsZero() {
			if _, ok := s.At[key]; !ok {
				s.At[key] = tm.Sub(start).Milliseconds()
			}
		}
	}
	at("answered", start.Add(time.Duration(smp.PhasesMs["webhook"])*time.Millisecond))
	at("building", start.Add(time.Duration(smp.PhasesMs["toBuilding"])*time.Millisecond))
	for _, l := range smp.lines {
		switch {
		case strings.HasPrefix(l.Text, "fetching "):
			at("fetchLine", l.Time)
		case strings.HasPrefix(l.Text, "checked out "):
			at("fetchDone", l.Time)
		case strings.HasPrefix(l.Text, "STEP ") || strings.HasPrefix(l.Text, "["):
			at("podman", l.Time)
		}
	}
	// The Temporal histories of the three workflows.
	if err := t.workflowTimes(ctx, smp.deployment, start, at); err != nil {
		return orchSample{}, err
	}
	return s, nil
}

// workflowTimes passes to at the times of the events of deployment's
// workflows (project, deployment, build) that a push after start waits
// for.
func (t *orchTarget) workflowTimes(ctx context.Context, deployment string, start time.Time, at func(string, time.Time)) error {
	pev, err := history(ctx, t.tc, deploy.ProjectWorkflowID(t.project))
	if err != nil {
		return err
	}
	for _, e := range pev {
		if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED || e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
			if e.GetEventTime().AsTime().After(start) {
				at("projectWF", e.GetEventTime().AsTime())
				break
			}
		}
	}
	dev, err := history(ctx, t.tc, contract.DeploymentWorkflowID(deployment))
	if err != nil {
		return err
	}
	acts := activityTimes(dev)
	if len(dev) > 0 {
		at("deployWF", dev[0].GetEventTime().AsTime())
	}
	at("slot", acts[deploy.ActivityAcquireSlot+":completed"])
	for _, e := range dev {
		// A slot free at once is taken by a local activity: its marker.
		if e.GetEventType() == enumspb.EVENT_TYPE_MARKER_RECORDED && e.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
			at("slot", e.GetEventTime().AsTime())
			break
		}
	}
	at("marked", acts[deploy.ActivityMarkBuilding+":completed"])
	at("wakeStart", acts[deploy.ActivityWake+":started"])
	at("wakeDone", acts[deploy.ActivityWake+":completed"])
	at("fetchStart", acts[contract.ActivityFetch+":started"])
	at("buildStart", acts[contract.ActivityBuild+":started"])
	if bev, err := history(ctx, t.tc, "build-"+deployment); err == nil && len(bev) > 0 {
		at("buildWF", bev[0].GetEventTime().AsTime())
		for _, e := range bev {
			if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED {
				at("agentTask", e.GetEventTime().AsTime())
			}
			if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
				at("agentTaskDone", e.GetEventTime().AsTime())
				break
			}
		}
		bacts := activityTimes(bev)
		at("fetchScheduled", bacts[contract.ActivityFetch+":scheduled"])
		at("fetchStart", bacts[contract.ActivityFetch+":started"])
		at("buildStart", bacts[contract.ActivityBuild+":started"])
	}
	return nil
}

// dialServerTemporal connects to the embedded Temporal of the server whose
// data directory is dataDir, as that server does.
func dialServerTemporal(ctx context.Context, dataDir string) (client.Client, error) {
	return server.DialTemporal(ctx, dataDir, contract.DefaultTemporalNamespace, false)
}

// history is a workflow's latest run's events.
func history(ctx context.Context, c client.Client, id string) ([]*historypb.HistoryEvent, error) {
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var evs []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// activityTimes maps "Name:scheduled|started|completed" to the first such
// event of each activity type.
func activityTimes(evs []*historypb.HistoryEvent) map[string]time.Time {
	names := map[int64]string{}
	out := map[string]time.Time{}
	set := func(k string, t time.Time) {
		if _, ok := out[k]; !ok {
			out[k] = t
		}
	}
	for _, e := range evs {
		t := e.GetEventTime().AsTime()
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			name := e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			names[e.GetEventId()] = name
			set(name+":scheduled", t)
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			set(names[e.GetActivityTaskStartedEventAttributes().GetScheduledEventId()]+":started", t)
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			set(names[e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()]+":completed", t)
		}
	}
	return out
}

// printOrchestration prints each binary's median milestones side by side.
func printOrchestration(w io.Writer, bins []string, samples []orchSample) {
	var loads []int64
	for _, s := range samples {
		loads = append(loads, int64(s.Load1*10))
	}
	slices.Sort(loads)
	fmt.Fprintf(w, "\nOrchestration: median ms since the webhook POST (%d pushes per binary; load %.1f–%.1f, median %.1f)\n\n",
		len(samples)/max(1, len(bins)), float64(loads[0])/10, float64(loads[len(loads)-1])/10, float64(median(loads))/10)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "milestone\t")
	for i := range bins {
		fmt.Fprintf(tw, "[%d]\t", i+1)
	}
	if len(bins) == 2 {
		fmt.Fprint(tw, "[2]/[1]\t")
	}
	fmt.Fprintln(tw)
	of := func(bin, key string, timing bool) (int64, bool) {
		var xs []int64
		for _, s := range samples {
			if s.Binary != bin {
				continue
			}
			m := s.At
			if timing {
				m = s.Timings
			}
			if v, ok := m[key]; ok {
				xs = append(xs, v)
			}
		}
		return median(xs), len(xs) > 0
	}
	row := func(title, key string, timing bool) {
		fmt.Fprintf(tw, "%s\t", title)
		var vals []int64
		for _, b := range bins {
			if v, ok := of(b, key, timing); ok {
				fmt.Fprintf(tw, "%d\t", v)
				vals = append(vals, v)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		if len(bins) == 2 && len(vals) == 2 && vals[0] > 0 {
			fmt.Fprintf(tw, "%.2f\t", float64(vals[1])/float64(vals[0]))
		}
		fmt.Fprintln(tw)
	}
	for _, m := range orchMilestones {
		row(m.title, m.key, false)
	}
	fmt.Fprintln(tw, "deployment's own timings:\t")
	for _, k := range []string{"queue", "wake", "between", "fetch"} {
		row("  "+k, k, true)
	}
	_ = tw.Flush()
	for i, b := range bins {
		fmt.Fprintf(w, "[%d] %s\n", i+1, b)
	}
}
