package agent

import (
	"context"
	"errors"
	"sync"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

// secretCache keeps the build secrets of the deployment this agent is
// building, so that its three activities (fetch, build, push) ask the
// server for them once rather than each (every phase needs them, if only
// to mask them in its output). The values live in memory only and are
// wiped when the deployment's last activity ends (see lastActivity), when
// an activity of another deployment begins (a machine builds one
// deployment at a time), and when the agent exits.
//
// The zero value is ready to use; it is safe for concurrent use.
type secretCache struct {
	mu         sync.Mutex
	deployment string
	vals       []slipway.SecretValue
	// running counts the deployment's activities between get and release.
	running int
	// done is set once the deployment's last activity ended while another
	// of its activities was still running: the values go with the last.
	done bool
}

// get returns deployment's secrets, calling fetch only if they are not
// kept yet. fresh says whether fetch was called. Every successful get must
// be paired with a release.
func (c *secretCache) get(ctx context.Context, deployment string, fetch func(context.Context) ([]slipway.SecretValue, error)) (vals []slipway.SecretValue, fresh bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deployment != deployment || c.vals == nil {
		// Another deployment's values (whose activities ended, or were
		// abandoned by a crashed workflow) go before this one's come.
		c.wipeLocked()
		v, err := fetch(ctx)
		if err != nil {
			return nil, false, err
		}
		if v == nil {
			v = []slipway.SecretValue{}
		}
		c.deployment, c.vals, fresh = deployment, v, true
	}
	c.running++
	return c.vals, fresh, nil
}

// release ends an activity of deployment that get served. last says the
// deployment has no activity to come: the values are wiped as soon as none
// of its activities runs. It returns whether it wiped them.
func (c *secretCache) release(deployment string, last bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deployment != deployment {
		return false // already wiped for another deployment
	}
	c.running--
	c.done = c.done || last
	if c.running > 0 || !c.done {
		return false
	}
	c.wipeLocked()
	return true
}

// wipe drops whatever is kept (the agent is exiting).
func (c *secretCache) wipe() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wipeLocked()
}

func (c *secretCache) wipeLocked() {
	for _, v := range c.vals {
		// The slices were shared with the activities, which are done with
		// them; overwrite the bytes so no copy outlives the deployment in
		// this process's heap longer than needed.
		clear(v.Value)
	}
	c.deployment, c.vals, c.running, c.done = "", nil, 0, false
}

// lastActivity says whether the activity of ctx that ran phase and ended
// with err is its deployment's last on this agent: a push that succeeded,
// or a failure the workflow will not retry (see builder.BuildWorkflow).
func lastActivity(ctx context.Context, phase string, err error) bool {
	var attempt, maxAttempts int32
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		attempt = info.Attempt
		if info.RetryPolicy != nil {
			maxAttempts = info.RetryPolicy.MaximumAttempts
		}
	}
	return isLast(phase, err, ctx.Err() != nil, attempt, maxAttempts)
}

// isLast is lastActivity's rule: the push is the last phase; a cancelled
// activity (superseded, cancelled deployment), a non-retryable error or
// the last allowed attempt end the deployment's build. A retry of the
// whole build (a new BuildWorkflow) fetches the secrets again.
func isLast(phase string, err error, cancelled bool, attempt, maxAttempts int32) bool {
	if err == nil {
		return phase == "push"
	}
	if cancelled || errors.Is(err, context.Canceled) {
		return true
	}
	if appErr, ok := errors.AsType[*temporal.ApplicationError](err); ok && (appErr.NonRetryable() || appErr.Type() == builder.ErrBuildFailed) {
		return true
	}
	return maxAttempts > 0 && attempt >= maxAttempts
}
