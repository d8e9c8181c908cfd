package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Targets of issue 17's item 3.
const (
	targetFrozenP50    = 30 * time.Millisecond
	targetStoppedRatio = 0.6
	targetOverheadP50  = time.Millisecond
	targetRPSRatio     = 0.8
	targetRSSGrowth    = 100 << 20
	// targetIdleCPUShare is what "0 CPU" is taken to mean over the
	// window: at most 0.1 % of one core.
	targetIdleCPUShare = 0.001
)

// report is one run's figures.
type report struct {
	cfg                   Config
	wakes                 []wakeResult
	overhead              []overheadResult
	sleeping              *sleepResult
	loadBefore, loadAfter string
}

func met(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func (r report) markdown() string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# App runtime figures (issue 17, item 3)\n\n")
	fmt.Fprintf(&b, "%s on %s (%d cores), load average %s before, %s after; network %s, stopped apps primed: %v, gateway dials: %s",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), r.loadBefore, r.loadAfter,
		r.cfg.Network, !r.cfg.NoPrime, map[bool]string{false: "inside the app's network namespace", true: "the published port"}[r.cfg.PublishedPort])
	if r.cfg.Label != "" {
		fmt.Fprintf(&b, "; %s", r.cfg.Label)
	}
	b.WriteString(".\n\n")
	r.wakeTable(&b)
	r.overheadTable(&b)
	r.sleepingTable(&b)
	r.summary(&b)
	return b.String()
}

func (r report) wakeTable(b *strings.Builder) {
	fmt.Fprintf(b, "## Waking (%d interleaved rounds per app; first byte through the gateway on a new connection)\n\n", r.cfg.Rounds)
	b.WriteString("| app | frozen p50 | frozen p90 | target p50 ≤ 30 ms | stopped p50 (start + health) | podman start + first byte by hand p50 | ratio | target ≤ 0.60 |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, w := range r.wakes {
		f50, s50, h50 := pct(w.Frozen, 50), pct(w.Stopped, 50), pct(w.ByHand, 50)
		ratio := float64(s50) / float64(h50)
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s (%s + %s) | %s | %.2f | %s |\n", w.Image, ms(f50), ms(pct(w.Frozen, 90)),
			met(f50 <= targetFrozenP50), ms(s50), ms(pct(w.StartPhase, 50)), ms(pct(w.HealthPhase, 50)), ms(h50), ratio,
			met(ratio <= targetStoppedRatio))
	}
	b.WriteString("\n")
}

func (r report) overheadTable(b *strings.Builder) {
	clients := "a child process per round, after its warm-up"
	if r.cfg.InProcess {
		clients = "goroutines of the gateway's own process"
	}
	fmt.Fprintf(b, "## A warm app: through the gateway against its published port (%d alternating rounds of %s per side; clients: %s)\n\n",
		r.cfg.OverheadRounds, r.cfg.RoundTime, clients)
	b.WriteString("| app | concurrency | direct req/s | gateway req/s | ratio | target ≥ 0.80 | direct p50 | gateway p50 | added p50 | target ≤ 1 ms |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, o := range r.overhead {
		ratio := o.Gateway.rps() / o.Direct.rps()
		added := o.Gateway.p50() - o.Direct.p50()
		fmt.Fprintf(b, "| %s | %d | %.0f | %.0f | %.2f | %s | %s | %s | %s | %s |\n", o.Image, o.Concurrency,
			o.Direct.rps(), o.Gateway.rps(), ratio, met(ratio >= targetRPSRatio), ms(o.Direct.p50()), ms(o.Gateway.p50()),
			ms(added), met(added <= targetOverheadP50))
	}
	b.WriteString("\n")
}

