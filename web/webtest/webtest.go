// Package webtest drives the web UI in a real browser for tests: headless
// Chromium from Debian's `chromium` package, through chromedp. It fails the
// test, never skips it, when Chromium is missing.
//
// Only tests may import this package.
package webtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package installs the browser.
const ChromiumPath = "/usr/bin/chromium"

// InstallHint says how to get Chromium.
const InstallHint = "apt-get install chromium (scripts/setup installs it)"

// ScreenshotDirEnv names the environment variable that, when set to a
// directory, makes Screenshot save PNGs there.
const ScreenshotDirEnv = "SLIPWAY_UI_SCREENSHOTS"

// Browser is one headless Chromium with one tab, closed when the test ends.
type Browser struct {
	t   testing.TB
	ctx context.Context // the tab's context: actions run against it

	mu         sync.Mutex
	exceptions []string // uncaught exceptions the page threw
}

// New starts Chromium with a fresh profile and opens a tab with a viewport of
// width×height. At the end of the test it closes the browser and fails the
// test if a page threw an uncaught JavaScript exception.
func New(t testing.TB, width, height int) *Browser {
	t.Helper()
	if _, err := exec.LookPath(ChromiumPath); err != nil {
		t.Fatalf("webtest: Chromium not found at %s: %v (install it: %s)", ChromiumPath, err, InstallHint)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Keep timers at full speed: the UI polls the API with them.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	b := &Browser{t: t, ctx: ctx}
	// The first action starts the browser; it must not run under a timeout
	// (that would stop the browser when it expires).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("webtest: start Chromium (%s): %v (install it: %s)", ChromiumPath, err, InstallHint)
	}
	console := chromedp.Console(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() {
				b.mu.Lock()
				b.exceptions = append(b.exceptions, fmt.Sprintf("%s (%s:%d)", m.Text, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		wg.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.exceptions) > 0 {
			t.Errorf("the page threw uncaught exceptions:\n%s", strings.Join(b.exceptions, "\n"))
		}
	})
	return b
}

// Context is the tab's context, for chromedp calls the helpers lack.
func (b *Browser) Context() context.Context { return b.ctx }

// Do runs actions in the tab within timeout and fails the test on error,
// saying what it was doing.
func (b *Browser) Do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v\npage text:\n%s", what, err, b.pageText())
	}
}

// Eval evaluates a JavaScript expression in the page and decodes its value
// into T; it fails the test on error.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// WaitFor waits until the JavaScript expression is truthy and returns its
// value decoded into T; it fails the test with what (and the page's text)
// when timeout passes first.
func WaitFor[T any](b *Browser, what, expr string, timeout time.Duration) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		b.t.Fatalf("browser: waiting for %s: %v\npage text:\n%s", what, err, b.pageText())
	}
	return v
}

// Screenshot saves the page as NAME.png in $SLIPWAY_UI_SCREENSHOTS, if set.
func (b *Browser) Screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv(ScreenshotDirEnv)
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("browser: screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("browser: %v", err)
		return
	}
	b.t.Logf("screenshot: %s", p)
}

// pageText is the visible text of the page, for failure messages.
func (b *Browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return fmt.Sprintf("(unavailable: %v)", err)
	}
	if len(s) > 4000 {
		s = s[:4000] + "\n…"
	}
	return s
}
