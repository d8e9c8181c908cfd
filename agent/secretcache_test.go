package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

// fetcher counts the calls of a fake fetch and hands out fresh values.
type fetcher struct {
	calls int
	err   error
}

func (f *fetcher) fetch(deployment string) func(context.Context) ([]slipway.SecretValue, error) {
	return func(context.Context) ([]slipway.SecretValue, error) {
		f.calls++
		if f.err != nil {
			return nil, f.err
		}
		return []slipway.SecretValue{{Name: "token", Value: []byte("value-of-" + deployment)}}, nil
	}
}

func TestSecretCacheFetchesOncePerDeployment(t *testing.T) {
	var c secretCache
	f := &fetcher{}
	var first []slipway.SecretValue
	for i, phase := range []string{"fetch", "build", "push"} {
		vals, fresh, err := c.get(t.Context(), "d1", f.fetch("d1"))
		if err != nil {
			t.Fatal(err)
		}
		if fresh != (i == 0) {
			t.Errorf("%s: fresh = %v, want %v", phase, fresh, i == 0)
		}
		if string(vals[0].Value) != "value-of-d1" {
			t.Errorf("%s: value %q", phase, vals[0].Value)
		}
		first = vals
		if wiped := c.release("d1", phase == "push"); wiped != (phase == "push") {
			t.Errorf("release after %s wiped = %v", phase, wiped)
		}
	}
	if f.calls != 1 {
		t.Errorf("three activities fetched %d times, want 1", f.calls)
	}
	if string(first[0].Value) != "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" {
		t.Errorf("the kept value was not overwritten after the last activity: %q", first[0].Value)
	}
	// A later deployment (or a retry of the whole build) fetches again.
	if _, fresh, err := c.get(t.Context(), "d1", f.fetch("d1")); err != nil || !fresh || f.calls != 2 {
		t.Errorf("get after the wipe: fresh %v, err %v, calls %d; want a new fetch", fresh, err, f.calls)
	}
}

func TestSecretCacheDropsAnotherDeploymentsValues(t *testing.T) {
	var c secretCache
	f := &fetcher{}
	// d1's build failed retryably, and its workflow never came back.
	old, _, _ := c.get(t.Context(), "d1", f.fetch("d1"))
	c.release("d1", false)
	vals, fresh, err := c.get(t.Context(), "d2", f.fetch("d2"))
	if err != nil || !fresh || string(vals[0].Value) != "value-of-d2" {
		t.Fatalf("get d2 = %q, %v, %v", vals, fresh, err)
	}
	if string(old[0].Value) == "value-of-d1" {
		t.Errorf("d1's value survived d2's first activity")
	}
	if c.release("d1", true) {
		t.Errorf("a late release of d1 wiped d2's values")
	}
	if _, fresh, _ := c.get(t.Context(), "d2", f.fetch("d2")); fresh {
		t.Errorf("d2's values were dropped by d1's release")
	}
}

func TestSecretCacheWaitsForRunningActivities(t *testing.T) {
	var c secretCache
	f := &fetcher{}
	c.get(t.Context(), "d1", f.fetch("d1"))
	vals, _, _ := c.get(t.Context(), "d1", f.fetch("d1"))
	if c.release("d1", true) {
		t.Fatalf("wiped while another activity of the deployment still runs")
	}
	if string(vals[0].Value) != "value-of-d1" {
		t.Fatalf("value changed under a running activity: %q", vals[0].Value)
	}
	if !c.release("d1", false) {
		t.Errorf("not wiped when the deployment's last running activity ended")
	}
}

func TestSecretCacheKeepsNoFailedFetch(t *testing.T) {
	var c secretCache
	f := &fetcher{err: errors.New("no server answering")}
	if _, _, err := c.get(t.Context(), "d1", f.fetch("d1")); err == nil {
		t.Fatal("get: no error from a failed fetch")
	}
	f.err = nil
	if _, fresh, err := c.get(t.Context(), "d1", f.fetch("d1")); err != nil || !fresh || f.calls != 2 {
		t.Errorf("get after a failed fetch: fresh %v, err %v, calls %d; want a new fetch", fresh, err, f.calls)
	}
	c.wipe()
	if c.vals != nil || c.deployment != "" {
		t.Errorf("wipe left %q %v", c.deployment, c.vals)
	}
}

func TestIsLast(t *testing.T) {
	retryable := errors.New("podman: connection reset")
	for _, c := range []struct {
		phase             string
		err               error
		cancelled         bool
		attempt, attempts int32
		want              bool
	}{
		{"fetch", nil, false, 1, 3, false},
		{"build", nil, false, 1, 3, false},
		{"push", nil, false, 1, 6, true},
		{"fetch", retryable, false, 1, 3, false},
		{"fetch", retryable, false, 3, 3, true},
		{"push", retryable, false, 5, 6, false},
		{"push", temporal.NewApplicationError("push failed", builder.ErrPushFailed), false, 6, 6, true},
		{"build", temporal.NewNonRetryableApplicationError("RUN failed", builder.ErrBuildFailed, nil), false, 1, 3, true},
		{"build", temporal.NewApplicationError("RUN failed", builder.ErrBuildFailed), false, 1, 3, true},
		{"build", context.Canceled, false, 1, 3, true},
		{"build", fmt.Errorf("build: %w", retryable), true, 1, 3, true},
		{"build", retryable, false, 7, 0, false}, // no retry limit
	} {
		if got := isLast(c.phase, c.err, c.cancelled, c.attempt, c.attempts); got != c.want {
			t.Errorf("isLast(%q, %v, cancelled %v, attempt %d/%d) = %v, want %v", c.phase, c.err, c.cancelled, c.attempt, c.attempts, got, c.want)
		}
	}
}
