package deploy

import (
	"context"
	"go.temporal.io/sdk/activity"
	"time"

	"github.com/slipway-ci/slipway"
)

// ControlActivities are the activities the server's worker runs on
// ControlQueue: they touch the store and the machine provider.
type ControlActivities struct {
	Store    slipway.Store
	Machines slipway.MachineProvider
	// Slots limits concurrent builds across projects; nil means no limit.
	Slots *Slots
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

// FinishDeployment records the terminal result.
func (a *ControlActivities) FinishDeployment(ctx context.Context, in FinishInput) error {
	return a.Store.FinishDeployment(ctx, in.DeploymentID, in.Result, a.now())
}

// AcquireBuildSlot waits (heartbeating) until the deployment may build.
func (a *ControlActivities) AcquireBuildSlot(ctx context.Context, deployment string) error {
	if a.Slots == nil {
		return nil
	}
	hbCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		t := time.NewTicker(HeartbeatInterval)
		defer t.Stop()
		for {
			activity.RecordHeartbeat(hbCtx)
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return a.Slots.Acquire(ctx, deployment)
}

// ReleaseBuildSlot frees the deployment's build slot.
func (a *ControlActivities) ReleaseBuildSlot(ctx context.Context, deployment string) error {
	if a.Slots != nil {
		a.Slots.Release(deployment)
	}
	return nil
}
