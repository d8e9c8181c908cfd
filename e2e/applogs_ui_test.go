package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/slipway-ci/slipway/web/webtest"
)

// checkAppUI drives the web UI in headless Chromium: the project page
// shows the app's URL, state, current release and last wake; its "App
// logs" view shows the app's lines with their streams, and a new line
// live.
func checkAppUI(t *testing.T, s *serverProc, addr, release string) {
	t.Helper()
	b := webtest.New(t, 1280, 900)
	b.Do("open the project page", 30*time.Second, chromedp.Navigate(s.URL+"/projects/web"))
	webtest.WaitFor[bool](b, "the sign-in form", `!!document.querySelector("#sign-in #token-input")`, 15*time.Second)
	b.Do("sign in", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS("#token-input"), s.Token),
		chromedp.Click(chromedp.CSS("#sign-in-button")),
	)
	state := webtest.WaitFor[string](b, "the app's state", `document.querySelector("#app-state")?.dataset.state`, 30*time.Second)
	wantURL := "http://web.localhost:" + strings.TrimPrefix(addr, "127.0.0.1:")
	href := webtest.Eval[string](b, `document.querySelector("a#app-url")?.href || ""`)
	rel := webtest.Eval[string](b, `document.querySelector("a#app-release")?.getAttribute("href") || ""`)
	wake := webtest.Eval[string](b, `document.querySelector("#app-last-wake")?.textContent || ""`)
	// Idle 3 s, the app may be frozen again by now.
	if (state != "serving" && state != "frozen") || strings.TrimSuffix(href, "/") != wantURL || rel != "/deployments/"+release || !strings.Contains(wake, "took") {
		t.Errorf("project page: state %q, URL %q, release link %q, last wake %q; want serving or frozen at %s, /deployments/%s, a wake time",
			state, href, rel, wake, wantURL, release)
	}
	b.Screenshot("project-app")

	b.Do("open the app logs", 30*time.Second, chromedp.Click(chromedp.CSS("#app-logs-link")))
	webtest.WaitFor[bool](b, "the app's lines", `[...document.querySelectorAll("#app-log .ln-stderr")].some((e) => e.textContent.includes("oops one"))`, 30*time.Second)
	if text := webtest.Eval[string](b, `document.querySelector("#app-log").textContent`); strings.Contains(text, appLogSecret) || !strings.Contains(text, "release "+release) {
		t.Errorf("app logs view: want the release marker and never the secret:\n%s", text)
	}
	webtest.WaitFor[bool](b, "the live state", `document.querySelector("#app-log").classList.contains("is-live")`, 15*time.Second)
	if code, _ := appRequest(t, addr, "web.localhost", "/cgi-bin/hit?three"); code != http.StatusOK {
		t.Fatalf("GET /cgi-bin/hit?three: %d", code)
	}
	webtest.WaitFor[bool](b, "the new line, live", `[...document.querySelectorAll("#app-log .ln-stdout")].some((e) => e.textContent.includes("hit three"))`, 30*time.Second)
	b.Screenshot("app-logs")
}
