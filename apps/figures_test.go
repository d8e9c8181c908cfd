package apps

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWakeFigures measures, interleaved in one run, the time from asking
// an app to wake until its first byte: from frozen (Wake thaws), from
// stopped without priming (Retire, then Wake: the API service), from
// stopped and primed (Stop, then Wake: only runc start), and from stopped by
// hand (`podman start` of the CLI, then polling the port the same
// way). It logs the medians side by side and their ratio (issue 17's
// targets: frozen ≤ 30 ms; stopped ≤ 0.6× by hand). It asserts behaviour
// only (every wake answers 200), never a time. Rounds:
// SLIPWAY_WAKE_ROUNDS (default 5); network mode: SLIPWAY_WAKE_NETWORK
// (isolated or bridge; default isolated).
func TestWakeFigures(t *testing.T) {
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("SLIPWAY_WAKE_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	imgs := testImages(t)
	network := Network(os.Getenv("SLIPWAY_WAKE_NETWORK"))
	r := newRuntimeWith(t, Config{Dir: cleanDir(t), Network: network})
	ctx := t.Context()
	inst, err := r.Start(ctx, Spec{Project: "figures", Release: "r1", Image: imgs.app, MemoryBytes: 64 << 20, CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + inst.Addr() + "/"
	var frozen, ours, primed, byHand []time.Duration
	var primedKB []int
	for range rounds {
		if err := r.Freeze(ctx, inst); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := r.Wake(ctx, inst); err != nil {
			t.Fatal(err)
		}
		frozen = append(frozen, firstByte(t, url, t0, false))

		if err := r.Retire(ctx, inst); err != nil { // not primed
			t.Fatal(err)
		}
		t0 = time.Now()
		if _, err := r.Wake(ctx, inst); err != nil {
			t.Fatal(err)
		}
		ours = append(ours, firstByte(t, url, t0, false))

		if err := r.Stop(ctx, inst); err != nil { // primed
			t.Fatal(err)
		}
		primedKB = append(primedKB, primedCost(t, r, inst))
		t0 = time.Now()
		if _, err := r.Wake(ctx, inst); err != nil {
			t.Fatal(err)
		}
		primed = append(primed, firstByte(t, url, t0, false))

		if err := r.Retire(ctx, inst); err != nil {
			t.Fatal(err)
		}
		t0 = time.Now()
		if out, err := r.podman(ctx, "start", inst.Name); err != nil {
			t.Fatalf("podman start: %v: %s", err, out)
		}
		byHand = append(byHand, firstByte(t, url, t0, true))
	}
	f, o, p, h := median(frozen), median(ours), median(primed), median(byHand)
	t.Logf("wake → first byte, p50 of %d interleaved rounds, network %s:", rounds, r.cfg.Network)
	t.Logf("  frozen → first byte (freezer):            %8s   (target ≤ 30ms)   all: %v", f, frozen)
	t.Logf("  stopped → first byte (Wake, API):         %8s   %.2f× by hand (target ≤ 0.60)   all: %v", o, float64(o)/float64(h), ours)
	t.Logf("  stopped, primed → first byte (Wake, API): %8s   %.2f× by hand   all: %v", p, float64(p)/float64(h), primed)
	t.Logf("  podman start + first byte by hand:        %8s   all: %v", h, byHand)
	t.Logf("  a primed, stopped app keeps conmon + runc init: Pss %v kB", primedKB)
	fmt.Fprintf(os.Stderr, "wake figures: frozen %s; stopped %s (%.2f× by hand); stopped primed %s (%.2f×); podman start by hand %s\n",
		f, o, float64(o)/float64(h), p, float64(p)/float64(h), h)
}

// firstByte returns the time from t0 until url answered 200; with poll,
// connection failures are retried (the app is still starting) every
// millisecond, as Wake's health check does.
func firstByte(t *testing.T, url string, t0 time.Time, poll bool) time.Duration {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := t0.Add(30 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %s", url, resp.Status)
			}
			return time.Since(t0)
		}
		if !poll || time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(100 * time.Microsecond)
}

// primedCost returns the proportional set size (kB) of the processes a
// primed, stopped app keeps: conmon and its children (runc init).
func primedCost(t *testing.T, r *Runtime, inst *Instance) int {
	t.Helper()
	conmon := inspectField(t, r, inst.Name, "{{.State.ConmonPid}}")
	pids := []string{conmon}
	if b, err := os.ReadFile("/proc/" + conmon + "/task/" + conmon + "/children"); err == nil {
		pids = append(pids, strings.Fields(string(b))...)
	}
	total := 0
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + pid + "/smaps_rollup")
		if err != nil && pid == conmon {
			// A figure, not a check: podman may have replaced conmon
			// since inspect answered (seen under load in CI).
			t.Logf("primed app %s: its conmon's memory is unreadable: %v", inst.Name, err)
			return -1
		} else if err != nil {
			continue // a child that was exiting
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
				kb, _ := strconv.Atoi(f[1])
				total += kb
			}
		}
	}
	return total
}
