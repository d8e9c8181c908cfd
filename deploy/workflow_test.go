package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

// fakeActivities stands in for the server's and the agent's activities by
// name; each field may override one activity's behaviour.
type fakeActivities struct {
	mu       sync.Mutex
	calls    map[string]int
	finished []FinishInput
	wake     func() error
	build    func(ctx context.Context) (builder.BuildActivityResult, error)
	// builds are the inputs the Build activity was called with.
	builds   []builder.BuildInput
	push     func(attempt int) (builder.PushResult, error)
	awaited  []LogWaitInput
	awaitLog func(LogWaitInput) (LogWaitResult, error)
	// slotsBusy: no build slot is free at once (TryAcquireBuildSlot).
	slotsBusy bool
	// finish, if set, answers FinishDeployment's attempt n (from 1)
	// before it records the result.
	finish func(attempt int) error
	// The build's activities run on the agent, which only a successful
	// wake starts: the stand-in Fetch waits for one (or its cancellation).
	woken    chan struct{}
	wakeOnce sync.Once
	// release, if set, answers the Release activity.
	release  func(ReleaseInput) error
	released []ReleaseInput
}

// wokenCh is closed once a wake succeeded.
func (f *fakeActivities) wokenCh() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.woken == nil {
		f.woken = make(chan struct{})
	}
	return f.woken
}

func (f *fakeActivities) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[name]++
	return f.calls[name]
}

// registrar is what fakeActivities registers with: a test environment or
// a real worker.
type registrar interface {
	RegisterWorkflowWithOptions(w interface{}, options workflow.RegisterOptions)
	RegisterActivityWithOptions(a interface{}, options activity.RegisterOptions)
}

func (f *fakeActivities) register(env registrar) {
	env.RegisterWorkflowWithOptions(builder.BuildWorkflow, workflow.RegisterOptions{Name: "BuildWorkflow"})
	env.RegisterActivityWithOptions(func(ctx context.Context, id string) error {
		f.count(ActivityMarkBuilding)
		return nil
	}, activity.RegisterOptions{Name: ActivityMarkBuilding})
	env.RegisterActivityWithOptions(func(ctx context.Context, id string) error {
		f.count(ActivityAcquireSlot)
		return nil
	}, activity.RegisterOptions{Name: ActivityAcquireSlot})
	env.RegisterActivityWithOptions(func(ctx context.Context, id string) (bool, error) {
		f.count(ActivityTryAcquireSlot)
		return !f.slotsBusy, nil
	}, activity.RegisterOptions{Name: ActivityTryAcquireSlot})
	env.RegisterActivityWithOptions(func(ctx context.Context, id string) error {
		f.count(ActivityReleaseSlot)
		return nil
	}, activity.RegisterOptions{Name: ActivityReleaseSlot})
	env.RegisterActivityWithOptions(func(ctx context.Context, project string) error {
		f.count(ActivityWake)
		if f.wake != nil {
			if err := f.wake(); err != nil {
				return err
			}
		}
		f.wakeOnce.Do(func() { close(f.wokenCh()) })
		return nil
	}, activity.RegisterOptions{Name: ActivityWake})
	env.RegisterActivityWithOptions(func(ctx context.Context, in FinishInput) error {
		n := f.count(ActivityFinish)
		if f.finish != nil {
			if err := f.finish(n); err != nil {
				return err
			}
		}
		f.mu.Lock()
		f.finished = append(f.finished, in)
		f.mu.Unlock()
		return nil
	}, activity.RegisterOptions{Name: ActivityFinish})
	env.RegisterActivityWithOptions(func(ctx context.Context, in ReleaseInput) error {
		f.count(ActivityRelease)
		f.mu.Lock()
		f.released = append(f.released, in)
		f.mu.Unlock()
		if f.release != nil {
			return f.release(in)
		}
		return nil
	}, activity.RegisterOptions{Name: ActivityRelease})
	env.RegisterActivityWithOptions(func(ctx context.Context, in LogWaitInput) (LogWaitResult, error) {
		f.count(ActivityAwaitLog)
		f.mu.Lock()
		f.awaited = append(f.awaited, in)
		f.mu.Unlock()
		if f.awaitLog != nil {
			return f.awaitLog(in)
		}
		return LogWaitResult{Complete: true, Lines: in.AgentLastLine, At: logCheckedAt}, nil
	}, activity.RegisterOptions{Name: ActivityAwaitLog})
	env.RegisterActivityWithOptions(func(ctx context.Context, in builder.BuildInput) (builder.FetchResult, error) {
		f.count(builder.ActivityFetch)
		select {
		case <-f.wokenCh():
		case <-ctx.Done():
			return builder.FetchResult{}, ctx.Err()
		}
		return builder.FetchResult{Dir: "/vol/work/" + in.DeploymentID}, nil
	}, activity.RegisterOptions{Name: builder.ActivityFetch})
	env.RegisterActivityWithOptions(func(ctx context.Context, in builder.BuildInput) (builder.BuildActivityResult, error) {
		f.count(builder.ActivityBuild)
		f.mu.Lock()
		f.builds = append(f.builds, in)
		f.mu.Unlock()
		if in.Dir == "" {
			return builder.BuildActivityResult{}, errors.New("build got no checkout dir")
		}
		if f.build != nil {
			return f.build(ctx)
		}
		return builder.BuildActivityResult{Steps: []slipway.BuildStep{{N: 1, Instruction: "STEP 1/1: FROM base", Cached: true}}}, nil
	}, activity.RegisterOptions{Name: builder.ActivityBuild})
	env.RegisterActivityWithOptions(func(ctx context.Context, in builder.BuildInput) (builder.PushResult, error) {
		n := f.count(builder.ActivityPush)
		if f.push != nil {
			return f.push(n)
		}
		return builder.PushResult{Digest: "sha256:abc"}, nil
	}, activity.RegisterOptions{Name: builder.ActivityPush})
}

