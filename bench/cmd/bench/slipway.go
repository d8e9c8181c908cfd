package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/client"
	"github.com/slipway-ci/slipway/github"
)

// slipwayServer is a running `slipway server` and the way to talk to it:
// signed webhooks, the CLI, and the GraphQL API for log line times.
type slipwayServer struct {
	bin      string
	dataDir  string
	repoRoot string
	URL      string
	Host     string // host:port, also the registry's
	cmd      *exec.Cmd
	done     chan struct{}
	api      *graphQL
	tokenMu  sync.Mutex
	token    string // the admin API token, once read
	pushes   int
}

// buildSlipway compiles the slipway binary to out, and the small agent
// binary next to it, the way `make build` does: the server's machines run
// slipway-agent when it lies beside slipway (it wakes faster than the full
// binary).
func buildSlipway(ctx context.Context, repoRoot, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	for _, b := range []struct{ pkg, out string }{
		{"./cmd/slipway", out},
		{"./cmd/slipway-agent", filepath.Join(filepath.Dir(out), "slipway-agent")},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg)
		cmd.Dir = repoRoot
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", b.pkg, err, o)
		}
	}
	return nil
}

var runningRE = regexp.MustCompile(`Slipway is running: open (http://\S+)`)

// startSlipway runs `slipway server` on a free loopback port and waits for
// its "Slipway is running" line. Its output goes to logFile.
func startSlipway(ctx context.Context, bin, dataDir, repoRoot string, logFile io.Writer) (*slipwayServer, error) {
	cmd := exec.Command(bin, "server", "--data-dir", dataDir, "--listen", "127.0.0.1:0")
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(logFile, pw)
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start slipway server: %w", err)
	}
	s := &slipwayServer{bin: bin, dataDir: dataDir, repoRoot: repoRoot, cmd: cmd, done: make(chan struct{})}
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
	select {
	case u := <-urlc:
		s.URL = u
		s.Host = strings.TrimPrefix(u, "http://")
		s.api = &graphQL{url: u + "/graphql", token: s.adminToken}
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("slipway server exited before serving (see server.log)")
	case <-time.After(3 * time.Minute):
		s.stop()
		return nil, fmt.Errorf("slipway server did not start within 3 minutes (see server.log)")
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

// stop stops the server and the agents it started (machines outlive the
// server by design, but not the benchmark).
func (s *slipwayServer) stop() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	pids, _ := filepath.Glob(filepath.Join(s.dataDir, "volumes", "*", "agent.pid"))
	for _, f := range pids {
		if pid, ok := readPID(f); ok && alive(pid) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

// cli runs a slipway client command against the server.
func (s *slipwayServer) cli(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.bin, append([]string{"--server", s.URL}, args...)...)
	if t := s.adminToken(); t != "" {
		cmd.Env = append(os.Environ(), "SLIPWAY_TOKEN="+t)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("slipway %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()+out.String()))
	}
	return out.String(), nil
}

// adminToken is the admin API token a server that requires tokens writes
// to its data directory, or "" for a server that does not.
func (s *slipwayServer) adminToken() string {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	if s.token == "" {
		if b, err := os.ReadFile(filepath.Join(s.dataDir, "admin-token")); err == nil {
			s.token = strings.TrimSpace(string(b))
		}
	}
	return s.token
}

// logInRegistry logs the harness's builders in to the server's registry,
// which asks every client for a credential: an auth file with the admin
// API token (which may push and pull every repository) in work, named by
// REGISTRY_AUTH_FILE, which every builder command inherits. The harness
// pushes the base images and the local systems' images there.
func (s *slipwayServer) logInRegistry(work string) error {
	token := s.adminToken()
	if token == "" {
		return fmt.Errorf("the server wrote no admin token to %s", s.dataDir)
	}
	path := filepath.Join(work, "registry-auth.json")
	if err := buildah.WriteAuthFile(path, s.Host, "bench", token); err != nil {
		return err
	}
	return os.Setenv("REGISTRY_AUTH_FILE", path)
}

// addProject adds a project for the repository repoDir, with buildArgs as
// its build arguments.
func (s *slipwayServer) addProject(ctx context.Context, name, repoDir, secret string, buildArgs map[string]string) error {
	args := []string{"project", "add", name, "--repo", "file://" + repoDir, "--webhook-secret", secret}
	for _, k := range slices.Sorted(maps.Keys(buildArgs)) {
		args = append(args, "--build-arg", k+"="+buildArgs[k])
	}
	_, err := s.cli(ctx, args...)
	return err
}

func readPID(file string) (int, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return !errors.Is(err, syscall.ESRCH)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// waitAsleep waits until the project's agent has exited (its machine
// sleeps), so the next push has to wake it.
func (s *slipwayServer) waitAsleep(ctx context.Context, project string, within time.Duration) error {
	pidFile := filepath.Join(s.dataDir, "volumes", project, "agent.pid")
	deadline := time.Now().Add(within)
	for {
		pid, ok := readPID(pidFile)
		if !ok || !alive(pid) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the machine of %s (agent pid %d) is still awake after %s", project, pid, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pushPayload is GitHub's push fixture rewritten for the repo and commit.
func (s *slipwayServer) pushPayload(repoURL, before, after string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.repoRoot, "github", "testdata", "push.payload.json"))
	if err != nil {
		return nil, fmt.Errorf("read push fixture: %w", err)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	p["ref"] = "refs/heads/main"
	p["before"] = before
	p["after"] = after
	p["deleted"] = false
	p["created"] = false
	repo, ok := p["repository"].(map[string]any)
	if !ok {
		return nil, errors.New("push fixture has no repository object")
	}
	for _, k := range []string{"clone_url", "html_url", "git_url", "ssh_url", "url"} {
		repo[k] = repoURL
	}
	return json.Marshal(p)
}

// deploy sends a signed push webhook for sha and waits for the deployment
// to succeed. The machine must be asleep first.
func (s *slipwayServer) deploy(ctx context.Context, project, repoDir, secret, before, sha string, timeout time.Duration) (sample, error) {
	if err := s.waitAsleep(ctx, project, 2*time.Minute); err != nil {
		return sample{}, err
	}
	body, err := s.pushPayload("file://"+repoDir, before, sha)
	if err != nil {
		return sample{}, err
	}
	cpu0 := procCPU(s.cmd.Process.Pid)
	start := time.Now()
	id, answered, err := s.postPush(ctx, secret, body)
	if err != nil {
		return sample{}, err
	}
	d, err := s.waitEnded(ctx, id, start.Add(timeout), timeout)
	if err != nil {
		return sample{}, err
	}
	end := time.Now()
	cpu1 := procCPU(s.cmd.Process.Pid)
	if d.Status != "succeeded" {
		logs, _ := s.cli(ctx, "logs", d.ID)
		return sample{}, fmt.Errorf("deployment %s %s at %q: %s\nlogs (tail):\n%s", d.ID, d.Status, d.FailedStep, d.Error, tailLines(logs, 30))
	}

	smp := sample{System: "slipway", Commit: sha, TotalMs: ms(end.Sub(start)), PhasesMs: map[string]int64{"webhook": ms(answered.Sub(start))},
		start: start, deployment: d.ID}
	timings, steps, err := s.cliDeployment(ctx, project, d.ID)
	if err != nil {
		return sample{}, err
	}
	var sum int64
	for k, v := range timings {
		smp.PhasesMs[k] = v
		if k != "total" {
			sum += v
		}
	}
	if total, ok := timings["total"]; ok {
		// Between the phases: workflow and task scheduling, the agent
		// picking up the child workflow.
		smp.PhasesMs["between"] = total - sum
	}
	smp.Steps = steps
	if cpu0 >= 0 && cpu1 >= cpu0 {
		// CPU the server process (Temporal, NATS, the store, the archiver
		// and indexer) spent while the deployment ran: on 2 cores it
		// competes with the build.
		smp.PhasesMs["serverCPU"] = ms(cpu1 - cpu0)
	}

	// The log lines carry the agent's clock: webhook POST → "building"
	// (the agent about to run podman build) is the orchestration overhead.
	lines, err := s.logs(ctx, d.ID)
	if err != nil {
		return sample{}, err
	}
	smp.lines = lines
	stepsFromLog(&smp, lines, start)
	return smp, nil
}

// postPush sends the push webhook body, signed with secret, and returns
// the deployment it started and when the answer was read.
func (s *slipwayServer) postPush(ctx context.Context, secret string, body []byte) (string, time.Time, error) {
	s.pushes++
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/webhooks/github", bytes.NewReader(body))
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), s.pushes))
	req.Header.Set("X-Hub-Signature-256", github.Sign(secret, body))

	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("POST webhook: %w", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	answered := time.Now()
	var a struct {
		Message    string `json:"message"`
		Deployment string `json:"deployment"`
	}
	if err := json.Unmarshal(raw, &a); err != nil || resp.StatusCode != http.StatusAccepted || a.Deployment == "" {
		return "", time.Time{}, fmt.Errorf("push webhook answered %d %s, want 202 with a deployment", resp.StatusCode, raw)
	}
	return a.Deployment, answered, nil
}

// waitEnded waits for deployment id to end, until deadline.
func (s *slipwayServer) waitEnded(ctx context.Context, id string, deadline time.Time, timeout time.Duration) (deploymentStatus, error) {
	// Wait for the end on the deploymentUpdated subscription, as `slipway
	// deploy --wait` does, rather than polling: polling every 50 ms cost
	// the server CPU that the build competes with on 2 cores. Should the
	// subscription fail (a server without it), fall back to polling.
	wctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	ended := make(chan error, 1)
	go func() {
		ended <- client.New(s.URL, nil).WithToken(s.adminToken()).FollowDeployment(wctx, id, func(*slipway.Deployment) error { return nil })
	}()
	interval := 2 * time.Second
	var d deploymentStatus
	var err error
	for {
		select {
		case <-ctx.Done():
			return deploymentStatus{}, ctx.Err()
		case err := <-ended:
			if err != nil {
				progress("following deployment %s: %v; polling instead", id, err)
				interval = 50 * time.Millisecond
			}
			ended = nil
		case <-time.After(interval):
		}
		d, err = s.api.deployment(ctx, id)
		if err != nil {
			return deploymentStatus{}, err
		}
		if d.terminal() {
			break
		}
		if time.Now().After(deadline) {
			return deploymentStatus{}, fmt.Errorf("deployment %s still %s after %s", d.ID, d.Status, timeout)
		}
	}
	return d, nil
}

// stepsFromLog times the steps of smp, and its phase toBuilding, from the
// deployment's log lines.
func stepsFromLog(smp *sample, lines []logLine, start time.Time) {
	// The steps are timed from the log lines, the same way as the other
	// systems' (podman's output with its arrival time), so that the tables
	// compare like with like; the CLI's steps are the fallback. The last
	// step ends with podman's last output line: what the agent does after
	// podman (labelling the image) is outside the steps.
	var sp stepParser
	var last time.Time
	inBuild := false
	for _, l := range lines {
		switch {
		case isBuildStart(l.Text):
			if _, ok := smp.PhasesMs["toBuilding"]; !ok {
				smp.PhasesMs["toBuilding"] = ms(l.Time.Sub(start))
			}
			inBuild = true
		case strings.HasPrefix(l.Text, "built ") || strings.HasPrefix(l.Text, "pushing "):
			if inBuild {
				sp.finish(last)
			}
			inBuild = false
		case inBuild:
			sp.line(l.Time, l.Text)
			last = l.Time
		}
	}
	// A build whose stages started from the recorded images of unchanged
	// steps ran a rewritten Dockerfile: its log numbers podman's steps of
	// that file, the CLI's steps those of the Dockerfile as written (the
	// same podman timings, and the steps it did not run shown cached).
	if len(sp.steps) > 0 && !slices.ContainsFunc(lines, func(l logLine) bool { return strings.HasPrefix(l.Text, "reusing the images of ") }) {
		smp.Steps = sp.steps
	}
}

// cliDeployment reads one deployment's timings (and steps, where the CLI
// prints them) from `slipway deployments NAME --json`.
func (s *slipwayServer) cliDeployment(ctx context.Context, project, id string) (map[string]int64, []step, error) {
	out, err := s.cli(ctx, "deployments", project, "--json")
	if err != nil {
		return nil, nil, err
	}
	var ds []struct {
		ID      string           `json:"id"`
		Timings map[string]int64 `json:"timings"`
		Steps   []struct {
			Instruction string `json:"instruction"`
			Cached      bool   `json:"cached"`
			DurationMs  int64  `json:"durationMs"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &ds); err != nil {
		return nil, nil, fmt.Errorf("slipway deployments --json: %w", err)
	}
	for _, d := range ds {
		if d.ID != id {
			continue
		}
		var steps []step
		for _, st := range d.Steps {
			steps = append(steps, step{Instruction: st.Instruction, Cached: st.Cached, DurationMs: st.DurationMs})
		}
		return d.Timings, steps, nil
	}
	return nil, nil, fmt.Errorf("slipway deployments %s --json does not list %s", project, id)
}

// logs reads a deployment's stored log lines, waiting briefly for the
// archive to catch up with the end of the build.
func (s *slipwayServer) logs(ctx context.Context, id string) ([]logLine, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var all []logLine
		for from := int64(0); ; {
			page, err := s.api.logs(ctx, id, from, 1000)
			if err != nil {
				return nil, err
			}
			all = append(all, page...)
			if len(page) < 1000 {
				break
			}
			from = page[len(page)-1].N + 1
		}
		for _, l := range all {
			if strings.HasPrefix(l.Text, "pushed ") {
				return all, nil
			}
		}
		if time.Now().After(deadline) {
			return all, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// isBuildStart tells the agent's line that starts the build phase proper:
// it is about to run podman build, or has decided to reuse an earlier
// image instead.
func isBuildStart(text string) bool {
	return strings.HasPrefix(text, "building ") || strings.HasPrefix(text, "inputs identical")
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncWriter serialises writes to a shared log file.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// procCPU is the user+system CPU time process pid has used so far (its
// threads included), or -1 if unknown.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	// After "pid (comm)": state is field 3; utime and stime are 14 and 15.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	// The kernel counts in USER_HZ, 100 on Linux.
	return time.Duration(u+st) * 10 * time.Millisecond
}
