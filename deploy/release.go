package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

// The release phase. Once a deployment has an image (built, or reused by a
// rollback), DeploymentWorkflow puts it into service before it records the
// deployment succeeded: the Release activity, on the control plane, starts
// the image beside the project's current release, waits until it answers
// its health path, records it as the project's current release
// (slipway.ReleaseStore) and switches the app's traffic to it; the release
// it replaces drains its requests in flight, then stops (kept stopped for a
// rollback). An image that does not become healthy fails the deployment at
// phase "release" with the app's last output, and the current release
// keeps serving. Without an app runtime (apps off) the activity only
// records the release. A pull request's preview deployment has no release
// phase: its preview app starts it on its first request.

// ActivityRelease is the control activity of the release phase.
const ActivityRelease = "Release"

// versionRelease is the change id of DeploymentWorkflow's version with a
// release phase. Histories recorded before it replay without one.
const versionRelease = "release-phase"

// releaseTimeout bounds one attempt of the Release activity: a pull of a
// large image, then the app's health timeout.
const releaseTimeout = 10 * time.Minute

// ReleaseInput is the Release activity's input.
type ReleaseInput struct {
	Project      string
	DeploymentID string
	Image        string
}

// Releaser puts a deployment's image into service as its project's app
// (the server's app host implements it).
type Releaser interface {
	// Release starts in.Image as project's app beside its current
	// release and waits until it is healthy; then it calls record (which
	// records the deployment as the project's current release), and only
	// if that succeeds switches the app's traffic to the new release and
	// drains and stops the one it replaces. An image that does not become
	// healthy, or cannot run as it is, is a *ReleaseFailure, and nothing
	// of it is left running.
	// A second Release of the same deployment (an activity retried) makes
	// sure it serves and returns.
	Release(ctx context.Context, in ReleaseInput, record func(context.Context) error) error
}

// ReleaseFailure says a release cannot serve, for a reason a retry does
// not change: its app did not become healthy, or its image cannot run as
// the project is set up.
type ReleaseFailure struct {
	// Message says why, e.g. "the new release did not become healthy:
	// GET / answered 500 for 30s", and what to do.
	Message string
	// Output are the app's last output lines, secrets masked.
	Output []string
}

func (e *ReleaseFailure) Error() string { return e.Message }

// errReleaseUnhealthy is the application error type of a release that
// did not become healthy: retrying would not help.
const errReleaseUnhealthy = "ReleaseUnhealthy"

// Release is the release phase's activity: see Releaser.
func (a *ControlActivities) Release(ctx context.Context, in ReleaseInput) error {
	store := a.Releases
	if store == nil {
		if store, _ = a.Store.(slipway.ReleaseStore); store == nil {
			return temporal.NewNonRetryableApplicationError("this store cannot record releases", "NoReleaseStore", nil)
		}
	}
	record := func(ctx context.Context) error {
		err := store.SetRelease(ctx, in.Project, in.DeploymentID)
		if c := slipway.ErrorCode(err); c == slipway.ENOTFOUND || c == slipway.EINVALID {
			return temporal.NewNonRetryableApplicationError(slipway.ErrorMessage(err), "ReleaseRecord", err)
		}
		return err
	}
	if a.Apps == nil {
		return record(ctx)
	}
	err := a.Apps.Release(ctx, in, record)
	var rf *ReleaseFailure
	if errors.As(err, &rf) {
		return temporal.NewNonRetryableApplicationError(rf.Error(), errReleaseUnhealthy, nil,
			builder.FailureDetails{Step: slipway.PhaseRelease, Tail: rf.Output})
	}
	return err
}

// release runs the release phase of a deployment whose image is image,
// adding its timings; a failure is the deployment's result.
func release(ctx, ctrl workflow.Context, in DeploymentInput, image string, progress *progressState, timings map[string]int64) error {
	progress.phase(slipway.PhaseRelease)
	rctx := workflow.WithActivityOptions(ctrl, workflow.ActivityOptions{
		TaskQueue:           ControlQueue,
		StartToCloseTimeout: releaseTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{errReleaseUnhealthy},
		},
	})
	start := workflow.Now(ctx)
	err := workflow.ExecuteActivity(rctx, ActivityRelease, ReleaseInput{Project: in.Project, DeploymentID: in.DeploymentID, Image: image}).Get(ctx, nil)
	timings[slipway.PhaseRelease] = workflow.Now(ctx).Sub(start).Milliseconds()
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// releaseFailed is the result of a deployment whose release failed: it
// keeps the image it built (so the record says what was tried).
func releaseFailed(err error, image, digest string, steps []slipway.BuildStep) slipway.DeploymentResult {
	res := failed(slipway.PhaseRelease, err)
	res.Error = strings.TrimPrefix(res.Error, "release: ")
	res.Image, res.Digest, res.Steps = image, digest, steps
	return res
}
