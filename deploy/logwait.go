package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

// How a deployment's log is known to be complete.
//
// The agent numbers its lines (publish.Publisher) and, when an activity
// has closed its publisher (every line acknowledged by NATS, or left in
// the volume's spool), signals builder.SignalLogEnd with the number of its last
// line to the deployment's workflow. Before the workflow records the
// terminal state, the server's AwaitLog activity takes the higher of that
// number and the last line the stream holds, and waits (at most
// logWaitMax) until the Archiver has stored every line up to it. The
// result goes into the same store write as the terminal status, so a
// reader that sees an ended deployment with LogComplete true finds its
// whole log in the store. Deployments that never reached a builder (ended
// in the queue, machine did not wake, rollbacks) do not wait: their log is
// empty.
//
// The step is guarded by workflow version logCompleteVersion: workflows
// started before it replay unchanged and record LogComplete unknown.
const (
	// ActivityAwaitLog waits for the archiver to store a deployment's log.
	ActivityAwaitLog = "AwaitLog"

	logCompleteVersion = "log-complete"
	// logWaitMax bounds the wait for the archiver.
	logWaitMax = 30 * time.Second
	// stoppedSettle is how long the log of a cancelled or superseded
	// build may still grow after the workflow saw its child end: the
	// agent's activity is cancelled, not awaited.
	stoppedSettle = 2 * time.Second
)

// LogArchive is what AwaitLog needs of the log archiver
// (archive.Archiver).
type LogArchive interface {
	// LastStreamLine is the number of the deployment's last line in the
	// log stream (0: none).
	LastStreamLine(ctx context.Context, project, deployment string) (int64, error)
	// WaitFor returns once lines 1..n of the deployment are in the store.
	WaitFor(ctx context.Context, deployment string, n int64) error
}

// LogWaitInput is the AwaitLog activity's input.
type LogWaitInput struct {
	DeploymentID string
	Project      string
	// AgentLastLine is the highest line number the agent reported (0:
	// none reported).
	AgentLastLine int64
	// Settle, when set, is how long to look again for lines still
	// arriving (a stopped build).
	Settle time.Duration
}

// LogWaitResult is the AwaitLog activity's result.
type LogWaitResult struct {
	Complete bool
	// Lines is the number of the last line waited for.
	Lines int64
	// At is when the store was found complete, or the wait gave up.
	At time.Time
	// Missing says what did not arrive, when Complete is false.
	Missing string
}

// AwaitLog waits until the store holds the deployment's whole log, at
// most logWaitMax; a log still short then is reported, not an error.
func (a *ControlActivities) AwaitLog(ctx context.Context, in LogWaitInput) (LogWaitResult, error) {
	if a.Logs == nil {
		return LogWaitResult{}, temporal.NewNonRetryableApplicationError("no log archiver to wait for", "NoArchiver", nil)
	}
	defer heartbeat(ctx)()
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, a.logWaitMax())
	defer cancel()
	want := in.AgentLastLine
	for {
		n, err := a.Logs.LastStreamLine(wctx, in.Project, in.DeploymentID)
		if err != nil && wctx.Err() == nil {
			// NATS away: the agent's number is all there is to wait for.
			a.logger().Warn("log complete: cannot read the log stream", "deployment", in.DeploymentID, "error", err)
		}
		want = max(want, n)
		if want > 0 {
			err = a.Logs.WaitFor(wctx, in.DeploymentID, want)
		}
		if err != nil || wctx.Err() != nil {
			if ctx.Err() != nil && wctx.Err() == nil {
				return LogWaitResult{}, ctx.Err()
			}
			missing := fmt.Sprintf("the store did not have lines 1..%d of the log after %s", want, time.Since(start).Round(time.Second))
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				missing += ": " + err.Error()
			}
			a.logger().Warn("deployment log incomplete", "deployment", in.DeploymentID, "reason", missing)
			return LogWaitResult{Complete: false, Lines: want, At: a.now(), Missing: missing}, nil
		}
		// A stopped build's agent may still be writing: look again until
		// the stream stays put for Settle.
		if rest := in.Settle - time.Since(start); rest > 0 {
			select {
			case <-time.After(rest):
			case <-wctx.Done():
			}
			if again, err := a.Logs.LastStreamLine(wctx, in.Project, in.DeploymentID); err == nil && again > want {
				want = again
				continue
			}
		}
		return LogWaitResult{Complete: true, Lines: want, At: a.now()}, nil
	}
}

func (a *ControlActivities) logWaitMax() time.Duration {
	if a.LogWait > 0 {
		return a.LogWait
	}
	return logWaitMax
}

func (a *ControlActivities) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// logEnd follows the agent's builder.SignalLogEnd reports and keeps the highest.
type logEnd struct {
	last int64
}

func trackLogEnd(ctx workflow.Context) *logEnd {
	e := &logEnd{}
	ch := workflow.GetSignalChannel(ctx, builder.SignalLogEnd)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var n int64
			if !ch.Receive(ctx, &n) {
				return
			}
			e.last = max(e.last, n)
		}
	})
	return e
}

// recordLogCompleteness fills in res's log fields before it is recorded:
// for a deployment that reached its builder, after AwaitLog; for others at
// once (their log is empty). Workflows started before the step (an
// upgrade) leave them unknown.
func recordLogCompleteness(ctx, dctx workflow.Context, in DeploymentInput, reachedBuilder bool, end *logEnd, res *slipway.DeploymentResult) {
	if workflow.GetVersion(dctx, logCompleteVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	if !reachedBuilder {
		res.LogComplete, res.LogCompleteAt = new(true), workflow.Now(dctx)
		return
	}
	// A signal already delivered is handled before the workflow goes on,
	// but the reporting goroutine may not have run yet: drain here too.
	ch := workflow.GetSignalChannel(ctx, builder.SignalLogEnd)
	for {
		var n int64
		if !ch.ReceiveAsync(&n) {
			break
		}
		end.last = max(end.last, n)
	}
	wait := LogWaitInput{DeploymentID: in.DeploymentID, Project: in.Project, AgentLastLine: end.last}
	if res.Status == slipway.StatusCancelled || res.Status == slipway.StatusSuperseded {
		wait.Settle = stoppedSettle
	}
	actx := workflow.WithActivityOptions(dctx, workflow.ActivityOptions{
		TaskQueue:           ControlQueue,
		StartToCloseTimeout: logWaitMax + 15*time.Second,
		// A server restart mid-wait is noticed in seconds, not at the
		// start-to-close timeout.
		HeartbeatTimeout: builder.HeartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: []string{"NoArchiver"},
		},
	})
	var got LogWaitResult
	if err := workflow.ExecuteActivity(actx, ActivityAwaitLog, wait).Get(dctx, &got); err != nil {
		workflow.GetLogger(ctx).Error("waiting for the deployment's log failed", "deployment", in.DeploymentID, "error", err)
		res.LogComplete, res.LogCompleteAt, res.LogLines = new(false), workflow.Now(dctx), end.last
		return
	}
	res.LogComplete, res.LogCompleteAt, res.LogLines = new(got.Complete), got.At, got.Lines
}
