// Package e2e runs Slipway end to end: the real `slipway` binary as a
// subprocess (server, agents and CLI), real buildah, the embedded registry,
// Temporal and NATS, real git repositories, and signed webhooks shaped like
// GitHub's.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/github"
	"github.com/slipway-ci/slipway/internal/leakcheck"
	"github.com/slipway-ci/slipway/internal/testenv"
)

var (
	slipwayBin  string
	attackerBin string // e2e/attacker, run as nobody by the attack suite
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "slipway-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Rootless builders run the agent as their own users.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	slipwayBin = filepath.Join(dir, "slipway")
	attackerBin = filepath.Join(dir, "attacker")
	// slipway-agent next to slipway is what the server runs on machines.
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/slipway-ci/slipway/cmd/slipway", "github.com/slipway-ci/slipway/cmd/slipway-agent",
		"github.com/slipway-ci/slipway/e2e/attacker")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building slipway and slipway-agent failed:", err)
		os.Exit(1)
	}
	code := m.Run()
	if !attackTally() && code == 0 {
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type serverProc struct {
	cmd     *exec.Cmd
	URL     string
	Token   string // the admin API token the server wrote to its data directory
	Host    string // host:port of the listener, also the registry host
	DataDir string
	out     *syncBuffer
	done    chan struct{}
}

var (
	runningRE = regexp.MustCompile(`Slipway is running: open (http://\S+)`)
	appsRE    = regexp.MustCompile(`Apps are served at http://PROJECT\.[^:/\s]+:(\d+)`)
)

// startServer runs `slipway server` and waits until it serves.
func startServer(t *testing.T, dataDir, listen string, extra ...string) *serverProc {
	t.Helper()
	// Rootless builder users reach their volumes through the data
	// directory's parent (a private test directory).
	testenv.PassThrough(t, filepath.Dir(dataDir))
	// No apps unless the test asks for them (--apps-listen 127.0.0.1:0):
	// the app runtime's podman wants a short data directory (its run
	// root), and most tests have no use for it.
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--apps-listen") }) {
		extra = append([]string{"--apps-listen", "off"}, extra...)
	}
	cmd := exec.Command(slipwayBin, append([]string{"server", "--data-dir", dataDir, "--listen", listen}, extra...)...)
	// The server, and the agents it starts with its environment, check
	// that they leave no goroutine of ours when they stop (stop fails the
	// test otherwise); tracebacks then name the goroutines' ancestors, so
	// that those a library started for us count.
	cmd.Env = append(os.Environ(), leakcheck.Env+"=1", "GODEBUG="+leakcheck.Ancestors)
	out := &syncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(out, pw)
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	s := &serverProc{cmd: cmd, DataDir: dataDir, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := runningRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		s.stop(t)
		stopAgents(t, dataDir)
		removeApps(t, dataDir)
		unmountAll(t, dataDir)
	})
	select {
	case u := <-urlc:
		s.URL = u
		s.Host = strings.TrimPrefix(u, "http://")
		b, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
		if err != nil {
			t.Fatalf("the server wrote no admin token: %v\n%s", err, out)
		}
		s.Token = strings.TrimSpace(string(b))
		s.logInRegistry(t)
	case <-s.done:
		t.Fatalf("server exited before serving:\n%s", out)
	case <-time.After(3 * time.Minute):
		t.Fatalf("server did not start within 3 minutes:\n%s", out)
	}
	return s
}

// registryLogins are the passwords the tests read the registries at their
// hosts with (host → the server's admin API token, which may pull and
// push everything, never delete); testenv.Registry's take
// testenv.RegistryToken.
var registryLogins sync.Map

// logInRegistry makes a registry token that may push base/* images (as
// the README tells a user to) and logs the tests' builders
// (testenv.Builder) in with it, so that testenv.BaseImage pushes with it;
// the tests' own reads use the admin token (registryGet).
func (s *serverProc) logInRegistry(t *testing.T) {
	t.Helper()
	out, code := s.cli(t, "token", "create", "--name", "base-images", "--scope", "push:base/*")
	token, _, _ := strings.Cut(out, "\n")
	if code != 0 || !strings.HasPrefix(token, "slw_") {
		t.Fatalf("token create --scope push:base/* = exit %d:\n%s", code, out)
	}
	testenv.LogIn(t, s.Host, token)
	registryLogins.Store(s.Host, s.Token)
}

