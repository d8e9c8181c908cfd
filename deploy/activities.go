package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/redact"
)

// ControlActivities are the activities the server's worker runs on
// ControlQueue: they touch the store and the machine provider.
type ControlActivities struct {
	Store    slipway.Store
	Machines slipway.MachineProvider
	// Secrets, if set, holds the projects' build secrets, which are masked
	// in a deployment's recorded error.
	Secrets slipway.SecretStore
	// Slots limits concurrent builds across projects; nil means no limit.
	Slots *Slots
	// Logs is the log archiver AwaitLog waits for.
	Logs LogArchive
	// LogWait bounds AwaitLog's wait; default 30 s.
	LogWait time.Duration
	// Releases records the projects' current releases; default Store,
	// if it is one.
	Releases slipway.ReleaseStore
	// Apps runs the projects' apps for the release phase; nil when apps
	// are off (the Release activity then only records the release).
	Apps Releaser
	// Logger reports incomplete logs; default none.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (a *ControlActivities) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

// MarkBuilding records that the deployment's workflow has started.
func (a *ControlActivities) MarkBuilding(ctx context.Context, deployment string) error {
	return a.Store.MarkBuilding(ctx, deployment, a.now())
}

// WakeMachine creates the project's machine if needed and makes sure its
// agent runs.
func (a *ControlActivities) WakeMachine(ctx context.Context, project string) error {
	if err := a.Machines.Ensure(ctx, project); err != nil {
		return err
	}
	if err := a.Machines.Start(ctx, project); err != nil {
		return err
	}
	// The wake ends when the agent polls, so the "wake" phase is the real
	// wake; a slow start is not an error (the build waits in the queue).
	deadline := time.Now().Add(wakeWait)
	for time.Now().Before(deadline) {
		st, err := a.Machines.Status(ctx, project)
		if err != nil || st != slipway.MachineStarting {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// wakeWait bounds how long WakeMachine waits for the agent to poll.
const wakeWait = 10 * time.Second

// FinishDeployment records the terminal result. The error (the failing
// step's last output lines among others) is redacted first: it is shown by
// the API and the CLI like a log line is.
func (a *ControlActivities) FinishDeployment(ctx context.Context, in FinishInput) error {
	if in.Result.Error != "" {
		r, err := a.redactor(ctx, in.DeploymentID)
		if err != nil {
			return err
		}
		in.Result.Error = r.Redact(in.Result.Error)
	}
	err := a.Store.FinishDeployment(ctx, in.DeploymentID, in.Result, a.now())
	if _, ok := errors.AsType[*slipway.Error](err); ok {
		// Not a store that cannot write: a retry would not help.
		return temporal.NewNonRetryableApplicationError(slipway.ErrorMessage(err), slipway.ErrorCode(err), err)
	}
	return err
}

// redactor masks the secrets of a deployment's project: the credentials in
// its repository URL and its build secrets.
func (a *ControlActivities) redactor(ctx context.Context, deployment string) (*redact.Redactor, error) {
	d, err := a.Store.Deployment(ctx, deployment)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", deployment, err)
	}
	p, err := a.Store.Project(ctx, d.Project)
	if err != nil {
		return nil, fmt.Errorf("project %s: %w", d.Project, err)
	}
	return projectRedactor(ctx, p, a.Secrets)
}

// AcquireBuildSlot waits (heartbeating) until the deployment may build.
func (a *ControlActivities) AcquireBuildSlot(ctx context.Context, deployment string) error {
	if a.Slots == nil {
		return nil
	}
	defer heartbeat(ctx)()
	return a.Slots.Acquire(ctx, deployment)
}

// TryAcquireBuildSlot takes a build slot for the deployment if one is free
// and nobody waits for one (a local activity: it must not wait).
func (a *ControlActivities) TryAcquireBuildSlot(ctx context.Context, deployment string) (bool, error) {
	if a.Slots == nil {
		return true, nil
	}
	return a.Slots.TryAcquire(deployment), nil
}

// heartbeat records the activity's heartbeat every
// builder.HeartbeatInterval until the returned stop is called, so that a
// lost worker (a server restart) is noticed within
// builder.HeartbeatTimeout, not at the activity's start-to-close
// timeout. Outside an activity (tests calling the method) it does nothing.
func heartbeat(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	hbCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(builder.HeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
			}
			// Not with hbCtx: cancelled between the tick and here, the SDK
			// would log a warning for every activity that just ended.
			activity.RecordHeartbeat(ctx)
		}
	}()
	return func() {
		cancel()
		<-done // no heartbeat after the activity returned
	}
}

// ReleaseBuildSlot frees the deployment's build slot.
func (a *ControlActivities) ReleaseBuildSlot(ctx context.Context, deployment string) error {
	if a.Slots != nil {
		a.Slots.Release(deployment)
	}
	return nil
}
