package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/web/webtest"
)

// TestWebUI drives the web UI in headless Chromium against the real server:
// add a project with the form, deploy it with the Deploy button, watch the
// log arrive while the build runs, see it succeed; then a push that fails
// shows the failed step, and "Jump to failing step" brings its line into
// view. Mid-build the page shows the build's progress (phase, STEP n/m);
// once ended, that its log is complete; after the project's log retention
// deleted a log, that it was pruned. Set SLIPWAY_UI_SCREENSHOTS=DIR to keep
// a screenshot of each page.
func TestWebUI(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0", "--log-prune-every", "2s")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	dir, sha1 := testenv.GitRepo(t, map[string]string{
		// The coloured line comes first and the build then waits, so the
		// browser must show it while the deployment is still building.
		"Dockerfile": "FROM " + base + "\n" +
			// The markers are built at run time so that the STEP line,
			// which echoes the command, does not contain them.
			`RUN printf '\033[32mui-build-%s\033[0m step \033[1mone\033[0m\n' started && sleep 6 && X=done && echo ui-build-$X` + "\n" +
			"COPY app.txt /app.txt\n",
		"app.txt": "v1\n",
	})
	repoURL := "file://" + dir
	b := webtest.New(t, 1280, 900)

	// Without a token the UI asks for one; a wrong one is refused with the
	// server's message, the admin token lets the user in.
	b.Do("open Slipway", 30*time.Second, chromedp.Navigate(s.URL+"/"))
	webtest.WaitFor[bool](b, "the sign-in form", `!!document.querySelector("#sign-in #token-input")`, 15*time.Second)
	b.Screenshot("sign-in")
	b.Do("sign in with a wrong token", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS("#token-input"), "slw_wrong"),
		chromedp.Click(chromedp.CSS("#sign-in-button")),
	)
	refused := webtest.WaitFor[string](b, "the refusal", `document.querySelector("#sign-in-error")?.hidden === false && document.querySelector("#sign-in-error").textContent`, 15*time.Second)
	if !strings.Contains(refused, "invalid API token") {
		t.Errorf("sign-in with a wrong token says %q, want the server's message", refused)
	}
	b.Do("sign in with the admin token", 30*time.Second,
		chromedp.SendKeys(chromedp.CSS("#token-input"), s.Token),
		chromedp.Click(chromedp.CSS("#sign-in-button")),
	)

	// The project list starts empty; the form adds a project and shows its
	// webhook URL and secret once.
	webtest.WaitFor[bool](b, "the empty project list", `document.body.innerText.includes("No projects yet") && !!document.querySelector("#sign-out")`, 15*time.Second)
	b.Do("fill in the add-project form", 30*time.Second,
		chromedp.Click(chromedp.CSS("#add-project")),
		chromedp.SendKeys(chromedp.CSS(`#add-project-card input[name="name"]`), "web"),
		chromedp.SendKeys(chromedp.CSS(`#add-project-card input[name="repo"]`), repoURL),
		chromedp.Click(chromedp.CSS(`#add-project-card button[type="submit"]`)),
	)
	webhookURL := webtest.WaitFor[string](b, "the webhook URL of the new project", `document.querySelector("#webhook-url")?.textContent`, 15*time.Second)
	secret := webtest.Eval[string](b, `document.querySelector("#webhook-secret").textContent`)
	// The project's own webhook URL: the shared one and a 32-hex-digit hook id.
	if !regexp.MustCompile(`^`+regexp.QuoteMeta(s.URL+"/webhooks/github/")+`[0-9a-f]{32}$`).MatchString(webhookURL) || len(secret) != 64 {
		t.Errorf("project added: webhook URL %q and secret %q, want %s/<32 hex digits> and 64 hex digits", webhookURL, secret, s.URL+"/webhooks/github")
	}
	webtest.WaitFor[bool](b, "the new project in the list", `!!document.querySelector('tr[data-project="web"]')`, 15*time.Second)
	b.Screenshot("projects-added")

	// The project page has no deployment yet; Deploy starts one and opens it.
	b.Do("open the project", 30*time.Second, chromedp.Click(chromedp.CSS(`#project-added a.btn-primary`)))
	webtest.WaitFor[bool](b, "the project's empty state", `document.body.innerText.includes("No deployments yet — push to main or click Deploy")`, 15*time.Second)
	b.Screenshot("project-empty")
	b.Do("click Deploy", 30*time.Second, chromedp.Click(chromedp.CSS("#deploy-button")))
	id := strings.TrimPrefix(webtest.WaitFor[string](b, "the deployment page", `location.pathname.startsWith("/deployments/") && location.pathname`, 15*time.Second), "/deployments/")
	if ds := s.deployments(t, "web"); len(ds) != 1 || ds[0].ID != id {
		t.Fatalf("after Deploy the page shows deployment %q; the API lists %+v", id, ds)
	}

	// The log arrives while the build runs: the first RUN line shows while
	// the status is still building and before the step's last line.
	type liveState struct {
		Status    string `json:"status"`
		Coloured  bool   `json:"coloured"`
		Done      bool   `json:"done"`
		Follow    string `json:"follow"`
		Numbered  bool   `json:"numbered"`
		Transport string `json:"transport"`
		Progress  *struct {
			Phase string `json:"phase"`
			Step  string `json:"step"`
			Total string `json:"total"`
			Text  string `json:"text"`
		} `json:"progress"`
		ListProgress string `json:"listProgress"`
	}
	// The progress card follows the build's STEP n/m (the agent's signal
	// can trail the log line by a moment): wait for both, or for the end.
	live := webtest.WaitFor[liveState](b, "the first build line in the log and the build's progress", `(() => {
		const lines = [...document.querySelectorAll("#log-lines .ln")];
		const l = lines.find((e) => e.textContent.includes("ui-build-started"));
		if (!l) return null;
		const p = document.querySelector("#progress");
		const done = lines.some((e) => e.textContent.includes("ui-build-done"));
		if (!done && p?.dataset.step !== "2") return null;
		return {
			progress: p && {phase: p.dataset.phase, step: p.dataset.step, total: p.dataset.stepsTotal, text: p.innerText},
			status: document.querySelector("#deployment-status")?.dataset.status,
			coloured: l.querySelector(".ansi-fg-2")?.textContent === "ui-build-started" && l.querySelector(".ansi-bold")?.textContent === "one",
			done: lines.some((e) => e.textContent.includes("ui-build-done")),
			follow: document.querySelector("#follow-toggle").getAttribute("aria-pressed"),
			numbered: /^\d+$/.test(l.querySelector(".ln-n").textContent),
			transport: document.documentElement.dataset.logTransport,
		};
	})()`, 4*time.Minute)
	b.Screenshot("deployment-live")
	if live.Status != "building" || live.Done {
		t.Errorf("when the first RUN line showed, the status was %q and the step's last line shown = %v; want building and not yet", live.Status, live.Done)
	}
	if !live.Coloured || !live.Numbered || live.Follow != "true" {
		t.Errorf("live log line: coloured %v, numbered %v, follow %q; want ANSI colours as classes, a line number and follow on", live.Coloured, live.Numbered, live.Follow)
	}
	if live.Transport != "websocket" {
		t.Errorf("the live log came by %q, want the WebSocket subscription", live.Transport)
	}
	if pr := live.Progress; pr == nil || pr.Phase != "build" || pr.Step != "2" || pr.Total != "3" ||
		!strings.Contains(pr.Text, "Step 2 of 3") || !strings.Contains(pr.Text, "RUN printf") {
		t.Errorf("progress mid-build = %+v; want phase build, \"Step 2 of 3\" and the RUN instruction", pr)
	}

	webtest.WaitFor[bool](b, "the deployment to succeed", `document.querySelector("#deployment-status")?.dataset.status === "succeeded"`, 5*time.Minute)
	webtest.WaitFor[bool](b, "the end of the log", `document.querySelector("#log-state")?.textContent === "Complete" && document.querySelector("#log-lines").textContent.includes("ui-build-done")`, time.Minute)
	if n := webtest.Eval[int](b, `document.querySelectorAll("#progress").length`); n != 0 {
		t.Errorf("the progress card is still shown after the deployment ended")
	}
	d := s.waitFinished(t, "web", id, time.Minute)
	type finished struct {
		Digest string   `json:"digest"`
		Phases []string `json:"phases"`
		Lines  int      `json:"lines"`
		Nums   []int    `json:"nums"`
	}
	f := webtest.Eval[finished](b, `(() => ({
		digest: document.querySelector("#digest")?.title,
		phases: [...document.querySelectorAll("#timings .bar-row")].map((r) => r.dataset.phase),
		lines: document.querySelectorAll("#log-lines .ln").length,
		nums: [...document.querySelectorAll("#log-lines .ln")].map((l) => +l.dataset.n),
	}))()`)
	if f.Digest != d.Digest || d.Digest == "" {
		t.Errorf("the page shows digest %q, the API %q", f.Digest, d.Digest)
	}
	if got := strings.Join(f.Phases, ","); got != "queue,wake,fetch,build,push,release,total" {
		t.Errorf("timing bars for %s, want queue,wake,fetch,build,push,release,total", got)
	}
	// The build steps card lists the steps the API reports, in order,
	// with how each was served.
	type stepRow struct {
		N    string `json:"n"`
		How  string `json:"how"`
		Text string `json:"text"`
	}
	rows := webtest.WaitFor[[]stepRow](b, "the build steps card", `(() => {
		const rows = [...document.querySelectorAll("#steps .step-row")];
		return rows.length ? rows.map((r) => ({n: r.dataset.n, how: r.dataset.how, text: r.querySelector(".step-text").textContent})) : null;
	})()`, 30*time.Second)
	apiSteps := s.detail(t, id).Steps
	if len(rows) != len(apiSteps) || len(rows) != 3 {
		t.Errorf("the steps card shows %d steps, the API has %d, the Dockerfile 3: %+v", len(rows), len(apiSteps), rows)
	}
	for i := range min(len(rows), len(apiSteps)) {
		how := "built"
		if apiSteps[i].Cached {
			how = "cached"
		}
		if apiSteps[i].InRegistry {
			how = "registry"
		}
		if rows[i].N != fmt.Sprint(i+1) || rows[i].Text != apiSteps[i].Instruction || rows[i].How != how {
			t.Errorf("step row %d = %+v, want n %d, %q, %s", i, rows[i], i+1, apiSteps[i].Instruction, how)
		}
	}
	apiLines := s.logLines(t, id)
	if f.Lines != len(apiLines) {
		t.Errorf("the page shows %d log lines, the API has %d", f.Lines, len(apiLines))
	}
	if got, want := webtest.Eval[string](b, `document.querySelector("#log-summary").innerText`), fmt.Sprintf("Complete · %d lines", len(apiLines)); got != want {
		t.Errorf("the summary says the log is %q, want %q", got, want)
	}
	for i := 1; i < len(f.Nums); i++ {
		if f.Nums[i] != f.Nums[i-1]+1 {
			t.Errorf("log line numbers jump from %d to %d: a line is missing or repeated", f.Nums[i-1], f.Nums[i])
			break
		}
	}
	b.Screenshot("deployment-succeeded")

	// Search filters the log to matching lines and highlights the matches.
	b.Do("search the log", 30*time.Second, chromedp.SendKeys(chromedp.CSS("#log-search"), "ui-build"))
	type searchState struct {
		Count   string   `json:"count"`
		Visible []string `json:"visible"`
		Marks   int      `json:"marks"`
	}
	ss := webtest.WaitFor[searchState](b, "the search to filter the log", `(() => {
		const visible = [...document.querySelectorAll("#log-lines .ln:not([hidden])")];
		if (visible.length === document.querySelectorAll("#log-lines .ln").length) return null;
		return {
			count: document.querySelector("#log-count").textContent,
			visible: visible.map((l) => l.querySelector(".ln-text").textContent),
			marks: document.querySelectorAll("#log-lines mark.hit").length,
		};
	})()`, 10*time.Second)
	if len(ss.Visible) == 0 || ss.Marks < len(ss.Visible) || ss.Count != itoaMatches(len(ss.Visible)) {
		t.Errorf("search %q: count %q, %d highlights, lines %q", "ui-build", ss.Count, ss.Marks, ss.Visible)
	}
	for _, l := range ss.Visible {
		if !strings.Contains(strings.ToLower(l), "ui-build") {
			t.Errorf("search %q shows a line that does not match: %q", "ui-build", l)
		}
	}

	// A push that fails: the project page shows the failure and its step.
	// Its first step writes 1.2 MB of log (300 lines of 4000 x), so that a
	// 1 MiB log retention later deletes logs.
	sha2 := testenv.Commit(t, dir, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN head -c 1200000 /dev/zero | tr '\\0' x | fold -w 4000\nRUN echo ui-about-to-fail && exit 3\n",
	})
	a := s.sendPush(t, secret, "ui-delivery-1", pushPayload(t, repoURL, "main", sha1, sha2))
	if a.Status != http.StatusAccepted || a.Deployment == "" {
		t.Fatalf("push webhook signed with the secret the UI showed = %d %q, want 202 and a deployment", a.Status, a.Message)
	}
	b.Do("open the project page", 30*time.Second, chromedp.Navigate(s.URL+"/projects/web"))
	failedRow := `tr[data-deployment="` + a.Deployment + `"]`
	step := webtest.WaitFor[string](b, "the failed deployment in the project's list", `document.querySelector('`+failedRow+` .badge')?.dataset.status === "failed" && document.querySelector('`+failedRow+` .failed-step')?.textContent`, 5*time.Minute)
	if !strings.Contains(step, "RUN echo ui-about-to-fail") {
		t.Errorf("failed deployment row says %q, want the failing RUN step", step)
	}
	if n := webtest.Eval[int](b, `document.querySelectorAll(".deployments-table tbody tr").length`); n != 2 {
		t.Errorf("the project page lists %d deployments, want 2", n)
	}
	b.Screenshot("project")

	b.Do("open the failed deployment", 30*time.Second, chromedp.Click(chromedp.CSS(failedRow+" td:nth-child(2)")))
	webtest.WaitFor[bool](b, "the failed deployment's page", `location.pathname === "/deployments/`+a.Deployment+`" && document.querySelector("#deployment-status")?.dataset.status === "failed" && document.querySelector("#log-state")?.textContent === "Complete"`, time.Minute)
	if f := webtest.Eval[string](b, `document.querySelector("#failure").innerText`); !strings.Contains(f, "RUN echo ui-about-to-fail") {
		t.Errorf("failure card = %q, want the failing step", f)
	}
	b.Screenshot("deployment-failed")

	// Scroll the log away from the failure, then jump back to it.
	type jumpState struct {
		Text    string `json:"text"`
		Failing bool   `json:"failing"`
		InView  bool   `json:"inView"`
	}
	const target = `(() => {
		const pane = document.querySelector("#log-pane");
		const l = document.querySelector("#log-lines .ln.target");
		if (!l) return null;
		const p = pane.getBoundingClientRect(), r = l.getBoundingClientRect();
		return {text: l.textContent, failing: l.classList.contains("ln-fail-start"), inView: r.top >= p.top && r.bottom <= p.bottom};
	})()`
	webtest.Eval[bool](b, `(() => {
		document.querySelectorAll(".target").forEach((e) => e.classList.remove("target"));
		const pane = document.querySelector("#log-pane");
		pane.style.height = "120px"; // short enough that the log scrolls
		pane.scrollTop = pane.scrollHeight;
		return true;
	})()`)
	b.Do("jump to the failing step", 30*time.Second, chromedp.Click(chromedp.CSS("#jump-to-failure")))
	j := webtest.WaitFor[jumpState](b, "the failing step's line", target, 10*time.Second)
	if !strings.Contains(j.Text, "STEP") || !strings.Contains(j.Text, "RUN echo ui-about-to-fail") || !j.Failing || !j.InView {
		t.Errorf("jump to failing step: line %q, marked failing %v, in view %v; want the failing STEP line, in view", j.Text, j.Failing, j.InView)
	}

	// A 1 MiB log retention deletes the first deployment's log (the oldest
	// first): its page says the log was pruned, not that it is empty.
	if out, code := s.cli(t, "project", "set", "web", "--log-retention-size", "1MiB"); code != 0 {
		t.Fatalf("project set --log-retention-size: exit %d: %s", code, out)
	}
	deadline := time.Now().Add(time.Minute)
	for !s.detail(t, id).LogPruned {
		if time.Now().After(deadline) {
			t.Fatalf("the first deployment's log was not pruned within a minute of setting a 1 MiB retention\nserver:\n%s", s.out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.Do("open the pruned deployment", 30*time.Second, chromedp.Navigate(s.URL+"/deployments/"+id))
	type prunedState struct {
		Notice  string `json:"notice"`
		State   string `json:"state"`
		Summary string `json:"summary"`
		Lines   int    `json:"lines"`
		Bars    int    `json:"bars"`
	}
	ps := webtest.WaitFor[prunedState](b, "the pruned log's notice", `(() => {
		const n = document.querySelector("#log-pruned");
		if (!n || n.hidden || document.querySelector("#log-state")?.textContent === "Live") return null;
		return {
			notice: n.innerText,
			state: document.querySelector("#log-state").textContent,
			summary: document.querySelector("#log-summary")?.innerText,
			lines: document.querySelectorAll("#log-lines .ln").length,
			bars: document.querySelectorAll("#timings .bar-row").length,
		};
	})()`, 30*time.Second)
	b.Screenshot("deployment-pruned")
	if !strings.Contains(ps.Notice, "Log pruned") || ps.State != "Pruned" || !strings.Contains(ps.Summary, "Pruned") || ps.Lines != 0 || ps.Bars == 0 {
		t.Errorf("pruned deployment page: notice %q, log state %q, summary %q, %d lines, %d timing bars; want the pruned notice and state, no lines, the timings kept",
			ps.Notice, ps.State, ps.Summary, ps.Lines, ps.Bars)
	}
}

func itoaMatches(n int) string {
	if n == 1 {
		return "1 match"
	}
	b, _ := json.Marshal(n)
	return string(b) + " matches"
}

// logLines reads a deployment's stored log through the API.
func (s *serverProc) logLines(t *testing.T, id string) []json.RawMessage {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"query":     `query($id: ID!) { deployment(id: $id) { logs(first: 5000) { n } } }`,
		"variables": map[string]any{"id": id},
	})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Deployment struct {
				Logs []json.RawMessage `json:"logs"`
			} `json:"deployment"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode logs of %s: %v", id, err)
	}
	return out.Data.Deployment.Logs
}
