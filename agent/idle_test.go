package agent

import (
	"testing"
	"time"
)

// An agent woken for a build that never comes to it (the server woke the
// machine early for a deployment that then waits, or was superseded)
// exits after the start timeout; one that had work exits after the idle
// timeout; one with an activity running never does.
func TestIdleTracker(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	const idle, start = 3 * time.Second, time.Minute
	tr := newIdleTracker(t0)
	if tr.idle(t0.Add(59*time.Second), idle, start) {
		t.Error("idle before the start timeout without work")
	}
	if !tr.idle(t0.Add(61*time.Second), idle, start) {
		t.Error("not idle after the start timeout without work")
	}
	tr = newIdleTracker(t0)
	tr.begin()
	if tr.idle(t0.Add(time.Hour), idle, start) {
		t.Error("idle while an activity runs")
	}
	tr.end(t0.Add(time.Hour))
	if tr.idle(t0.Add(time.Hour+2*time.Second), idle, start) {
		t.Error("idle before the idle timeout after work")
	}
	if !tr.idle(t0.Add(time.Hour+4*time.Second), idle, start) {
		t.Error("not idle after the idle timeout after work")
	}
}
