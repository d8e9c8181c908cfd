package web

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/slipway-ci/slipway/web/webtest"
)

func TestHandlerRoutes(t *testing.T) {
	h, err := newHandler(static)
	if err != nil {
		t.Fatal(err)
	}
	js := h.assets["/app.js"]
	srv := httptest.NewServer(h)
	defer srv.Close()

	for _, tc := range []struct {
		method, path string
		status       int
		contentType  string
		cache        string // Cache-Control, when status is 200
		body         string // a substring of the body
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", "no-cache", `<script type="module" src="/app.js?v=`},
		{"GET", "/index.html", 200, "text/html; charset=utf-8", "no-cache", "<title>Slipway</title>"},
		{"GET", "/projects", 200, "text/html; charset=utf-8", "no-cache", "<title>Slipway</title>"},
		{"GET", "/projects/demo", 200, "text/html; charset=utf-8", "no-cache", "<title>Slipway</title>"},
		{"GET", "/projects/demo/", 200, "text/html; charset=utf-8", "no-cache", "<title>Slipway</title>"},
		{"GET", "/projects/demo/logs", 200, "text/html; charset=utf-8", "no-cache", "<title>Slipway</title>"},
		{"GET", "/deployments/d-06h1rq9d21r2181kp30757te8k", 200, "text/html; charset=utf-8", "no-cache", "<title>Slipway</title>"},
		{"GET", "/app.js", 200, "text/javascript; charset=utf-8", "no-cache", "async function* followDeployment"},
		{"GET", "/app.js?v=" + js.version, 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "async function* followDeployment"},
		{"GET", "/app.js?v=0123456789ab", 200, "text/javascript; charset=utf-8", "no-cache", "async function* followDeployment"},
		{"GET", "/app.css", 200, "text/css; charset=utf-8", "no-cache", ".log-pane"},
		{"GET", "/favicon.svg", 200, "image/svg+xml", "no-cache", "<svg"},
		{"HEAD", "/", 200, "text/html; charset=utf-8", "no-cache", ""},
		{"GET", "/nope.js", 404, "", "", ""},
		{"GET", "/static/app.js", 404, "", "", ""},
		{"GET", "/projects/demo/settings", 404, "", "", ""},
		{"GET", "/deployments/", 404, "", "", ""},
		{"GET", "/graphql", 404, "", "", ""},
		{"POST", "/", 405, "", "", ""},
		{"DELETE", "/app.js", 405, "", "", ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
			continue
		}
		if tc.status != 200 {
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != tc.contentType {
			t.Errorf("%s %s: Content-Type = %q, want %q", tc.method, tc.path, got, tc.contentType)
		}
		if got := resp.Header.Get("Cache-Control"); got != tc.cache {
			t.Errorf("%s %s: Cache-Control = %q, want %q", tc.method, tc.path, got, tc.cache)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s: X-Content-Type-Options = %q, want nosniff", tc.method, tc.path, got)
		}
		if tc.method == "HEAD" && len(body) != 0 {
			t.Errorf("HEAD %s sent a body of %d bytes", tc.path, len(body))
		}
		if !strings.Contains(string(body), tc.body) {
			t.Errorf("%s %s: body lacks %q", tc.method, tc.path, tc.body)
		}
	}
}

func TestHandlerRevalidates(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for _, p := range []string{"/", "/app.js", "/app.css"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s has no ETag", p)
			continue
		}
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		req.Header.Set("If-None-Match", etag)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s = %d, want 304", p, etag, resp.StatusCode)
		}
	}
}

// TestIndexReferencesVersionedAssets checks that index.html loads every
// asset it names through its versioned URL, and names only assets that
// exist: nothing is fetched from another origin.
func TestIndexReferencesVersionedAssets(t *testing.T) {
	h, err := newHandler(static)
	if err != nil {
		t.Fatal(err)
	}
	index := string(h.index.body)
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html has %d references, want at least app.js, app.css and the icon:\n%s", len(refs), index)
	}
	for _, m := range refs {
		ref := m[1]
		if ref == "/" {
			continue // the home link
		}
		name, version, ok := strings.Cut(ref, "?v=")
		a, exists := h.assets[name]
		if !ok || !exists || version != a.version {
			t.Errorf("index.html refers to %q, want /NAME?v=VERSION of an embedded asset", ref)
		}
	}
	// Nothing that loads a resource may point elsewhere: CSS url() and
	// @import, JS fetch, import and WebSocket.
	external := regexp.MustCompile(`(?:url\(\s*["']?|@import\s+["']?|fetch\(\s*["'` + "`" + `]|import\s[^;]*?["']|WebSocket\(\s*["'` + "`" + `])(?:[a-z]+:)?//`)
	err = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(static, p)
		if m := external.Find(b); m != nil {
			t.Errorf("%s loads from another origin (%q); the UI must load nothing from elsewhere", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAppInBrowser runs the app's pure functions (the ANSI parser, finding
// the failing step, durations) in Chromium, and checks that an error from
// the API shows as a banner with the server's message.
func TestAppInBrowser(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/", Handler())
	mux.HandleFunc("/graphql", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"errors":[{"message":"database is locked","extensions":{"code":"internal"}}],"data":null}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := webtest.New(t, 1280, 800)
	b.Do("open the project list", 30*time.Second, chromedp.Navigate(srv.URL+"/"))
	banner := webtest.WaitFor[string](b, "the error banner", `document.querySelector(".banner-error")?.innerText`, 10*time.Second)
	if !strings.Contains(banner, "database is locked") {
		t.Errorf("error banner = %q, want the server's message", banner)
	}

	t.Run("ansi", func(t *testing.T) {
		// Each case is a list of lines parsed in order by one parser; the
		// result describes each segment as text|fg|bg|attributes.
		for _, tc := range []struct {
			lines []string
			want  []string
		}{
			{[]string{"plain text"}, []string{"plain text|||"}},
			{[]string{"\x1b[31mred\x1b[0m done"}, []string{"red|1||", " done|||"}},
			{[]string{"\x1b[1;32mok\x1b[22m still green\x1b[39m"}, []string{"ok|2||bold", " still green|2||"}},
			{[]string{"\x1b[94mbright\x1b[m"}, []string{"bright|12||"}},
			{[]string{"\x1b[38;5;208morange"}, []string{"orange|#ff8700||"}},
			{[]string{"\x1b[38;5;244mgrey"}, []string{"grey|#808080||"}},
			{[]string{"\x1b[38;2;255;105;180mpink"}, []string{"pink|#ff69b4||"}},
			{[]string{"\x1b[38:2::1:2:3mitu"}, []string{"itu|#010203||"}},
			{[]string{"\x1b[48;5;4mon blue"}, []string{"on blue||4|"}},
			{[]string{"\x1b[7minverse"}, []string{"inverse|inv-bg|inv-fg|"}},
			{[]string{"\x1b[3;4;9mstyled"}, []string{"styled|||italic,underline,strike"}},
			{[]string{"\x1b[31mcarried", "over\x1b[0m", "reset"}, []string{"carried|1||", "over|1||", "reset|||"}},
			{[]string{"\x1b[2K\x1b[1Gprogress 50%\rprogress 100%"}, []string{"progress 100%|||"}},
			{[]string{"crlf\r"}, []string{"crlf|||"}},
			{[]string{"a\x1b]0;title\x07b"}, []string{"ab|||"}},
			{[]string{"\x1b[?25lcursor hidden\x1b[?25h"}, []string{"cursor hidden|||"}},
			{[]string{"bell\x07 and\ttab"}, []string{"bell and\ttab|||"}},
			{[]string{"\x1b[38;5mbroken"}, []string{"broken|||"}},
		} {
			in, _ := json.Marshal(tc.lines)
			got := webtest.Eval[[]string](b, `(() => {
				const p = new Slipway.AnsiParser();
				const c = (x) => x ? String(x.idx ?? x.rgb ?? "inv-" + x.inv) : "";
				return `+string(in)+`.flatMap((l) => p.parse(l)).map((s) =>
					[s.text, c(s.fg), c(s.bg), ["bold", "dim", "italic", "underline", "strike"].filter((k) => s[k]).join(",")].join("|"));
			})()`)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("parse(%q) = %q, want %q", tc.lines, got, tc.want)
			}
		}
	})

	t.Run("failing step", func(t *testing.T) {
		lines := `[
			{"plain": "fetching abc", "step": "fetch"},
			{"plain": "STEP 1/3: FROM base", "step": "build"},
			{"plain": "STEP 2/3: RUN make", "step": "build"},
			{"plain": "make: *** Error 2", "step": "build"},
			{"plain": "pushing", "step": "push"}
		]`
		for _, tc := range []struct {
			failedStep string
			want       int
		}{
			{"STEP 2/3: RUN make", 2},
			{"[1/2] STEP 2/3: RUN make", 2},
			{"push", 4},
			{"fetch", 0},
			{"STEP 3/3: COPY . .", -1},
			{"", -1},
		} {
			got := webtest.Eval[int](b, `Slipway.failingLineIndex(`+lines+`, `+jsString(tc.failedStep)+`)`)
			if got != tc.want {
				t.Errorf("failingLineIndex(%q) = %d, want %d", tc.failedStep, got, tc.want)
			}
		}
	})

	t.Run("durations", func(t *testing.T) {
		for _, tc := range []struct {
			ms   int
			want string
		}{
			{13, "13 ms"}, {999, "999 ms"}, {4572, "4.6 s"}, {42000, "42 s"}, {65000, "1 min 5 s"}, {3_723_000, "1 h 2 min"},
		} {
			if got := webtest.Eval[string](b, `Slipway.fmtDuration(`+itoa(tc.ms)+`)`); got != tc.want {
				t.Errorf("fmtDuration(%d) = %q, want %q", tc.ms, got, tc.want)
			}
		}
	})
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
