package deploy

import (
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

// Signals of ProjectWorkflow and DeploymentWorkflow.
const (
	// SignalDeploy queues a DeploymentInput on its project's workflow.
	SignalDeploy = "deploy"
	// SignalCancel asks a project's workflow to cancel a deployment (its
	// id).
	SignalCancel = "cancel"
	// SignalStop tells a DeploymentWorkflow why it is about to be
	// cancelled (a StopReason), so it records the right final state.
	SignalStop = "stop"
)

// ProjectWorkflowID is the id of a project's ProjectWorkflow.
func ProjectWorkflowID(project string) string { return "project-" + project }

// StopReason says why a running deployment is stopped.
type StopReason struct {
	// Status is StatusSuperseded or StatusCancelled.
	Status slipway.Status
	// By is the deployment that superseded it.
	By string
}

// Message is the user-facing text recorded with the stopped deployment.
func (r StopReason) Message() string {
	if r.Status == slipway.StatusSuperseded {
		return "superseded by deployment " + r.By
	}
	return "cancelled"
}

// branchOf reduces "refs/heads/main" and "main" to one name, so a manual
// deployment and a push of the same branch supersede each other.
func branchOf(ref string) string { return strings.TrimPrefix(ref, "refs/heads/") }

type runningDeployment struct {
	in       DeploymentInput
	future   workflow.ChildWorkflowFuture
	cancel   workflow.CancelFunc
	stopping bool
}

// deploymentChildOptions are the options of the child DeploymentWorkflow
// that ProjectWorkflow starts for in.
func deploymentChildOptions(in DeploymentInput) workflow.ChildWorkflowOptions {
	return workflow.ChildWorkflowOptions{
		WorkflowID:               builder.DeploymentWorkflowID(in.DeploymentID),
		TaskQueue:                ControlQueue,
		WorkflowExecutionTimeout: in.MaxBuild + 10*time.Minute,
		// The deployment records its own result; if this workflow is
		// terminated, the deployment still runs to its end.
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WaitForCancellation:   true,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}
}

// ProjectWorkflow runs a project's deployments one at a time, in the order
// they were asked for (the machine's cache has one writer). A newer
// deployment of the same branch supersedes the queued and running ones of
// that branch. It ends when nothing is queued or running; the Deployer
// starts it again with the next deployment (signal-with-start).
//
// Long: its closures (finish, stop, onDeploy, onCancel) share the queue and
// the running deployment with the loop over signals; spreading that state
// over several functions would make the workflow's order of commands, which
// the replay tests pin, harder to follow.
func ProjectWorkflow(ctx workflow.Context, project string, pending []DeploymentInput) error {
	logger := workflow.GetLogger(ctx)
	ctrl := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           ControlQueue,
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, MaximumInterval: 10 * time.Second, MaximumAttempts: 10},
	})
	queue := pending
	var running *runningDeployment
	seen := map[string]bool{}
	for _, in := range queue {
		seen[in.DeploymentID] = true
	}

	finish := func(id string, r StopReason) {
		res := slipway.DeploymentResult{Status: r.Status, Error: r.Message()}
		if err := workflow.ExecuteActivity(ctrl, ActivityFinish, FinishInput{DeploymentID: id, Result: res}).Get(ctx, nil); err != nil {
			logger.Error("record stopped deployment", "deployment", id, "error", err)
		}
	}
	stop := func(r StopReason) {
		if running == nil || running.stopping {
			return
		}
		running.stopping = true
		// The reason first, then the cancellation: the deployment records
		// the reason when it winds down. A signal to a child that is not
		// started yet would be lost, so wait for the start.
		if running.future.GetChildWorkflowExecution().Get(ctx, nil) == nil {
			_ = workflow.SignalExternalWorkflow(ctx, builder.DeploymentWorkflowID(running.in.DeploymentID), "", SignalStop, r).Get(ctx, nil)
		}
		running.cancel()
	}
	onDeploy := func(in DeploymentInput) {
		if seen[in.DeploymentID] {
			return // a redelivered signal (reconcile after a restart)
		}
		seen[in.DeploymentID] = true
		superseded := StopReason{Status: slipway.StatusSuperseded, By: in.DeploymentID}
		kept := queue[:0]
		for _, q := range queue {
			if branchOf(q.Ref) == branchOf(in.Ref) {
				finish(q.DeploymentID, superseded)
				continue
			}
			kept = append(kept, q)
		}
		queue = kept
		if running != nil && branchOf(running.in.Ref) == branchOf(in.Ref) {
			stop(superseded)
		}
		queue = append(queue, in)
	}
	onCancel := func(id string) {
		for i, q := range queue {
			if q.DeploymentID == id {
				queue = append(queue[:i], queue[i+1:]...)
				finish(id, StopReason{Status: slipway.StatusCancelled})
				return
			}
		}
		if running != nil && running.in.DeploymentID == id {
			stop(StopReason{Status: slipway.StatusCancelled})
		}
	}

	deployCh := workflow.GetSignalChannel(ctx, SignalDeploy)
	cancelCh := workflow.GetSignalChannel(ctx, SignalCancel)
	for {
		if running == nil && len(queue) > 0 {
			in := queue[0]
			queue = queue[1:]
			cctx, cancel := workflow.WithCancel(ctx)
			cctx = workflow.WithChildOptions(cctx, deploymentChildOptions(in))
			running = &runningDeployment{in: in, future: workflow.ExecuteChildWorkflow(cctx, DeploymentWorkflow, in), cancel: cancel}
		}
		if running == nil {
			// Idle: take what arrived meanwhile, else end.
			var in DeploymentInput
			var id string
			switch {
			case deployCh.ReceiveAsync(&in):
				onDeploy(in)
			case cancelCh.ReceiveAsync(&id):
				onCancel(id)
			default:
				return nil
			}
			continue
		}
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(deployCh, func(c workflow.ReceiveChannel, more bool) {
			var in DeploymentInput
			c.Receive(ctx, &in)
			onDeploy(in)
		})
		sel.AddReceive(cancelCh, func(c workflow.ReceiveChannel, more bool) {
			var id string
			c.Receive(ctx, &id)
			onCancel(id)
		})
		r := running
		sel.AddFuture(r.future, func(f workflow.Future) {
			if err := f.Get(ctx, nil); err != nil {
				logger.Info("deployment workflow ended with an error", "deployment", r.in.DeploymentID, "error", err)
			}
			if running == r {
				running = nil
			}
		})
		sel.Select(ctx)
	}
}
