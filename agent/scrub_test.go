package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/redact"
)

// An activity's error leaves the agent with the deployment's secrets
// masked, whatever produced it.
func TestScrubAndBuildFailed(t *testing.T) {
	const secret = "hunter2-secret"
	j := &job{secrets: redact.New(secret)}
	err := j.scrub(fmt.Errorf("build: podman: %s", "auth "+secret+" refused"))
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "auth [redacted] refused") {
		t.Errorf("scrub = %v", err)
	}
	if err := j.scrub(nil); err != nil {
		t.Errorf("scrub(nil) = %v", err)
	}
	if err := j.scrub(fmt.Errorf("fetch: %w", context.Canceled)); !errors.Is(err, context.Canceled) {
		t.Errorf("scrub of a cancellation = %v, want it kept", err)
	}
	bf := j.buildFailed("STEP 2/2: RUN echo "+secret, []string{"line " + secret, "ok"}, "build failed: %s", secret)
	if strings.Contains(bf.Error(), secret) || j.scrub(bf) != bf {
		t.Errorf("buildFailed = %v (scrubbed again: %v)", bf, j.scrub(bf))
	}
	var appErr *temporal.ApplicationError
	var d builder.FailureDetails
	if !errors.As(bf, &appErr) || appErr.Details(&d) != nil || strings.Contains(fmt.Sprint(d), secret) || d.Tail[0] != "line [redacted]" {
		t.Errorf("buildFailed details = %+v", d)
	}
	// A tail line cut short in the middle of the secret (buildah keeps
	// the start of a very long line).
	bf = j.buildFailed("build", []string{"long line " + secret[:8]}, "failed")
	if !errors.As(bf, &appErr) || appErr.Details(&d) != nil || d.Tail[0] != "long line [redacted]" {
		t.Errorf("buildFailed details = %+v", d)
	}
}

// A full disk is a failure a retry cannot fix: it fails the build at once,
// saying why.
func TestScrubFullDisk(t *testing.T) {
	j := &job{secrets: redact.New("hunter2-secret"), phase: "push"}
	for _, err := range []error{
		fmt.Errorf("write layer: %w", syscall.ENOSPC),
		errors.New("pushing image: write /vol/storage/tmp/x: no space left on device"),
	} {
		got := j.scrub(err)
		var appErr *temporal.ApplicationError
		if !errors.As(got, &appErr) || !appErr.NonRetryable() || appErr.Type() != builder.ErrBuildFailed || !strings.Contains(got.Error(), "no space left on device: the disk") {
			t.Errorf("scrub(%v) = %v, want a build failure saying the disk is full", err, got)
		}
	}
	if err := j.scrub(errors.New("connection refused")); errors.As(err, new(*temporal.ApplicationError)) {
		t.Errorf("scrub of a transient error = %v, want it retried", err)
	}
}

// The log's byte count goes on from one activity of a deployment to the
// next, and is forgotten after the last.
func TestLogUsage(t *testing.T) {
	var u logUsage
	if got := u.get("d1"); got != 0 {
		t.Errorf("get of an unknown deployment = %d", got)
	}
	u.set("d1", 100, false)
	u.set("d2", 7, false)
	if got := u.get("d1"); got != 100 {
		t.Errorf("get(d1) = %d, want 100", got)
	}
	u.set("d1", 250, true)
	if got, other := u.get("d1"), u.get("d2"); got != 0 || other != 7 {
		t.Errorf("after d1's last activity: d1 %d, d2 %d; want 0 and 7", got, other)
	}
}
