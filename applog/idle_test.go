package applog_test

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/applog"
	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// followIdle starts a pipeline following n apps that wrote one line each
// and then nothing (sleeping apps), and waits until their lines are
// stored.
func followIdle(tb testing.TB, n int) *applog.Pipeline {
	ns := logtest.StartServer(tb, natsserver.Config{})
	store := sqlitetest.Open(tb)
	src := files{tb.TempDir()}
	p, err := applog.Start(tb.Context(), applog.Config{URL: ns.URL(), Source: src, Store: store})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	for i := range n {
		name := fmt.Sprintf("app%d", i)
		sqlitetest.AddProject(tb, store, slipway.Project{Name: name})
		inst := &apps.Instance{Name: "slipway-app-" + name + "-d1", Project: name, Release: "d1"}
		src.write(tb, inst, "stdout booted")
		p.Add(inst)
	}
	deadline := time.Now().Add(time.Minute)
	for i := range n {
		for {
			lines, err := store.AppLogLines(tb.Context(), slipway.AppLogQuery{Project: fmt.Sprintf("app%d", i)})
			if err != nil {
				tb.Fatal(err)
			}
			if len(lines) == 1 {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("app%d: %d lines stored, want 1", i, len(lines))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return p
}

// Following an app costs an inotify watch, not a goroutine or a timer:
// 200 sleeping apps add no goroutine.
func TestFollowingCostsNoGoroutine(t *testing.T) {
	followIdle(t, 1)
	base := settledGoroutines()
	followIdle(t, 200)
	if extra := settledGoroutines() - base; extra > 40 {
		t.Errorf("a pipeline following 200 apps added %d goroutines to one following 1 (a pipeline's own are ~20); want none per app", extra)
	}
}

// settledGoroutines is the fewest goroutines seen over a second: those
// that stay, not the short-lived ones (a publish's ack, a store
// connection) that happened to run at one instant.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(50 * time.Millisecond)
		n = min(n, runtime.NumGoroutine())
	}
	return n
}

// BenchmarkIdleApps prints the CPU the process spends per second while
// its pipeline follows 0 or 200 apps that write nothing (sleeping apps):
// go test -run '^$' -bench IdleApps -benchtime 3x ./applog
func BenchmarkIdleApps(b *testing.B) {
	for _, n := range []int{0, 200} {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			followIdle(b, n)
			time.Sleep(time.Second) // let the start settle
			b.ResetTimer()
			var cpu time.Duration
			for range b.N {
				before := cpuTime()
				time.Sleep(time.Second)
				cpu += cpuTime() - before
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/s")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