func (r report) sleepingTable(b *strings.Builder) {
	s := r.sleeping
	if s == nil {
		return
	}
	fmt.Fprintf(b, "## %d sleeping apps (%d frozen, %d stopped; made in %s)\n\n", s.Apps, s.Frozen, s.Stopped, s.Made.Round(time.Second))
	b.WriteString("| figure | value | target | |\n|---|---|---|---|\n")
	limit := time.Duration(float64(s.Window) * targetIdleCPUShare)
	fmt.Fprintf(b, "| control plane CPU over %s before the apps were made (this process %s + podman API service %s) | %s | (the baseline) | |\n",
		s.Window, ms(s.BaseSelfCPU), ms(s.BaseServiceCPU), ms(s.BaseSelfCPU+s.BaseServiceCPU))
	fmt.Fprintf(b, "| control plane CPU over %s with the apps asleep (this process %s + podman API service %s) | %s | | |\n",
		s.Window, ms(s.SelfCPU), ms(s.ServiceCPU), ms(s.ControlCPU))
	fmt.Fprintf(b, "| what the sleeping apps add to the control plane's CPU | %s | ≤ %s (0.1 %% of a core) | %s |\n",
		ms(s.addedCPU()), ms(limit), met(s.addedCPU() <= limit))
	fmt.Fprintf(b, "| the apps' processes' CPU over %s (%d: conmon, apps, network helpers) | %s | ≤ %s | %s |\n",
		s.Window, s.Procs, ms(s.AppsCPU), ms(limit), met(s.AppsCPU <= limit))
	growth := s.RSSAfter - s.RSSBefore
	fmt.Fprintf(b, "| control plane RSS growth (this process: %s → %s) | %s | < 100 MB | %s |\n",
		mb(s.RSSBefore), mb(s.RSSAfter), mb(growth), met(growth < targetRSSGrowth))
	fmt.Fprintf(b, "| podman API service RSS (for information) | %s → %s | | |\n", mb(s.ServiceBefore), mb(s.ServiceAfter))
	fmt.Fprintf(b, "| the apps' processes' RSS (for information) | %s | | |\n", mb(s.AppsRSS))
	b.WriteString("\n")
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

// summary lists each target once: met only when every app meets it.
func (r report) summary(b *strings.Builder) {
	frozen, stopped, added, rps := true, true, true, true
	for _, w := range r.wakes {
		frozen = frozen && pct(w.Frozen, 50) <= targetFrozenP50
		stopped = stopped && float64(pct(w.Stopped, 50))/float64(pct(w.ByHand, 50)) <= targetStoppedRatio
	}
	for _, o := range r.overhead {
		added = added && o.Gateway.p50()-o.Direct.p50() <= targetOverheadP50
		rps = rps && o.Gateway.rps()/o.Direct.rps() >= targetRPSRatio
	}
	b.WriteString("## Targets (met only when met for every app and concurrency)\n\n")
	fmt.Fprintf(b, "- frozen → first byte p50 ≤ 30 ms: %s\n", met(frozen))
	fmt.Fprintf(b, "- stopped → first byte p50 ≤ 0.6× podman start by hand: %s\n", met(stopped))
	fmt.Fprintf(b, "- gateway adds ≤ 1 ms at p50: %s\n", met(added))
	fmt.Fprintf(b, "- gateway ≥ 0.8× direct req/s: %s\n", met(rps))
	if s := r.sleeping; s != nil {
		limit := time.Duration(float64(s.Window) * targetIdleCPUShare)
		fmt.Fprintf(b, "- %d sleeping apps cost no CPU: %s\n", s.Apps, met(s.addedCPU() <= limit && s.AppsCPU <= limit))
		fmt.Fprintf(b, "- control plane RSS grows < 100 MB: %s\n", met(s.RSSAfter-s.RSSBefore < targetRSSGrowth))
	}
}

// addedCPU is what the sleeping apps add to the control plane's CPU time
// over the window.
func (s sleepResult) addedCPU() time.Duration {
	return s.ControlCPU - (s.BaseSelfCPU + s.BaseServiceCPU)
}
