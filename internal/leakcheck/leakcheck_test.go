package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func TestLeaks(t *testing.T) {
	base := Take()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		<-stop
	}()
	leaks := base.Leaks(0)
	if len(leaks) != 1 || !strings.Contains(leaks[0].Stack, "leakcheck.TestLeaks.func1") {
		t.Errorf("Leaks with a goroutine running = %v, want it", leaks)
	}
	close(stop)
	<-stopped
	if leaks := base.Leaks(5 * time.Second); len(leaks) != 0 {
		t.Errorf("Leaks after it ended = %s", Format(leaks))
	}
	// Goroutines of other modules do not count.
	if ours("goroutine 7 [select]:\nnet/http.(*Server).Serve(0x0)\n\t/go/src/net/http/server.go:1\ncreated by main.main in goroutine 1") {
		t.Error("a goroutine of net/http started by main counts as ours")
	}
	if !ours("goroutine 7 [select]:\nnet/http.(*Server).Serve(0x0)\n\t/go/src/net/http/server.go:1\ncreated by github.com/slipway-ci/slipway/server.(*parts).startHTTP in goroutine 1") {
		t.Error("a goroutine started by package server does not count as ours")
	}
	excusedStack := "goroutine 9 [select]:\ngithub.com/docker/go-events.(*Broadcaster).run(0x0)\n\t/x.go:1\n" +
		"created by github.com/docker/go-events.NewBroadcaster in goroutine 1\n\t/x.go:2\n[originating from goroutine 1]:\n" +
		"github.com/slipway-ci/slipway/registry.New(...)\n\t/r.go:3"
	if ours(excusedStack) {
		t.Error("an excused goroutine counts as ours")
	}
	if !ours(strings.Replace(excusedStack, "go-events.(*Broadcaster).run", "go-events.(*Broadcaster).other", 1)) {
		t.Error("a goroutine started from registry.New does not count as ours")
	}
}

// Check reports a goroutine run left, only when Env is set.
func TestCheck(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	leave := func() error {
		go func() { <-stop }()
		return nil
	}
	var out strings.Builder
	if err := Check("the test", &out, leave); err != nil || out.Len() > 0 {
		t.Errorf("Check without %s = %v, %q; want no check", Env, err, out.String())
	}
	t.Setenv(Env, "1")
	err := Check("the test", &out, leave)
	if err == nil || !strings.Contains(err.Error(), "1 "+Left+" the test") || !strings.Contains(out.String(), "TestCheck.func1.1") {
		t.Errorf("Check of a run that leaves a goroutine = %v, %q", err, out.String())
	}
}
