// Package deploy holds the Temporal workflows that turn a deployment record
// into an image: ProjectWorkflow and DeploymentWorkflow on the control
// plane's task queue, which starts the child builder.BuildWorkflow on the
// project's own queue (builder-<project>), whose activities (fetch, build,
// push) the project's agent runs. It also holds the application services
// that own the rules the edges (the API, the webhook, the demo) apply: the
// Deployer service that records deployments and starts them (and decides
// which deliveries need none, Earlier), the project service (Projects),
// and what of a project is masked in the errors users see
// (projectRedactor).
//
// Workflow code here must stay deterministic (workflow.Now, workflow.Go,
// selectors; no I/O). What it shares with the agent is in package builder;
// it must not import the agent or its drivers (buildah, gitmirror):
// activities are called by name.
package deploy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

// ControlQueue is the task queue the server's worker polls.
const ControlQueue = "slipway-control"

// Control activity names: they run in the server. The build activities,
// which the project's agent runs, are named in package builder.
const (
	ActivityMarkBuilding = "MarkBuilding"
	ActivityWake         = "WakeMachine"
	ActivityFinish       = "FinishDeployment"
	ActivityAcquireSlot  = "AcquireBuildSlot"
	// ActivityTryAcquireSlot is a local activity (the control worker's
	// process holds the slots): a slot now, or none without waiting.
	ActivityTryAcquireSlot = "TryAcquireBuildSlot"
	ActivityReleaseSlot    = "ReleaseBuildSlot"
)

// DeploymentInput starts a DeploymentWorkflow.
type DeploymentInput struct {
	DeploymentID string
	Project      string
	Repo         string
	Ref          string
	Commit       string
	Dockerfile   string
	Context      string
	// Image is the full reference to push: <registry>/<project>:<commit>.
	Image string
	// QueuedAt is when the deployment was recorded.
	QueuedAt time.Time
	// MaxBuild bounds the whole build; zero or less means DefaultMaxBuild.
	MaxBuild time.Duration
	// Reuse, when set, deploys an image an earlier deployment built (a
	// rollback): no machine wakes, nothing builds.
	Reuse *ReuseImage
	// Secrets names the project's build secrets and SecretsToken lets the
	// agent fetch their values at build time (package buildsecrets): the
	// values never travel through the workflow's history.
	Secrets      []string
	SecretsToken string
	// BuildArgs are the project's build arguments (name to value) as they
	// were when the deployment was asked for. Added after histories were
	// recorded: omitted when empty, so older inputs encode as before.
	BuildArgs map[string]string `json:",omitempty"`
	// LogLimit bounds the deployment's build log (the project's, defaults
	// filled in). Added after histories were recorded: omitted when zero,
	// and an agent given none applies the defaults.
	LogLimit slipway.LogLimit `json:",omitzero"`
	// Preview is the pull request the deployment previews (its Ref is
	// refs/pull/<N>/head), 0 for the project's own: a preview never
	// becomes the project's release. Omitted when zero.
	Preview int `json:",omitempty"`
}

// finishRetry is how FinishDeployment is retried: without a practical
// limit (a billion attempts, 30 s apart at most: it is Temporal's "no
// limit", 0, spelt so that the SDK's test environment honours it too), so
// that a result the store cannot write for a while (its disk is full) is
// recorded once it can. Errors that a retry cannot fix (an unknown
// deployment) are not retried (ControlActivities.FinishDeployment).
var finishRetry = temporal.RetryPolicy{
	InitialInterval:    200 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    30 * time.Second,
	MaximumAttempts:    1 << 30,
}

// ReuseImage names an already pushed image.
type ReuseImage struct {
	Image  string
	Digest string
	// From is the deployment that built it.
	From string
}

// FinishInput is the FinishDeployment activity's input.
type FinishInput struct {
	DeploymentID string
	Result       slipway.DeploymentResult
}

// keepAwakeEvery is how often DeploymentWorkflow makes sure the project's
// machine is still running while its build is in progress, so an agent
// that died (or a server restart) never leaves a build waiting forever.
const keepAwakeEvery = 10 * time.Second

// versionParallelStart is the workflow.GetVersion change id of
// DeploymentWorkflow's version 1: MarkBuilding, WakeMachine and the child
// BuildWorkflow start together instead of one after the other. Histories
// recorded before it replay on the old path.
const versionParallelStart = "parallel-start"