// registryGet GETs path (from /v2/ on) of the registry at host with the
// tests' login there (registryLogins) and returns the answer.
func registryGet(t *testing.T, host, path, accept string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	pass := testenv.RegistryToken
	if p, ok := registryLogins.Load(host); ok {
		pass = p.(string)
	}
	req.SetBasicAuth("e2e", pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp
}

// stop stops the server (SIGTERM, SIGKILL after 30 s) and fails t if it,
// or an agent it ran, left goroutines of ours running once it stopped.
func (s *serverProc) stop(t *testing.T) {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	// An agent's check fails its machine, which the server logs.
	if out := s.out.String(); strings.Contains(out, leakcheck.Left) {
		t.Errorf("the server or an agent left goroutines running:\n%s", out[strings.Index(out, leakcheck.Left):])
	}
}

func (s *serverProc) kill9(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Kill()
	<-s.done
}

// waitOutput waits until the server's output matches re (its log reaches
// the buffer through a pipe, after its "running" line), and returns the
// output; it fails t if the server exits or a minute passes first.
func (s *serverProc) waitOutput(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out := s.out.String()
		if re.MatchString(out) {
			return out
		}
		select {
		case <-s.done:
			t.Fatalf("the server exited; its output does not match %s:\n%s", re, s.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's output does not match %s:\n%s", re, out)
		}
	}
}

// cli runs a slipway client command against s.
func (s *serverProc) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(slipwayBin, append([]string{"--server", s.URL, "--token", s.Token}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("slipway %v: %v", args, err)
	}
	return out.String() + errOut.String(), code
}

// addProject runs `slipway project add NAME --repo REPO FLAGS...` and fails
// the test unless it succeeds. repo is a repository URL or a local directory
// (an absolute path, given to the server as a file:// URL). It returns what
// the command printed.
func (s *serverProc) addProject(t *testing.T, name, repo string, flags ...string) string {
	t.Helper()
	if strings.HasPrefix(repo, "/") {
		repo = "file://" + repo
	}
	out, code := s.cli(t, append([]string{"project", "add", name, "--repo", repo}, flags...)...)
	if code != 0 {
		t.Fatalf("slipway project add %s: exit %d\n%s", name, code, out)
	}
	return out
}

type deploymentJSON struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"`
	Commit     string     `json:"commit"`
	Image      string     `json:"image"`
	Digest     string     `json:"digest"`
	Error      string     `json:"error"`
	FailedStep string     `json:"failedStep"`
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt"`
	// LogComplete and LogLines: whether the whole log was stored when it
	// ended, and its last line's number.
	LogComplete *bool `json:"logComplete"`
	LogLines    int64 `json:"logLines"`
}