// logCheckedAt is when the stand-in AwaitLog found a log complete.
var logCheckedAt = time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)

func input() DeploymentInput {
	return DeploymentInput{
		DeploymentID: "d1", Project: "app", Repo: "file:///repo", Ref: "refs/heads/main",
		Commit: strings.Repeat("a", 40), Dockerfile: "Dockerfile", Context: ".",
		Image: "reg/app:" + strings.Repeat("a", 40), QueuedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func run(t *testing.T, f *fakeActivities, setup func(env *testsuite.TestWorkflowEnvironment)) slipway.DeploymentResult {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC))
	f.calls = map[string]int{}
	f.register(env)
	if setup != nil {
		setup(env)
	}
	env.ExecuteWorkflow(DeploymentWorkflow, input())
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var res slipway.DeploymentResult
	if err := env.GetWorkflowResult(&res); err != nil && !temporal.IsCanceledError(err) {
		t.Fatalf("workflow error: %v", err)
	}
	if len(f.finished) != 1 {
		t.Fatalf("FinishDeployment ran %d times, want exactly once", len(f.finished))
	}
	return f.finished[0].Result
}

func TestDeploymentSucceeds(t *testing.T) {
	f := &fakeActivities{}
	r := run(t, f, nil)
	if r.Status != slipway.StatusSucceeded || r.Digest != "sha256:abc" || r.Image != input().Image {
		t.Fatalf("result = %+v, want succeeded with digest and image", r)
	}
	for _, k := range []string{"queue", "wake", "fetch", "build", "push", "release", "total"} {
		if _, ok := r.Timings[k]; !ok {
			t.Errorf("timings %v lack %q", r.Timings, k)
		}
	}
	if len(f.released) != 1 || f.released[0] != (ReleaseInput{Project: "app", DeploymentID: input().DeploymentID, Image: input().Image}) {
		t.Errorf("released %+v, want the built image once", f.released)
	}
	if r.Timings["queue"] != 1000 {
		t.Errorf("queue timing = %d ms, want 1000 (queued 1s before the workflow started)", r.Timings["queue"])
	}
	// A free slot is taken by the local activity: no wait in the queue.
	if f.calls[ActivityTryAcquireSlot] != 1 || f.calls[ActivityAcquireSlot] != 0 || f.calls[ActivityReleaseSlot] != 1 {
		t.Errorf("build slot taken %d times at once, waited for %d times, released %d times; want 1, 0, 1", f.calls[ActivityTryAcquireSlot], f.calls[ActivityAcquireSlot], f.calls[ActivityReleaseSlot])
	}
	if f.calls[ActivityMarkBuilding] != 1 || f.calls[builder.ActivityFetch] != 1 || f.calls[builder.ActivityBuild] != 1 || f.calls[builder.ActivityPush] != 1 {
		t.Errorf("activity calls = %v, want each once", f.calls)
	}
}

