package testenv

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, and fails the test, saying it timed
// out waiting for what, if it does not within timeout. It polls often at
// first, then every 200 ms. cond runs on the test's goroutine: it may call
// t.Fatal.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(wait)
		wait = min(2*wait, 200*time.Millisecond)
	}
}
