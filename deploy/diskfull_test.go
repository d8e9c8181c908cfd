package deploy

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/slipway-ci/slipway"
)

// TestResultRecordedOnceTheStoreCanWrite: the store cannot write the
// result for a long while (its disk is full: every attempt fails, well
// past the ten attempts other activities get); the workflow keeps trying
// and records the result once it can, so the deployment is not left
// "building".
func TestResultRecordedOnceTheStoreCanWrite(t *testing.T) {
	f := &fakeActivities{finish: func(n int) error {
		if n <= 40 { // about 20 minutes of retries, 30 s apart
			return errors.New("finish deployment \"d1\": database or disk is full (13)")
		}
		return nil
	}}
	r := run(t, f, func(env *testsuite.TestWorkflowEnvironment) {})
	if r.Status != slipway.StatusSucceeded {
		t.Errorf("recorded %s, want succeeded", r.Status)
	}
	if n := f.calls[ActivityFinish]; n != 41 {
		t.Errorf("FinishDeployment ran %d times, want 41", n)
	}
}

// TestFinishOfAnUnknownDeploymentIsNotRetried: an error a retry cannot
// fix ends the recording at once.
func TestFinishOfAnUnknownDeploymentIsNotRetried(t *testing.T) {
	a := &ControlActivities{Store: failingFinishStore{}}
	err := a.FinishDeployment(t.Context(), FinishInput{DeploymentID: "gone", Result: slipway.DeploymentResult{Status: slipway.StatusSucceeded}})
	var appErr interface{ NonRetryable() bool }
	if !errors.As(err, &appErr) || !appErr.NonRetryable() || slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("FinishDeployment of an unknown deployment = %v, want a non-retryable not_found error", err)
	}
}

type failingFinishStore struct{ slipway.Store }

func (failingFinishStore) FinishDeployment(ctx context.Context, id string, r slipway.DeploymentResult, at time.Time) error {
	return slipway.Errorf(slipway.ENOTFOUND, "deployment %q not found", id)
}