// With no slot free at once, the deployment waits for one in
// AcquireBuildSlot, then builds.
func TestDeploymentWaitsForABusySlot(t *testing.T) {
	f := &fakeActivities{slotsBusy: true}
	if r := run(t, f, nil); r.Status != slipway.StatusSucceeded {
		t.Fatalf("result = %+v, want succeeded", r)
	}
	if f.calls[ActivityTryAcquireSlot] != 1 || f.calls[ActivityAcquireSlot] != 1 || f.calls[ActivityReleaseSlot] != 1 || f.calls[builder.ActivityBuild] != 1 {
		t.Errorf("activity calls = %v, want one try, one wait, one release, one build", f.calls)
	}
}

func TestBuildFailureIsNotRetried(t *testing.T) {
	f := &fakeActivities{build: func(context.Context) (builder.BuildActivityResult, error) {
		return builder.BuildActivityResult{}, temporal.NewNonRetryableApplicationError("build failed at STEP 2/2: RUN false (exit code 1)", builder.ErrBuildFailed, nil,
			builder.FailureDetails{Step: "STEP 2/2: RUN false", Tail: []string{"oops", "Error: building at STEP"}})
	}}
	r := run(t, f, nil)
	if r.Status != slipway.StatusFailed || r.FailedStep != "STEP 2/2: RUN false" || !strings.Contains(r.Error, "oops") {
		t.Fatalf("result = %+v, want failed at the RUN step with the output tail", r)
	}
	if f.calls[builder.ActivityBuild] != 1 {
		t.Errorf("Build ran %d times; a failing Dockerfile must not be retried", f.calls[builder.ActivityBuild])
	}
	if f.calls[builder.ActivityPush] != 0 {
		t.Errorf("Push ran after a failed build")
	}
}

// A failed build has no BuildWorkflow timings: the phases the agent
// reported entering are timed from its progress signals.
func TestFailedBuildRecordsPhaseTimings(t *testing.T) {
	f := &fakeActivities{build: func(context.Context) (builder.BuildActivityResult, error) {
		return builder.BuildActivityResult{}, temporal.NewNonRetryableApplicationError("build failed", builder.ErrBuildFailed, nil)
	}}
	r := run(t, f, func(env *testsuite.TestWorkflowEnvironment) {
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(builder.SignalProgress, slipway.Progress{Phase: slipway.PhaseFetch}) }, 0)
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(builder.SignalProgress, slipway.Progress{Phase: slipway.PhaseBuild}) }, 0)
	})
	if r.Status != slipway.StatusFailed {
		t.Fatalf("result = %+v, want failed", r)
	}
	for _, p := range []string{"queue", "fetch", "build", "total"} {
		if _, ok := r.Timings[p]; !ok {
			t.Errorf("failed build's timings %v lack %s", r.Timings, p)
		}
	}
	if _, ok := r.Timings["push"]; ok {
		t.Errorf("failed build's timings %v have a push it never reached", r.Timings)
	}
}