// versionLocalSlot is the change id of DeploymentWorkflow's version with a
// local activity that takes a free build slot at once (no task queue
// round trip: ~30 ms on the way to the build); only when none is free
// does the deployment wait in AcquireBuildSlot. Histories recorded before
// it replay on the old path.
const versionLocalSlot = "local-slot"

// DefaultMaxBuild bounds one build when no other bound is configured
// (ServiceConfig.MaxBuild, DeploymentInput.MaxBuild, `slipway server
// --max-build`). DeploymentWorkflow reads it for inputs recorded without a
// bound: changing it changes the workflow's replay of such histories.
const DefaultMaxBuild = time.Hour

// DeploymentWorkflow drives one deployment from queued to a terminal state.
// Whatever happens (failure, cancellation, timeout), it records a terminal
// status before it ends.
//
// Long: its steps share the deferred recording of the result (res,
// timings, reachedBuilder) and the two versioned start paths must keep
// issuing their commands in the recorded order for replay; it reads as
// the path of one deployment, top to bottom.
func DeploymentWorkflow(ctx workflow.Context, in DeploymentInput) (res slipway.DeploymentResult, err error) {
	if in.MaxBuild <= 0 {
		in.MaxBuild = DefaultMaxBuild
	}
	logger := workflow.GetLogger(ctx)
	ctrl := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           ControlQueue,
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    200 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
			MaximumAttempts:    10,
		},
	})
	timings := map[string]int64{}
	started := workflow.Now(ctx)
	timings["queue"] = max(0, started.Sub(in.QueuedAt).Milliseconds())
	progress := newProgress()
	logEnd := trackLogEnd(ctx)
	reachedBuilder := false

	// Record the outcome whatever happens, on a context that survives
	// cancellation.
	defer func() {
		progress.phase(slipway.PhaseDone)
		if res.Status == "" || !res.Status.Terminal() {
			res = slipway.DeploymentResult{Status: slipway.StatusFailed, Error: "deployment ended without a result"}
		}
		if errors.Is(ctx.Err(), workflow.ErrCanceled) && (res.Status == slipway.StatusFailed || res.Status == slipway.StatusCancelled) {
			reason := StopReason{Status: slipway.StatusCancelled}
			workflow.GetSignalChannel(ctx, SignalStop).ReceiveAsync(&reason)
			res = slipway.DeploymentResult{Status: reason.Status, Error: reason.Message()}
		}
		timings["total"] = workflow.Now(ctx).Sub(in.QueuedAt).Milliseconds()
		res.Timings = timings
		dctx, _ := workflow.NewDisconnectedContext(ctrl)
		recordLogCompleteness(ctx, dctx, in, reachedBuilder, logEnd, &res)
		// The result is recorded however long the store cannot write (a
		// full disk): retried until it is, never left "building".
		fctx := workflow.WithRetryPolicy(dctx, finishRetry)
		if ferr := workflow.ExecuteActivity(fctx, ActivityFinish, FinishInput{DeploymentID: in.DeploymentID, Result: res}).Get(fctx, nil); ferr != nil {
			logger.Error("recording the deployment result failed", "deployment", in.DeploymentID, "error", ferr)
			err = ferr
		}
	}()

	if err := progress.track(ctx); err != nil {
		return failed("queue", err), nil
	}

	if in.Reuse == nil {
		// Wait for a build slot (a global limit, fair across projects);
		// the deployment stays queued meanwhile.
		slotCtx := workflow.WithActivityOptions(ctrl, workflow.ActivityOptions{
			TaskQueue:           ControlQueue,
			StartToCloseTimeout: in.MaxBuild,
			HeartbeatTimeout:    builder.HeartbeatTimeout,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second},
		})
		held := false
		if workflow.GetVersion(ctx, versionLocalSlot, workflow.DefaultVersion, 1) == 1 {
			lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
				ScheduleToCloseTimeout: 10 * time.Second,
				RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
			})
			// A failure here only means waiting in the queue below.
			_ = workflow.ExecuteLocalActivity(lctx, ActivityTryAcquireSlot, in.DeploymentID).Get(ctx, &held)
		}
		if !held {
			if err := workflow.ExecuteActivity(slotCtx, ActivityAcquireSlot, in.DeploymentID).Get(ctx, nil); err != nil {
				return failed("queue", fmt.Errorf("no build slot: %w", err)), nil
			}
		}
		defer func() {
			dctx, _ := workflow.NewDisconnectedContext(ctrl)
			_ = workflow.ExecuteActivity(dctx, ActivityReleaseSlot, in.DeploymentID).Get(dctx, nil)
		}()
		timings["queue"] = max(0, workflow.Now(ctx).Sub(in.QueuedAt).Milliseconds())
	}
	if in.Reuse != nil {
		if err := workflow.ExecuteActivity(ctrl, ActivityMarkBuilding, in.DeploymentID).Get(ctx, nil); err != nil {
			return failed("record building", err), nil
		}
		if in.Preview == 0 && workflow.GetVersion(ctx, versionRelease, workflow.DefaultVersion, 1) == 1 {
			if err := release(ctx, ctrl, in, in.Reuse.Image, progress, timings); err != nil {
				return releaseFailed(err, in.Reuse.Image, in.Reuse.Digest, nil), nil
			}
		}
		return slipway.DeploymentResult{Status: slipway.StatusSucceeded, Image: in.Reuse.Image, Digest: in.Reuse.Digest}, nil
	}

	childCtx, cancelChild := workflow.WithCancel(ctx)
	defer cancelChild()
	childCtx = workflow.WithChildOptions(childCtx, workflow.ChildWorkflowOptions{
		WorkflowID:         builder.BuildWorkflowID(in.DeploymentID),
		TaskQueue:          builder.Queue(in.Project),
		WorkflowRunTimeout: in.MaxBuild,
		// The agent may be gone for a while (machine restarting): do not
		// fail the build because a workflow task waited.
		WorkflowTaskTimeout: time.Minute,
	})
	startBuild := func() workflow.ChildWorkflowFuture {
		return workflow.ExecuteChildWorkflow(childCtx, builder.BuildWorkflow, builder.BuildInput{
			DeploymentID: in.DeploymentID,
			Project:      in.Project,
			Repo:         in.Repo,
			Commit:       in.Commit,
			Ref:          in.Ref,
			Dockerfile:   in.Dockerfile,
			Context:      in.Context,
			Image:        in.Image,
			Secrets:      in.Secrets,
			SecretsToken: in.SecretsToken,
			BuildArgs:    in.BuildArgs,
			LogLimit:     in.LogLimit,
		})
	}
	// stopBuild cancels a started build and waits for it to acknowledge.
	stopBuild := func(child workflow.ChildWorkflowFuture) {
		cancelChild()
		_ = child.Get(ctx, nil)
	}

	var child workflow.ChildWorkflowFuture
	if workflow.GetVersion(ctx, versionParallelStart, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		// Before version 1: record building, wake, then start the build,
		// one after the other.
		if err := workflow.ExecuteActivity(ctrl, ActivityMarkBuilding, in.DeploymentID).Get(ctx, nil); err != nil {
			return failed("record building", err), nil
		}
		progress.phase(slipway.PhaseWake)
		wakeStart := workflow.Now(ctx)
		if err := workflow.ExecuteActivity(ctrl, ActivityWake, in.Project).Get(ctx, nil); err != nil {
			return failed("wake", fmt.Errorf("could not start the builder machine: %w", err)), nil
		}
		timings["wake"] = workflow.Now(ctx).Sub(wakeStart).Milliseconds()
		progress.phase(slipway.PhaseFetch)
		child = startBuild()
		reachedBuilder = true
	} else {
		// Record building, wake the machine and start the build at once:
		// the build's first task waits on the builder queue until the
		// agent polls, which it does the moment it is awake (often already,
		// woken at webhook time: Service's EarlyWake), instead of after two
		// more trips through Temporal.
		marked := workflow.ExecuteActivity(ctrl, ActivityMarkBuilding, in.DeploymentID)
		progress.phase(slipway.PhaseWake)
		wakeStart := workflow.Now(ctx)
		woke := workflow.ExecuteActivity(ctrl, ActivityWake, in.Project)
		child = startBuild()
		// The agent may already be awake and writing: wait for its log
		// even if the wake or mark then fails (AwaitLog returns at once
		// when no line was written).
		reachedBuilder = true
		if err := marked.Get(ctx, nil); err != nil {
			stopBuild(child)
			return failed("record building", err), nil
		}
		if err := woke.Get(ctx, nil); err != nil {
			stopBuild(child)
			if ctx.Err() != nil {
				return slipway.DeploymentResult{Status: slipway.StatusCancelled, Error: "cancelled"}, nil
			}
			return failed("wake", fmt.Errorf("could not start the builder machine: %w", err)), nil
		}
		timings["wake"] = workflow.Now(ctx).Sub(wakeStart).Milliseconds()
		// The agent may have reported its own phase already.
		progress.advance(slipway.PhaseWake, slipway.PhaseFetch)
	}

	var built builder.BuildResult
	var buildErr error
	done := false
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(child, func(f workflow.Future) {
		buildErr = f.Get(ctx, &built)
		done = true
	})
	for !done {
		timer := workflow.NewTimer(ctx, keepAwakeEvery)
		timerFired := false
		sel.AddFuture(timer, func(workflow.Future) { timerFired = true })
		sel.Select(ctx)
		if ctx.Err() != nil && !done {
			// Cancelled: wait for the child to acknowledge its cancellation.
			stopBuild(child)
			return slipway.DeploymentResult{Status: slipway.StatusCancelled, Error: "cancelled"}, nil
		}
		if timerFired && !done {
			// Best effort: the activity restarts the agent if it died.
			_ = workflow.ExecuteActivity(ctrl, ActivityWake, in.Project).Get(ctx, nil)
		}
	}
	if buildErr != nil {
		// The phases the agent went through, as far as it got.
		agent := progress.agentTimings(workflow.Now(ctx))
		for _, k := range sortedKeys(agent) {
			timings[k] = agent[k]
		}
		return failed("build", buildErr), nil
	}
	for _, k := range sortedKeys(built.Timings) {
		timings[k] = built.Timings[k]
	}
	if in.Preview == 0 && workflow.GetVersion(ctx, versionRelease, workflow.DefaultVersion, 1) == 1 {
		if err := release(ctx, ctrl, in, built.Image, progress, timings); err != nil {
			return releaseFailed(err, built.Image, built.Digest, built.Steps), nil
		}
	}
	return slipway.DeploymentResult{Status: slipway.StatusSucceeded, Image: built.Image, Digest: built.Digest, Steps: built.Steps}, nil
}

