package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/workflow"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

// How a deployment's progress reaches the API.
//
// DeploymentWorkflow, which lives from queued to the end, holds the
// deployment's slipway.Progress and answers the QueryState query with it.
// It sets the phases it drives itself (queue, wake, then fetch when the
// build starts, done at the end). What happens on the builder machine it
// cannot see: the child BuildWorkflow only learns of an activity's result
// when the activity ends, and heartbeat details are not readable by
// workflow code (only by the activity's next attempt, and by clients
// through DescribeWorkflowExecution). So the agent's activities tell it:
// each sends the builder.SignalProgress signal (a whole slipway.Progress, not a
// delta, so signals coalesced or lost in between do no harm) to the
// deployment's workflow when it starts its phase (fetch, build, push) and
// whenever podman starts a step or reuses a cached layer. The agent sends
// them from a goroutine of its own, newest state only, so the build never
// waits for Temporal; after each signal it announces a change on the
// deployment's NATS event subject, where the API's subscribers hear it and
// query the workflow. A query reflects every signal accepted before it
// (Temporal answers queries after the workflow has processed its pending
// events).
//
// Adding the query handler and the signal channel adds no commands to the
// workflow's history, so histories recorded before them replay unchanged.
const (
	// QueryState is the query DeploymentWorkflow answers with its
	// slipway.Progress.
	QueryState = "state"
)

// progressState is DeploymentWorkflow's slipway.Progress.
type progressState struct {
	p slipway.Progress
	// entered is when the agent first reported each of its phases
	// (workflow time): a failed build has no BuildWorkflow timings, so
	// the phases it went through are timed from these.
	entered map[string]time.Time
}

// phase moves to a phase the workflow drives.
func (s *progressState) phase(name string) {
	if s.p.Phase == slipway.PhaseDone {
		return
	}
	s.p.Phase = name
	if name == slipway.PhaseFetch {
		// A build (re)starts: the step counts of an earlier attempt are
		// gone.
		s.p = slipway.Progress{Phase: name}
	}
}

// advance moves from phase from to phase to, unless the state has moved
// on from from already (the agent reported a later phase).
func (s *progressState) advance(from, to string) {
	if s.p.Phase == from {
		s.phase(to)
	}
}

// apply takes what the agent reported. The step fields are kept when the
// report has none (the push phase keeps the build's last step and cached
// count).
func (s *progressState) apply(u slipway.Progress) {
	if s.p.Phase == slipway.PhaseDone || u.Phase == "" {
		return
	}
	if u.Phase == slipway.PhaseFetch || u.StepsTotal > 0 {
		s.p = u
		return
	}
	s.p.Phase = u.Phase
}

// newProgress returns the state of a deployment that has just started:
// in phase queue.
func newProgress() *progressState {
	return &progressState{p: slipway.Progress{Phase: slipway.PhaseQueue}, entered: map[string]time.Time{}}
}

// agentTimings times the agent's phases (fetch, build, push) that the
// agent reported entering, each until the next one began or until end:
// the timings of a build that failed or was stopped.
func (s *progressState) agentTimings(end time.Time) map[string]int64 {
	phases := []string{slipway.PhaseFetch, slipway.PhaseBuild, slipway.PhasePush}
	out := map[string]int64{}
	for i, p := range phases {
		start, ok := s.entered[p]
		if !ok {
			continue
		}
		until := end
		for _, next := range phases[i+1:] {
			if t, ok := s.entered[next]; ok {
				until = t
				break
			}
		}
		out[p] = max(0, until.Sub(start).Milliseconds())
	}
	return out
}

// track answers the state query of the workflow of ctx with s and applies
// the progress signals it receives.
func (s *progressState) track(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (slipway.Progress, error) {
		return s.p, nil
	}); err != nil {
		return err
	}
	ch := workflow.GetSignalChannel(ctx, builder.SignalProgress)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var u slipway.Progress
			if !ch.Receive(ctx, &u) {
				return
			}
			if _, seen := s.entered[u.Phase]; !seen && u.Phase != "" {
				s.entered[u.Phase] = workflow.Now(ctx)
			}
			s.apply(u)
		}
	})
	return nil
}

// Progress implements slipway.ProgressReader: a running deployment's
// workflow is asked (QueryState); a deployment that ended, or whose
// workflow does not run yet (queued behind another of its project), is
// described from its record.
func (s *Service) Progress(ctx context.Context, d *slipway.Deployment) (*slipway.Progress, error) {
	if d.Status.Terminal() || s.cfg.Temporal == nil {
		return slipway.ProgressOf(d), nil
	}
	v, err := s.cfg.Temporal.QueryWorkflow(ctx, builder.DeploymentWorkflowID(d.ID), "", QueryState)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return slipway.ProgressOf(d), nil
	} else if err != nil {
		return nil, fmt.Errorf("query the progress of deployment %s: %w", d.ID, err)
	}
	var p slipway.Progress
	if err := v.Get(&p); err != nil {
		return nil, fmt.Errorf("query the progress of deployment %s: %w", d.ID, err)
	}
	if p.Phase == "" {
		return slipway.ProgressOf(d), nil
	}
	return &p, nil
}
