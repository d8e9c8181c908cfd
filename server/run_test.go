package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/internal/leakcheck"
)

// withAncestors runs the test t again in a process whose tracebacks name
// goroutines' ancestors (leakcheck.Ancestors; the runtime reads GODEBUG
// when it starts), and reports whether it did: the caller then returns.
func withAncestors(t *testing.T) bool {
	if strings.Contains(os.Getenv("GODEBUG"), leakcheck.Ancestors) {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG="+strings.Trim(os.Getenv("GODEBUG")+","+leakcheck.Ancestors, ","))
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("%v\n%s", err, out)
	case bytes.Contains(out, []byte("--- SKIP")):
		t.Skipf("%s", out)
	}
	return true
}

// Run stops every component it started and returns only once every
// goroutine of ours it started has ended.
func TestRunLeavesNoGoroutine(t *testing.T) {
	if withAncestors(t) {
		return
	}
	if _, err := buildah.Check(t.Context()); err != nil {
		t.Skipf("no usable buildah: %v", err)
	}
	before := leakcheck.Take()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", AppsListen: AppsOff, BuilderIsolation: "root",
			Logger: slog.New(slog.DiscardHandler), Ready: func(url string) { ready <- url }})
	}()
	select {
	case url := <-ready:
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok\n" {
			t.Errorf("GET /healthz = %q", b)
		}
	case err := <-done:
		t.Fatalf("Run returned before serving: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("the server did not start within 3 minutes")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	// The embedded Temporal does not await its goroutines (see
	// leakcheck): only ours count.
	if leaks := before.Leaks(5 * time.Second); len(leaks) > 0 {
		t.Errorf("%d goroutines left after Run returned:\n%s", len(leaks), leakcheck.Format(leaks))
	}
}

// A Run whose start fails (here: the listener, after the store, Temporal,
// NATS and the log services started) stops what it started and leaves no
// goroutine of ours.
func TestRunFailingToStartLeavesNoGoroutine(t *testing.T) {
	if withAncestors(t) {
		return
	}
	before := leakcheck.Take()
	err := Run(t.Context(), Config{DataDir: t.TempDir(), Listen: "256.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "listen on 256.0.0.1:0") {
		t.Errorf("Run = %v, want the listener's error", err)
	}
	if leaks := before.Leaks(5 * time.Second); len(leaks) > 0 {
		t.Errorf("%d goroutines left after Run failed:\n%s", len(leaks), leakcheck.Format(leaks))
	}
}