// An image that does not become healthy fails the deployment at phase
// release, with the app's output; it is not retried.
func TestReleaseFailure(t *testing.T) {
	f := &fakeActivities{release: func(ReleaseInput) error {
		return temporal.NewNonRetryableApplicationError("the new release did not become healthy: it exited with status 3", errReleaseUnhealthy, nil,
			builder.FailureDetails{Step: slipway.PhaseRelease, Tail: []string{"panic: no DATABASE_URL"}})
	}}
	r := run(t, f, nil)
	if r.Status != slipway.StatusFailed || r.FailedStep != "release" || !strings.Contains(r.Error, "exited with status 3") ||
		!strings.Contains(r.Error, "no DATABASE_URL") || strings.HasPrefix(r.Error, "release: ") {
		t.Fatalf("result = %+v, want failed at release with the app's output", r)
	}
	if r.Image != input().Image || r.Digest != "sha256:abc" {
		t.Errorf("a failed release's record lost its image: %+v", r)
	}
	if _, ok := r.Timings["release"]; !ok {
		t.Errorf("timings %v lack release", r.Timings)
	}
	if f.calls[ActivityRelease] != 1 {
		t.Errorf("Release ran %d times; an unhealthy app must not be retried", f.calls[ActivityRelease])
	}
	// A transient failure (the store busy) is retried.
	f = &fakeActivities{release: func(ReleaseInput) error {
		if len(f.released) < 3 {
			return errors.New("database is locked")
		}
		return nil
	}}
	if r := run(t, f, nil); r.Status != slipway.StatusSucceeded || f.calls[ActivityRelease] != 3 {
		t.Errorf("after transient release errors: %+v, %d attempts; want succeeded at the third", r, f.calls[ActivityRelease])
	}
}

func TestPushRetriedOnTransientErrors(t *testing.T) {
	f := &fakeActivities{push: func(attempt int) (builder.PushResult, error) {
		if attempt < 3 {
			return builder.PushResult{}, errors.New("connection refused")
		}
		return builder.PushResult{Digest: "sha256:def"}, nil
	}}
	r := run(t, f, nil)
	if r.Status != slipway.StatusSucceeded || r.Digest != "sha256:def" {
		t.Fatalf("result = %+v, want succeeded after push retries", r)
	}
	if f.calls[builder.ActivityPush] != 3 || f.calls[builder.ActivityBuild] != 1 {
		t.Errorf("calls = %v, want 3 pushes and 1 build", f.calls)
	}
}

func TestPushGivesUpWithClearError(t *testing.T) {
	f := &fakeActivities{push: func(int) (builder.PushResult, error) {
		return builder.PushResult{}, errors.New("registry unreachable")
	}}
	r := run(t, f, nil)
	if r.Status != slipway.StatusFailed || !strings.Contains(r.Error, "registry unreachable") {
		t.Fatalf("result = %+v, want failed with the push error", r)
	}
}

func TestWakeFailure(t *testing.T) {
	f := &fakeActivities{wake: func() error {
		return temporal.NewNonRetryableApplicationError("no such binary", "WakeFailed", nil)
	}}
	r := run(t, f, nil)
	if r.Status != slipway.StatusFailed || r.FailedStep != "wake" || !strings.Contains(r.Error, "no such binary") {
		t.Fatalf("result = %+v, want failed at wake", r)
	}
	// The build starts with the wake (its Fetch waits for the agent the
	// wake starts): it is cancelled, and the deployment records the wake's
	// failure, not the build's outcome.
	if f.calls[builder.ActivityPush] != 0 {
		t.Errorf("pushed although the machine did not wake")
	}
	// No builder ever wrote a line: nothing to wait for. (The build starts
	// alongside the wake, so AwaitLog runs, and returns at once without a
	// line to wait for: TestAwaitLog.)
	if len(f.awaited) > 1 || (len(f.awaited) == 1 && f.awaited[0].AgentLastLine != 0) || r.LogComplete == nil || !*r.LogComplete || r.LogLines != 0 {
		t.Errorf("log of a deployment whose machine did not wake: AwaitLog inputs %+v, complete %v, %d lines; want no agent line, complete, 0 lines",
			f.awaited, r.LogComplete, r.LogLines)
	}
}