// checkLogComplete fails unless d ended with its log recorded complete and
// the store holds exactly lines 1..LogLines, read at once: a reader never
// sees a short log after the end.
func (s *serverProc) checkLogComplete(t *testing.T, d deploymentJSON) {
	t.Helper()
	stored, err := s.api().Logs(t.Context(), d.ID, 0, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if d.LogComplete == nil || !*d.LogComplete || d.LogLines == 0 || int64(len(stored)) != d.LogLines ||
		stored[len(stored)-1].N != d.LogLines {
		t.Errorf("deployment %s ended with log complete %v, %d lines; the store has %d lines: want complete and all of them stored",
			d.ID, d.LogComplete, d.LogLines, len(stored))
	}
}

func (s *serverProc) deployments(t *testing.T, project string) []deploymentJSON {
	t.Helper()
	out, code := s.cli(t, "deployments", project, "--json")
	if code != 0 {
		t.Fatalf("slipway deployments %s --json: exit %d: %s", project, code, out)
	}
	var ds []deploymentJSON
	if err := json.Unmarshal([]byte(out), &ds); err != nil {
		t.Fatalf("slipway deployments --json printed invalid JSON: %v\n%s", err, out)
	}
	return ds
}

// waitFinished waits until deployment id reaches a terminal state.
func (s *serverProc) waitFinished(t *testing.T, project, id string, within time.Duration) deploymentJSON {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, d := range s.deployments(t, project) {
			if d.ID == id {
				switch d.Status {
				case "succeeded", "failed", "cancelled", "superseded":
					return d
				}
			}
		}
		if time.Now().After(deadline) {
			logs, _ := s.cli(t, "logs", id)
			t.Fatalf("deployment %s did not finish within %s\nserver output:\n%s\nlogs:\n%s\nagent log:\n%s", id, within, s.out, logs, s.agentLog(project))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (s *serverProc) agentLog(project string) string {
	b, _ := os.ReadFile(filepath.Join(s.DataDir, "volumes", project, "agent.log"))
	return string(b)
}

// pushPayload is GitHub's push fixture rewritten for repo, branch and
// commit.
func pushPayload(t *testing.T, repoURL, branch, before, after string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "github", "testdata", "push.payload.json"))
	if err != nil {
		t.Fatalf("read push fixture: %v", err)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	p["ref"] = "refs/heads/" + branch
	p["before"] = before
	p["after"] = after
	p["deleted"] = false
	repo := p["repository"].(map[string]any)
	repo["clone_url"] = repoURL
	repo["html_url"] = repoURL
	repo["git_url"] = repoURL
	repo["ssh_url"] = repoURL
	repo["url"] = repoURL
	// The push happens now, as GitHub would say: the fixture's 2019
	// pushed_at would be past the server's webhook window.
	repo["pushed_at"] = time.Now().Unix()
	out, _ := json.Marshal(p)
	return out
}

type webhookAnswer struct {
	Status     int
	Message    string `json:"message"`
	Deployment string `json:"deployment"`
}

// sendPush sends a push delivery signed with secret to the shared
// webhook URL.
func (s *serverProc) sendPush(t *testing.T, secret, delivery string, body []byte) webhookAnswer {
	t.Helper()
	return s.sendPushTo(t, s.URL+"/webhooks/github", secret, delivery, body)
}

// sendPushTo sends a push delivery signed with secret to url.
func (s *serverProc) sendPushTo(t *testing.T, url, secret, delivery string, body []byte) webhookAnswer {
	t.Helper()
	return s.sendEvent(t, url, "push", secret, delivery, body)
}

// sendEvent sends a delivery of event signed with secret to url.
func (s *serverProc) sendEvent(t *testing.T, url, event, secret, delivery string, body []byte) webhookAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", github.Sign(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST webhook: %v", err)
	}
	defer resp.Body.Close()
	var a webhookAnswer
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("webhook answer is not JSON: %s", raw)
	}
	a.Status = resp.StatusCode
	return a
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// imageConfig fetches the manifest of ref's tag from the registry and then
// its config blob, returning the manifest digest and the image labels.
func imageConfig(t *testing.T, host, repo, tag string) (string, map[string]string) {
	t.Helper()
	raw, digest := manifest(t, host, repo, tag)
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Config.Digest == "" {
		t.Fatalf("manifest without config: %v %s", err, raw)
	}
	resp2 := registryGet(t, host, fmt.Sprintf("/v2/%s/blobs/%s", repo, m.Config.Digest), "")
	defer resp2.Body.Close()
	var c struct {
		Config struct {
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if err := json.NewDecoder(resp2.Body).Decode(&c); err != nil {
		t.Fatalf("decode image config: %v", err)
	}
	return digest, c.Config.Labels
}

// manifest fetches the manifest of repo:tag from the registry at host and
// returns it with its digest.
func manifest(t *testing.T, host, repo, tag string) ([]byte, string) {
	t.Helper()
	resp := registryGet(t, host, fmt.Sprintf("/v2/%s/manifests/%s", repo, tag), "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET manifest %s:%s = %d %s", repo, tag, resp.StatusCode, raw)
	}
	return raw, resp.Header.Get("Docker-Content-Digest")
}

func TestPushBecomesImage(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)

	dir, sha := testenv.GitRepo(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo hello-from-build > /hello.txt\nCOPY app.txt /app.txt\nCMD [\"cat\", \"/app.txt\"]\n",
		"app.txt":    "version 1\n",
	})
	repoURL := "file://" + dir
	added := s.addProject(t, "app", repoURL, "--webhook-secret", "s3cret")
	m := regexp.MustCompile(`webhook URL: +(` + regexp.QuoteMeta(s.URL+"/webhooks/github/") + `[0-9a-f]{32})\n`).FindStringSubmatch(added)
	if m == nil {
		t.Fatalf("project add printed no per-project webhook URL:\n%s", added)
	}
	hookURL := m[1]

	// The push goes to the project's own URL, its redelivery below to the
	// shared one: both reach the same deployment.
	start := time.Now()
	a := s.sendPushTo(t, hookURL, "s3cret", "delivery-1", pushPayload(t, repoURL, "main", strings.Repeat("0", 40), sha))
	if a.Status != http.StatusAccepted || a.Deployment == "" {
		t.Fatalf("push webhook = %d %q (deployment %q), want 202 with a deployment id", a.Status, a.Message, a.Deployment)
	}
	t.Logf("webhook answered in %s", time.Since(start))

	// A redelivery of the same delivery creates nothing new.
	again := s.sendPush(t, "s3cret", "delivery-1", pushPayload(t, repoURL, "main", strings.Repeat("0", 40), sha))
	if again.Deployment != a.Deployment {
		t.Errorf("redelivery answered deployment %q, want the original %q", again.Deployment, a.Deployment)
	}

	d := s.waitFinished(t, "app", a.Deployment, 5*time.Minute)
	if d.Status != "succeeded" {
		logs, _ := s.cli(t, "logs", d.ID)
		t.Fatalf("deployment %s = %s (%s at %s), want succeeded\nlogs:\n%s\nagent log:\n%s", d.ID, d.Status, d.Error, d.FailedStep, logs, s.agentLog("app"))
	}
	wantImage := s.Host + "/app:" + sha
	if d.Image != wantImage || d.Commit != sha || !strings.HasPrefix(d.Digest, "sha256:") || d.FinishedAt == nil {
		t.Errorf("deployment = %+v, want image %s, commit %s, a sha256 digest and a finish time", d, wantImage, sha)
	}
	if n := len(s.deployments(t, "app")); n != 1 {
		t.Errorf("%d deployments after a push and its redelivery, want 1", n)
	}

	digest, labels := imageConfig(t, s.Host, "app", sha)
	if digest != d.Digest {
		t.Errorf("registry digest of app:%s = %s, deployment recorded %s", sha, digest, d.Digest)
	}
	for k, want := range map[string]string{"slipway.project": "app", "slipway.commit": sha, "slipway.deployment": d.ID} {
		if labels[k] != want {
			t.Errorf("image label %s = %q, want %q (labels %v)", k, labels[k], want, labels)
		}
	}
	if resp := registryGet(t, s.Host, "/v2/app/manifests/latest", ""); resp.StatusCode != http.StatusNotFound {
		resp.Body.Close()
		t.Errorf("GET app:latest = %s, want 404: Slipway must never tag latest", resp.Status)
	} else {
		resp.Body.Close()
	}
	if agentBin := filepath.Join(filepath.Dir(slipwayBin), "slipway-agent"); !strings.Contains(s.out.String(), "binary="+agentBin) {
		t.Errorf("the server did not run %s on the machine:\n%s", agentBin, s.out)
	}
	detail, hasRun := s.detail(t, d.ID), false
	for _, st := range detail.Steps {
		hasRun = hasRun || strings.Contains(st.Instruction, "RUN echo hello-from-build")
	}
	if !hasRun {
		t.Errorf("slipway deployment %s --json lacks the RUN step: %+v", d.ID, detail.Steps)
	}
	logs, code := s.cli(t, "logs", d.ID)
	if code != 0 || !regexp.MustCompile(`STEP 2/\d+: RUN echo hello-from-build`).MatchString(logs) {
		t.Errorf("slipway logs %s: exit %d, want the build output:\n%s", d.ID, code, logs)
	}

	// Deploying the same commit again reuses the image of the identical
	// build: no Dockerfile step runs, and the image carries the new
	// deployment's labels.
	out, code := s.cli(t, "deploy", "app", "--commit", sha, "--wait")
	if code != 0 {
		t.Fatalf("redeploy of the same commit: exit %d:\n%s", code, out)
	}
	again2 := s.deployments(t, "app")[0]
	relogs, _ := s.cli(t, "logs", again2.ID)
	if !strings.Contains(relogs, "reusing its image without building") || strings.Contains(relogs, "hello-from-build") {
		t.Errorf("redeploy of an identical commit ran the build:\n%s", relogs)
	}
	if _, labels := imageConfig(t, s.Host, "app", sha); labels["slipway.deployment"] != again2.ID {
		t.Errorf("reused image's slipway.deployment label = %q, want the new deployment %s", labels["slipway.deployment"], again2.ID)
	}
	// The Dockerfile's last step (CMD) is applied in the registry, to the
	// built image and to the reused one alike.
	if cf := registryConfig(t, s.Host+"/app:"+sha); !slices.Equal(cf.Config.Cmd, []string{"cat", "/app.txt"}) {
		t.Errorf("reused image's command = %q, want the Dockerfile's [cat /app.txt]", cf.Config.Cmd)
	}

	// A failing RUN ends failed, with the step and its output.
	sha2 := testenv.Commit(t, dir, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo about-to-fail && exit 3\n",
	})
	a2 := s.sendPush(t, "s3cret", "delivery-2", pushPayload(t, repoURL, "main", sha, sha2))
	if a2.Status != http.StatusAccepted {
		t.Fatalf("second push = %d %q", a2.Status, a2.Message)
	}
	d2 := s.waitFinished(t, "app", a2.Deployment, 5*time.Minute)
	if d2.Status != "failed" || !strings.Contains(d2.FailedStep, "RUN echo about-to-fail") || !strings.Contains(d2.Error, "about-to-fail") {
		t.Errorf("failing build = %s, step %q, error %q; want failed at the RUN step with its output", d2.Status, d2.FailedStep, d2.Error)
	}
	table, _ := s.cli(t, "deployments", "app")
	if !strings.Contains(table, "failed") || !strings.Contains(table, "RUN echo about-to-fail") {
		t.Errorf("slipway deployments does not show the failure and its step:\n%s", table)
	}
	logs2, _ := s.cli(t, "logs", d2.ID)
	if !strings.Contains(logs2, "about-to-fail") {
		t.Errorf("logs of the failed build lack the RUN output:\n%s", logs2)
	}

	// The machine is recorded; once its agent exits it is asleep.
	s.waitAsleep(t, "app")
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, code := s.cli(t, "machines", "--json")
		var ms []struct {
			Project, State, Provider string
			Error                    *string
			LastWokeAt               *time.Time
			VolumeBytes              *int64
		}
		if err := json.Unmarshal([]byte(out), &ms); code != 0 || err != nil {
			t.Fatalf("slipway machines --json: exit %d, %v:\n%s", code, err, out)
		}
		if len(ms) == 1 && ms[0].Project == "app" && ms[0].State == "asleep" {
			if ms[0].Provider != "process" || ms[0].Error != nil || ms[0].LastWokeAt == nil || ms[0].VolumeBytes == nil {
				t.Errorf("machine of app = %+v", ms[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slipway machines never showed app asleep:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestServerRestartMidBuild(t *testing.T) {
	dataDir := t.TempDir()
	addr := freeAddr(t)
	s := startServer(t, dataDir, addr)
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	dir, sha := testenv.GitRepo(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo sleeping && sleep 6 && echo woke\nCOPY f.txt /f.txt\n",
		"f.txt":      "x\n",
	})
	s.addProject(t, "slow", dir)
	out, code := s.cli(t, "deploy", "slow", "--commit", sha)
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, out)
	}
	ds := s.deployments(t, "slow")
	if len(ds) != 1 || !strings.Contains(out, ds[0].ID) {
		t.Fatalf("want one deployment whose id `slipway deploy` printed, got %v and:\n%s", ds, out)
	}
	id := ds[0].ID

	// Wait until the RUN sleep step is running, then kill -9 the server.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		logs, _ := s.cli(t, "logs", id)
		if strings.Contains(logs, "sleeping") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the build never reached its RUN sleep step\nserver:\n%s\nagent:\n%s", s.out, s.agentLog("slow"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.kill9(t)

	s2 := startServer(t, dataDir, addr)
	d := s2.waitFinished(t, "slow", id, 5*time.Minute)
	if d.Status != "succeeded" {
		logs, _ := s2.cli(t, "logs", id)
		t.Fatalf("after a restart mid-build the deployment = %s (%s at %s), want succeeded\nlogs:\n%s\nagent:\n%s", d.Status, d.Error, d.FailedStep, logs, s2.agentLog("slow"))
	}
	s2.checkLogComplete(t, d)
	logs, _ := s2.cli(t, "logs", id)
	if !strings.Contains(logs, "woke") {
		t.Errorf("log after restart lacks the end of the RUN step:\n%s", logs)
	}
}

// stopAgents kills the agents the server started under dataDir: machines
// outlive the server by design, but not the test.
func stopAgents(t *testing.T, dataDir string) {
	pids, _ := filepath.Glob(filepath.Join(dataDir, "volumes", "*", "agent.pid"))
	for _, f := range pids {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	killWorkingIn(dataDir)
}

// killWorkingIn kills every process still working in dir (its command
// line, working directory or root directory is in it): buildah runs in its
// own process group, and its build containers in theirs, so killing an
// agent leaves them writing to the volume, which the test is about to
// remove. It waits up to 15 s for them to be gone.
func killWorkingIn(dir string) {
	inDir := func(p string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		found := false
		procs, _ := os.ReadDir("/proc")
		for _, e := range procs {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
			root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
			if strings.Contains(string(cmdline), dir+"/") || inDir(cwd) || inDir(root) {
				if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(stat), ") Z ") {
					continue
				}
				found = true
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if !found {
			return
		}
	}
}

// unmountAll lazily unmounts what buildah left mounted under dir (its
// overlay storage), so the test's temporary directory can be removed.
func unmountAll(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

// waitAsleep waits until the project's agent has exited (its machine
// sleeps).
func (s *serverProc) waitAsleep(t *testing.T, project string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile(filepath.Join(s.DataDir, "volumes", project, "agent.pid"))
		if err != nil {
			return
		}
		var pid int
		fmt.Sscan(string(b), &pid)
		if pid <= 0 || syscall.Kill(pid, 0) != nil {
			return
		}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent of %s (pid %d) did not exit within a minute of its last build", project, pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type deploymentDetail struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Digest  string `json:"digest"`
	Trigger string `json:"trigger"`
	// LogPruned is true once log retention deleted the log.
	LogPruned bool `json:"logPruned"`
	Steps     []struct {
		Instruction string `json:"instruction"`
		Cached      bool   `json:"cached"`
		InRegistry  bool   `json:"inRegistry"`
	} `json:"steps"`
}

func (s *serverProc) deployWait(t *testing.T, project, commit string) deploymentDetail {
	t.Helper()
	out, code := s.cli(t, "deploy", project, "--commit", commit, "--wait")
	if code != 0 {
		t.Fatalf("deploy %s %s: exit %d:\n%s\nagent:\n%s", project, commit, code, out, s.agentLog(project))
	}
	id := s.deployments(t, project)[0].ID
	return s.detail(t, id)
}

func (s *serverProc) detail(t *testing.T, id string) deploymentDetail {
	t.Helper()
	out, code := s.cli(t, "deployment", id, "--json")
	if code != 0 {
		t.Fatalf("slipway deployment %s --json: exit %d: %s", id, code, out)
	}
	var d deploymentDetail
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("slipway deployment --json: %v\n%s", err, out)
	}
	return d
}

// The machine's volume is the cache: an unchanged commit hits the layer
// cache on every step, a cache mount keeps its contents across builds, and
// a deleted volume makes the next build cold but still correct.
func TestCacheAcrossDeployments(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0", "--no-reuse")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	dockerfile := "FROM " + base + "\n" +
		"COPY stamp.txt /stamp.txt\n" +
		"RUN --mount=type=cache,target=/cache cat /stamp.txt >> /cache/seen && echo \"cache holds $(wc -l < /cache/seen) builds\"\n" +
		"COPY app.txt /app.txt\n"
	dir, sha1 := testenv.GitRepo(t, map[string]string{"Dockerfile": dockerfile, "stamp.txt": "one\n", "app.txt": "app\n"})
	s.addProject(t, "cache", dir)
	logsOf := func(id string) string { l, _ := s.cli(t, "logs", id); return l }

	first := s.deployWait(t, "cache", sha1)
	if l := logsOf(first.ID); !strings.Contains(l, "cache holds 1 builds") {
		t.Fatalf("first build output:\n%s", l)
	}
	s.waitAsleep(t, "cache")

	second := s.deployWait(t, "cache", sha1)
	if len(second.Steps) < 4 {
		t.Fatalf("second build steps = %+v, want the Dockerfile's 4", second.Steps)
	}
	for _, st := range second.Steps[1:] {
		if !st.Cached {
			t.Errorf("second build of an unchanged commit: step %q not cached", st.Instruction)
		}
	}

	sha2 := testenv.Commit(t, dir, map[string]string{"stamp.txt": "two\n"})
	third := s.deployWait(t, "cache", sha2)
	if l := logsOf(third.ID); !strings.Contains(l, "cache holds 2 builds") {
		t.Errorf("the cache mount did not keep its contents across builds:\n%s", l)
	}
	s.waitAsleep(t, "cache")

	// Losing the volume costs time, never correctness.
	vol := filepath.Join(s.DataDir, "volumes", "cache")
	unmountAll(t, vol)
	if err := os.RemoveAll(vol); err != nil {
		t.Fatalf("delete the volume: %v", err)
	}
	fourth := s.deployWait(t, "cache", sha2)
	if fourth.Status != "succeeded" {
		t.Fatalf("build after the volume was deleted = %s", fourth.Status)
	}
	for _, st := range fourth.Steps[1:] {
		if st.Cached {
			t.Errorf("build on a new volume: step %q cached", st.Instruction)
		}
	}
	if l := logsOf(fourth.ID); !strings.Contains(l, "cache holds 1 builds") {
		t.Errorf("build on a new volume did not start with an empty cache mount:\n%s", l)
	}

	// A rollback deploys the first build's image again without building.
	out, code := s.cli(t, "rollback", "cache", "--to", first.ID, "--wait")
	if code != 0 {
		t.Fatalf("rollback: exit %d:\n%s", code, out)
	}
	rb := s.detail(t, s.deployments(t, "cache")[0].ID)
	if rb.ID == fourth.ID || rb.Trigger != "rollback" || rb.Digest != first.Digest || len(rb.Steps) != 0 {
		t.Errorf("rollback deployment = %+v, want a new rollback deployment of digest %s with no build steps", rb, first.Digest)
	}
	if l := logsOf(rb.ID); strings.Contains(l, "STEP") {
		t.Errorf("the rollback ran a build:\n%s", l)
	}
	if out, code := s.cli(t, "rollback", "cache", "--to", "d-nonexistent"); code == 0 || !strings.Contains(out, "no deployment") {
		t.Errorf("rollback to an unknown deployment: exit %d, %q; want an error naming the problem", code, out)
	}
}

// waitLog waits until deployment id's log contains want.
func (s *serverProc) waitLog(t *testing.T, project, id, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if l, _ := s.cli(t, "logs", id); strings.Contains(l, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log of %s never showed %q\nagent:\n%s", id, want, s.agentLog(project))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// builderBuilds counts the build processes of the builder (buildah)
// working on dir's volumes.
func builderBuilds(dataDir string) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmd := strings.Split(string(b), "\x00")
		if len(cmd) > 0 && filepath.Base(cmd[0]) == "buildah" && slices.Contains(cmd, "build") && strings.Contains(string(b), dataDir) {
			n++
		}
	}
	return n
}

// A newer push to the branch supersedes the running build (its buildah is
// killed, it pushes nothing) and `slipway cancel` stops a build.
func TestSupersedeAndCancel(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	slow := func(v string) map[string]string {
		return map[string]string{"Dockerfile": "FROM " + base + "\nCOPY v.txt /v.txt\nRUN echo started-" + v + " && sleep 30\n", "v.txt": v}
	}
	dir, sha1 := testenv.GitRepo(t, slow("one"))
	repoURL := "file://" + dir
	s.addProject(t, "race", repoURL, "--webhook-secret", "k")
	a1 := s.sendPush(t, "k", "race-1", pushPayload(t, repoURL, "main", strings.Repeat("0", 40), sha1))
	s.waitLog(t, "race", a1.Deployment, "started-one")

	sha2 := testenv.Commit(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nCOPY v.txt /v.txt\n", "v.txt": "two"})
	pushed := time.Now()
	a2 := s.sendPush(t, "k", "race-2", pushPayload(t, repoURL, "main", sha1, sha2))
	d1 := s.waitFinished(t, "race", a1.Deployment, time.Minute)
	t.Logf("superseded %s after %s", d1.ID, time.Since(pushed))
	if d1.Status != "superseded" || !strings.Contains(d1.Error, a2.Deployment) {
		t.Errorf("first deployment = %s (%q), want superseded by %s", d1.Status, d1.Error, a2.Deployment)
	}
	d2 := s.waitFinished(t, "race", a2.Deployment, 3*time.Minute)
	if d2.Status != "succeeded" {
		t.Fatalf("second deployment = %s %s", d2.Status, d2.Error)
	}
	if d1.Digest != "" {
		t.Errorf("the superseded deployment recorded digest %s", d1.Digest)
	}
	if n := builderBuilds(s.DataDir); n != 0 {
		t.Errorf("%d buildah build processes still running after the superseded build ended", n)
	}

	sha3 := testenv.Commit(t, dir, slow("three"))
	out, code := s.cli(t, "deploy", "race", "--commit", sha3)
	if code != 0 {
		t.Fatalf("deploy: %d %s", code, out)
	}
	id3 := strings.TrimSpace(out)
	s.waitLog(t, "race", id3, "started-three")
	if out, code := s.cli(t, "cancel", id3, "--wait"); code != 0 {
		t.Fatalf("slipway cancel --wait: exit %d\n%s", code, out)
	}
	if d := s.detail(t, id3); d.Status != "cancelled" || d.Digest != "" {
		t.Errorf("cancelled deployment = %+v", d)
	}
	deadline := time.Now().Add(30 * time.Second)
	for builderBuilds(s.DataDir) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("buildah build still running 30s after the cancel")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, code := s.cli(t, "cancel", id3); code == 0 || !strings.Contains(out, "already ended") {
		t.Errorf("cancelling an ended deployment: exit %d %q, want an error", code, out)
	}
}

// descendants lists pid and every process below it.
func descendants(pid int) []int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		var self, ppid int
		fmt.Sscan(filepath.Base(filepath.Dir(st)), &self)
		if len(f) > 1 {
			fmt.Sscan(f[1], &ppid)
		}
		children[ppid] = append(children[ppid], self)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// killMachine kills project's machine the hard way, as a crash would: its
// agent and every process below it, with SIGKILL. It returns how many
// processes it killed.
func killMachine(t *testing.T, s *serverProc, project string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.DataDir, "volumes", project, "agent.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 1 {
		t.Fatalf("agent.pid of %s holds %q, not a process id", project, b)
	}
	killed := descendants(pid)
	for _, p := range killed {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	return len(killed)
}

// A machine that dies mid-build (the agent and everything it started,
// killed with SIGKILL) is detected and restarted, and the build is retried
// and succeeds.
func TestMachineDiesMidBuild(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	dir, sha := testenv.GitRepo(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo run-started && sleep 8 && echo run-done\n",
	})
	s.addProject(t, "fragile", dir)
	out, code := s.cli(t, "deploy", "fragile", "--commit", sha)
	if code != 0 {
		t.Fatalf("deploy: %d %s", code, out)
	}
	id := strings.TrimSpace(out)
	s.waitLog(t, "fragile", id, "run-started")
	t.Logf("killed the machine: %d processes", killMachine(t, s, "fragile"))
	d := s.waitFinished(t, "fragile", id, 4*time.Minute)
	if d.Status != "succeeded" {
		logs, _ := s.cli(t, "logs", id)
		t.Fatalf("deployment after the machine died = %s (%s at %s), want succeeded\nlogs:\n%s\nagent:\n%s", d.Status, d.Error, d.FailedStep, logs, s.agentLog("fragile"))
	}
	if logs, _ := s.cli(t, "logs", id); !strings.Contains(logs, "run-done") {
		t.Errorf("the retried build's log lacks the end of the RUN step:\n%s", logs)
	}
}

// TestDemo runs the quick start's server (--demo) in the default builder
// isolation (rootless on a host scripts/setup prepared): the demo project's first deployment must succeed, and again
// after a restart on the same data directory (which makes the data
// directory private again).
func TestDemo(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "127.0.0.1:0", "--demo", "--apps-listen", "127.0.0.1:0")
	// scripts/setup makes this host fit for rootless builders, so the
	// default (auto) must pick them: the mode the quick start runs in.
	if out := s.waitOutput(t, regexp.MustCompile(`builders: `)); !regexp.MustCompile(`builders: rootless buildah 1\.\d+\.\d+ \(`).MatchString(out) || !strings.Contains(out, "probed now: no verdict kept") {
		t.Fatalf("the server did not choose rootless buildah builders, or not after probing buildah:\n%s", out)
	}
	waitDemo := func(s *serverProc, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for {
			ds := s.deployments(t, "demo")
			if len(ds) >= n {
				d := s.waitFinished(t, "demo", ds[0].ID, 5*time.Minute)
				if d.Status != "succeeded" {
					t.Fatalf("demo deployment %s = %s: %s\nserver output:\n%s", d.ID, d.Status, d.Error, s.out.String())
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no demo deployment after 5 minutes\nserver output:\n%s", s.out.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitDemo(s, 1)
	demoServes(t, s)
	s.stop(t)
	s = startServer(t, dataDir, "127.0.0.1:0", "--demo", "--apps-listen", "127.0.0.1:0")
	// Nothing the probe depends on changed: its verdict is reused.
	if out := s.waitOutput(t, regexp.MustCompile(`builders: `)); !regexp.MustCompile(`builders: rootless buildah .*, because this host can run it \(the builder's verdict cached at `).MatchString(out) {
		t.Errorf("the restarted server did not reuse the kept rootless verdict:\n%s", out)
	}
	out, code := s.cli(t, "deploy", "demo", "--wait")
	if code != 0 {
		t.Fatalf("slipway deploy demo --wait after a restart: exit %d\n%s\nserver output:\n%s", code, out, s.out.String())
	}
	waitDemo(s, 2)
	demoServes(t, s)
}

// demoServes checks that the server printed the demo app's URL and that
// the app answers there (through the gateway, at demo.localhost).
func demoServes(t *testing.T, s *serverProc) {
	t.Helper()
	s.waitOutput(t, regexp.MustCompile(`The demo app answers at http://demo\.localhost:\d+ `))
	code, body, _ := appGet(t, s.appsAddr(t), "demo.localhost")
	if code != http.StatusOK || !strings.Contains(body, "Hello from the Slipway demo") {
		t.Errorf("the demo app at demo.localhost: %d %q, want 200 with its page\nserver:\n%s", code, body, s.out)
	}
}