// failed turns an error into a failed result, keeping the failing step,
// the whole chain of context of the error (failureMessage) and the last
// output lines of a BuildFailed error.
func failed(phase string, err error) slipway.DeploymentResult {
	r := slipway.DeploymentResult{Status: slipway.StatusFailed, FailedStep: phase, Error: failureMessage(phase, err)}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		var d builder.FailureDetails
		if appErr.HasDetails() && appErr.Details(&d) == nil {
			if d.Step != "" {
				r.FailedStep = d.Step
			}
			if len(d.Tail) > 0 {
				r.Error += "\n" + strings.Join(d.Tail, "\n")
			}
		}
	}
	return r
}

// failureMessage is err's message as a deployment records it: the
// context the workflow wrapped it in ("could not start the builder
// machine: ...") kept whole, and the failure Temporal carried reduced to
// its message, without Temporal's wrappers ("activity error (type: ...,
// scheduledEventID: ...)").
func failureMessage(phase string, err error) string {
	if temporalError(err) {
		return temporalMessage(phase, err)
	}
	inner := errors.Unwrap(err)
	if inner == nil {
		return err.Error()
	}
	return strings.Replace(err.Error(), inner.Error(), failureMessage(phase, inner), 1)
}

// temporalError reports whether err is one of the errors the Temporal SDK
// returns for a failed activity or child workflow.
func temporalError(err error) bool {
	switch err.(type) {
	case *temporal.ActivityError, *temporal.ChildWorkflowExecutionError, *temporal.ApplicationError,
		*temporal.TimeoutError, *temporal.CanceledError, *temporal.PanicError, *temporal.TerminatedError, *temporal.ServerError:
		return true
	}
	return false
}

// temporalMessage is the message of a failure Temporal carried: the
// application error's own message, a timeout of phase, or else the
// innermost error's message below the activity and child workflow
// wrappers.
func temporalMessage(phase string, err error) string {
	if appErr, ok := errors.AsType[*temporal.ApplicationError](err); ok {
		return appErr.Message()
	}
	if timeoutErr, ok := errors.AsType[*temporal.TimeoutError](err); ok {
		return fmt.Sprintf("%s timed out (%s)", phase, timeoutErr.TimeoutType())
	}
	for {
		switch err.(type) {
		case *temporal.ActivityError, *temporal.ChildWorkflowExecutionError:
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
				continue
			}
		}
		return err.Error()
	}
}
