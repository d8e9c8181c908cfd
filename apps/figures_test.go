package apps

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestWakeFigures measures, interleaved in one run, the time from asking
// an app to wake until its first byte: from frozen (Wake thaws), from
// stopped through this package (Wake: the API service), and from stopped
// by hand (`podman start` of the CLI, then polling the port the same
// way). It logs the medians side by side and their ratio (issue 17's
// targets: frozen ≤ 30 ms; stopped ≤ 0.6× by hand). It asserts behaviour
// only (every wake answers 200), never a time. Rounds:
// SLIPWAY_WAKE_ROUNDS (default 5).
func TestWakeFigures(t *testing.T) {
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("SLIPWAY_WAKE_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	imgs := testImages(t)
	r := newRuntime(t, cleanDir(t))
	ctx := t.Context()
	inst, err := r.Start(ctx, Spec{Project: "figures", Release: "r1", Image: imgs.app, MemoryBytes: 64 << 20, CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + inst.Addr() + "/"
	var frozen, ours, byHand []time.Duration
	for range rounds {
		if err := r.Freeze(ctx, inst); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := r.Wake(ctx, inst); err != nil {
			t.Fatal(err)
		}
		frozen = append(frozen, firstByte(t, url, t0, false))

		if err := r.Stop(ctx, inst); err != nil {
			t.Fatal(err)
		}
		t0 = time.Now()
		if _, err := r.Wake(ctx, inst); err != nil {
			t.Fatal(err)
		}
		ours = append(ours, firstByte(t, url, t0, false))

		if err := r.Stop(ctx, inst); err != nil {
			t.Fatal(err)
		}
		t0 = time.Now()
		if out, err := r.podman(ctx, "start", inst.Name); err != nil {
			t.Fatalf("podman start: %v: %s", err, out)
		}
		byHand = append(byHand, firstByte(t, url, t0, true))
	}
	f, o, h := median(frozen), median(ours), median(byHand)
	t.Logf("wake → first byte, p50 of %d interleaved rounds:", rounds)
	t.Logf("  frozen → first byte (freezer):          %8s   (target ≤ 30ms)   all: %v", f, frozen)
	t.Logf("  stopped → first byte (Wake, API):       %8s   all: %v", o, ours)
	t.Logf("  podman start + first byte by hand:      %8s   all: %v", h, byHand)
	t.Logf("  ratio stopped/by hand:                  %8.2f   (target ≤ 0.60)", float64(o)/float64(h))
	fmt.Fprintf(os.Stderr, "wake figures: frozen %s, stopped %s, by hand %s, ratio %.2f\n", f, o, h, float64(o)/float64(h))
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