// A recorded failure keeps the whole chain of its context, without
// Temporal's wrappers: the machine that did not start is named, not only
// the provider's last words.
func TestFailureKeepsItsContext(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *fakeActivities
		want string
	}{
		{"wake", &fakeActivities{wake: func() error {
			return temporal.NewNonRetryableApplicationError("no machine", "WakeFailed", nil)
		}}, "could not start the builder machine: no machine"},
		{"push", &fakeActivities{push: func(int) (builder.PushResult, error) {
			return builder.PushResult{}, temporal.NewNonRetryableApplicationError("push reg/app: registry unreachable", "PushFailed", nil)
		}}, "push reg/app: registry unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := run(t, tc.f, nil); r.Error != tc.want {
				t.Errorf("recorded error = %q, want %q", r.Error, tc.want)
			}
		})
	}
}

// failureMessage keeps the workflow's own context around a Temporal
// failure and drops the wrappers Temporal adds.
func TestFailureMessage(t *testing.T) {
	app := temporal.NewApplicationError("no machine", "WakeFailed")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("plain"), "plain"},
		{fmt.Errorf("could not start the builder machine: %w", app), "could not start the builder machine: no machine"},
		{fmt.Errorf("no build slot: %w", fmt.Errorf("slot %d: %w", 3, app)), "no build slot: slot 3: no machine"},
		{fmt.Errorf("no build slot: %w (after %d tries)", app, 2), "no build slot: no machine (after 2 tries)"},
	} {
		if got := failureMessage("wake", tc.err); got != tc.want {
			t.Errorf("failureMessage(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// The workflow waits for the archiver before it records the end, with the
// agent's last line number, and records what the wait found.
func TestLogCompleteRecorded(t *testing.T) {
	f := &fakeActivities{}
	r := run(t, f, func(env *testsuite.TestWorkflowEnvironment) {
		// Two activities end (both at once: a later delay races the fake
		// activities, which take no workflow time); the higher number wins
		// whatever the order.
		env.RegisterDelayedCallback(func() {
			env.SignalWorkflow(builder.SignalLogEnd, int64(57))
			env.SignalWorkflow(builder.SignalLogEnd, int64(40))
		}, 0)
	})
	if len(f.awaited) != 1 || f.awaited[0].AgentLastLine != 57 || f.awaited[0].Settle != 0 {
		t.Fatalf("AwaitLog inputs = %+v, want one with the agent's last line 57 and no settle time", f.awaited)
	}
	if r.LogComplete == nil || !*r.LogComplete || r.LogLines != 57 || !r.LogCompleteAt.Equal(logCheckedAt) {
		t.Errorf("recorded log complete %v, %d lines at %v; want complete, 57 lines at %v", r.LogComplete, r.LogLines, r.LogCompleteAt, logCheckedAt)
	}

	f = &fakeActivities{awaitLog: func(in LogWaitInput) (LogWaitResult, error) {
		return LogWaitResult{Complete: false, Lines: 9, At: logCheckedAt, Missing: "lines 1..9 not all stored after 30s"}, nil
	}}
	r = run(t, f, nil)
	if r.Status != slipway.StatusSucceeded || r.LogComplete == nil || *r.LogComplete || r.LogLines != 9 {
		t.Errorf("with the log short: status %s, log complete %v, %d lines; want succeeded, incomplete, 9", r.Status, r.LogComplete, r.LogLines)
	}

	f = &fakeActivities{awaitLog: func(in LogWaitInput) (LogWaitResult, error) {
		return LogWaitResult{}, temporal.NewNonRetryableApplicationError("no log archiver to wait for", "NoArchiver", nil)
	}}
	r = run(t, f, nil)
	if r.Status != slipway.StatusSucceeded || r.LogComplete == nil || *r.LogComplete {
		t.Errorf("when the wait fails: status %s, log complete %v; want succeeded, incomplete", r.Status, r.LogComplete)
	}
}

func TestCancelRecordsCancelled(t *testing.T) {
	f := &fakeActivities{build: func(ctx context.Context) (builder.BuildActivityResult, error) {
		// A long build that honours cancellation.
		for {
			select {
			case <-ctx.Done():
				return builder.BuildActivityResult{}, ctx.Err()
			case <-time.After(10 * time.Millisecond):
				activity.RecordHeartbeat(ctx)
			}
		}
	}}
	r := run(t, f, func(env *testsuite.TestWorkflowEnvironment) {
		env.SetTestTimeout(30 * time.Second)
		env.RegisterDelayedCallback(env.CancelWorkflow, 100*time.Millisecond)
	})
	if r.Status != slipway.StatusCancelled {
		t.Fatalf("result = %+v, want cancelled", r)
	}
	// The cancelled agent may still be writing: the wait looks again.
	if len(f.awaited) != 1 || f.awaited[0].Settle != stoppedSettle {
		t.Errorf("AwaitLog inputs = %+v, want one with settle time %s", f.awaited, stoppedSettle)
	}
}

func TestRollbackRunsNoBuild(t *testing.T) {
	f := &fakeActivities{}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f.calls = map[string]int{}
	f.register(env)
	in := input()
	in.Reuse = &ReuseImage{Image: "reg/app:old", Digest: "sha256:old", From: "d0"}
	env.ExecuteWorkflow(DeploymentWorkflow, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(f.finished) != 1 {
		t.Fatalf("finished %d times", len(f.finished))
	}
	r := f.finished[0].Result
	if r.Status != slipway.StatusSucceeded || r.Digest != "sha256:old" || r.Image != "reg/app:old" {
		t.Errorf("rollback result = %+v, want succeeded with the earlier image", r)
	}
	if len(f.released) != 1 || f.released[0].Image != "reg/app:old" {
		t.Errorf("a rollback released %+v, want the earlier image once", f.released)
	}
	if r.LogComplete == nil || !*r.LogComplete {
		t.Errorf("a rollback's (empty) log recorded complete %v, want complete", r.LogComplete)
	}
	for _, a := range []string{ActivityWake, builder.ActivityFetch, builder.ActivityBuild, builder.ActivityPush, ActivityAwaitLog} {
		if f.calls[a] != 0 {
			t.Errorf("a rollback ran %s", a)
		}
	}
}

// The workflow answers the state query with its phase, and with the build
// step the agent signalled.
func TestProgressQuery(t *testing.T) {
	release := make(chan struct{})
	var building atomic.Bool
	f := &fakeActivities{build: func(ctx context.Context) (builder.BuildActivityResult, error) {
		building.Store(true)
		for {
			select {
			case <-ctx.Done():
				return builder.BuildActivityResult{}, ctx.Err()
			case <-release:
				return builder.BuildActivityResult{Steps: []slipway.BuildStep{
					{N: 1, Instruction: "STEP 1/3: FROM base", Cached: true},
					{N: 2, Instruction: "STEP 2/3: COPY . .", Cached: true},
					{N: 3, Instruction: "STEP 3/3: RUN make"},
				}}, nil
			case <-time.After(10 * time.Millisecond):
				activity.RecordHeartbeat(ctx)
			}
		}
	}}
	var env *testsuite.TestWorkflowEnvironment
	query := func() slipway.Progress {
		t.Helper()
		v, err := env.QueryWorkflow(QueryState)
		if err != nil {
			t.Fatalf("query %s: %v", QueryState, err)
		}
		var p slipway.Progress
		if err := v.Get(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The test clock skips ahead while no activity runs: each check waits
	// for the (fake) build activity to run, then schedules the next one,
	// so they happen in order while it runs.
	var chain func(steps ...func())
	chain = func(steps ...func()) {
		if len(steps) == 0 {
			return
		}
		env.RegisterDelayedCallback(func() {
			if !building.Load() {
				chain(steps...)
				return
			}
			steps[0]()
			chain(steps[1:]...)
		}, 50*time.Millisecond)
	}
	var beforeSignal, midBuild, inPush, afterFetchAgain slipway.Progress
	step := slipway.Progress{Phase: slipway.PhaseBuild, Step: 2, StepsTotal: 3, Instruction: "COPY . .", CachedSteps: 2}
	r := run(t, f, func(e *testsuite.TestWorkflowEnvironment) {
		env = e
		env.SetTestTimeout(30 * time.Second)
		chain(
			func() {
				beforeSignal = query()
				env.SignalWorkflow(builder.SignalProgress, slipway.Progress{Phase: slipway.PhaseBuild})
				env.SignalWorkflow(builder.SignalProgress, step)
			},
			func() {
				midBuild = query()
				// The push keeps the build's step counts.
				env.SignalWorkflow(builder.SignalProgress, slipway.Progress{Phase: slipway.PhasePush})
			},
			func() {
				inPush = query()
				env.SignalWorkflow(builder.SignalProgress, slipway.Progress{Phase: slipway.PhaseFetch})
			},
			func() {
				afterFetchAgain = query()
				close(release)
			},
		)
	})
	if r.Status != slipway.StatusSucceeded {
		t.Fatalf("result = %+v, want succeeded", r)
	}
	if beforeSignal != (slipway.Progress{Phase: slipway.PhaseFetch}) {
		t.Errorf("state once the build started = %+v, want phase fetch and no steps", beforeSignal)
	}
	if midBuild != step {
		t.Errorf("state mid-build = %+v, want %+v", midBuild, step)
	}
	wantPush := step
	wantPush.Phase = slipway.PhasePush
	if inPush != wantPush {
		t.Errorf("state in push = %+v, want %+v", inPush, wantPush)
	}
	if afterFetchAgain != (slipway.Progress{Phase: slipway.PhaseFetch}) {
		t.Errorf("state after a new fetch = %+v, want phase fetch and the steps reset", afterFetchAgain)
	}
	if p := query(); p.Phase != slipway.PhaseDone {
		t.Errorf("state after the end = %+v, want phase done", p)
	}
}

// The phases the workflow drives itself, seen from a wake that takes a
// while.
func TestProgressQueryWake(t *testing.T) {
	var env *testsuite.TestWorkflowEnvironment
	var seen slipway.Progress
	var waking atomic.Bool
	woke := make(chan struct{})
	f := &fakeActivities{wake: func() error {
		if waking.CompareAndSwap(false, true) {
			<-woke
		}
		return nil
	}}
	var check func()
	check = func() {
		if !waking.Load() {
			env.RegisterDelayedCallback(check, 50*time.Millisecond)
			return
		}
		v, err := env.QueryWorkflow(QueryState)
		if err == nil {
			err = v.Get(&seen)
		}
		if err != nil {
			t.Error(err)
		}
		close(woke)
	}
	run(t, f, func(e *testsuite.TestWorkflowEnvironment) {
		env = e
		env.SetTestTimeout(30 * time.Second)
		env.RegisterDelayedCallback(check, 50*time.Millisecond)
	})
	if seen.Phase != slipway.PhaseWake {
		t.Errorf("state while waking = %+v, want phase wake", seen)
	}
}
