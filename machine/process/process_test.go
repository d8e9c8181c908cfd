package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/internal/leakcheck"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/machine/process"
	"github.com/slipway-ci/slipway/sqlite"
)

// fakeAgentEnv makes the test binary behave as an agent (see fakeAgent):
// the provider runs real processes without building slipway.
const fakeAgentEnv = "SLIPWAY_TEST_FAKE_AGENT"

// fakeAgentFlagsEnv holds the fake agent's own flags (-no-ready,
// -ready-delay D): what it should do differently from a real agent.
const fakeAgentFlagsEnv = "SLIPWAY_TEST_FAKE_AGENT_FLAGS"

// exitFile is the file in the volume that tells a fake agent to exit with
// the status it holds.
const exitFile = "fake.exit"

// gotConfigFile is the file in the volume where a fake agent writes the
// configuration it read, as JSON.
const gotConfigFile = "fake.config"

func TestMain(m *testing.M) {
	if os.Getenv(fakeAgentEnv) == "1" {
		os.Exit(fakeAgent(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeAgent is `slipway agent --config FILE` as far as the provider can
// tell: it reads its configuration as the real agent does (and writes what
// it read to gotConfigFile), writes its ready file once "polling" (unless
// -no-ready), prints to its log, and exits with the status written to
// exitFile, removing its ready file first when that status is 0, as a real
// agent does on a clean exit. Started with --project and --volume instead,
// it is an agent of a server before the configuration file.
func fakeAgent(args []string) int {
	if len(args) == 0 || args[0] != "agent" {
		fmt.Fprintln(os.Stderr, "fake agent: want the agent command, got", args)
		return 2
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	config := fs.String("config", "", "")
	project := fs.String("project", "", "")
	volume := fs.String("volume", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	own := flag.NewFlagSet("fake", flag.ContinueOnError)
	noReady := own.Bool("no-ready", false, "")
	readyDelay := own.Duration("ready-delay", 0, "")
	if err := own.Parse(strings.Fields(os.Getenv(fakeAgentFlagsEnv))); err != nil {
		return 2
	}
	if *config != "" {
		c, err := builder.ReadAgentConfig(*config)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake agent:", err)
			return 2
		}
		*project, *volume = c.Project, c.VolumeDir
		b, _ := json.Marshal(c)
		if err := os.WriteFile(filepath.Join(*volume, gotConfigFile), b, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "fake agent:", err)
			return 3
		}
	}
	time.Sleep(*readyDelay)
	ready := builder.VolumeLayout(*volume).Ready
	if !*noReady {
		tmp := ready + ".tmp"
		if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "fake agent:", err)
			return 3
		}
		if err := os.Rename(tmp, ready); err != nil {
			fmt.Fprintln(os.Stderr, "fake agent:", err)
			return 3
		}
	}
	fmt.Fprintf(os.Stderr, "fake agent of %s polling\n", *project)
	for {
		b, err := os.ReadFile(filepath.Join(*volume, exitFile))
		// A file being written may still be empty: only a whole number
		// counts, or a status 1 could be read as 0 (a clean exit).
		code, convErr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && convErr == nil {
			if code == 0 {
				os.Remove(ready)
			}
			fmt.Fprintf(os.Stderr, "fake agent exiting %d\n", code)
			return code
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recorder is the real SQLite store, also keeping the sequence of states
// recorded per project.
type recorder struct {
	*sqlite.DB
	mu     sync.Mutex
	states map[string][]slipway.MachineState
}

func (r *recorder) UpsertMachine(ctx context.Context, m *slipway.Machine) error {
	r.mu.Lock()
	if s := r.states[m.Project]; len(s) == 0 || s[len(s)-1] != m.State {
		r.states[m.Project] = append(s, m.State)
	}
	r.mu.Unlock()
	return r.DB.UpsertMachine(ctx, m)
}

func (r *recorder) sequence(project string) []slipway.MachineState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states[project])
}

type env struct {
	p       *process.Provider
	rec     *recorder
	volumes string
	logs    *syncBuffer
}

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

// newEnv returns a provider whose agents are fake agents given args
// (fakeAgentFlagsEnv), recording into a fresh SQLite store with projects web and api.
func newEnv(t *testing.T, cfg process.Config, args ...string) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(filepath.Join(dir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, name := range []string{"web", "api"} {
		if err := db.CreateProject(t.Context(), &slipway.Project{Name: name, Repo: "file:///" + name}); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{rec: &recorder{DB: db, states: map[string][]slipway.MachineState{}}, volumes: filepath.Join(dir, "volumes"), logs: &syncBuffer{}}
	cfg.VolumesDir = e.volumes
	if cfg.Binary == "" {
		cfg.Binary = testBinary(t)
	}
	if cfg.Agent.TemporalHostPort == "" {
		cfg.Agent.TemporalHostPort = "127.0.0.1:7233"
	}
	cfg.Env = []string{fakeAgentEnv + "=1", fakeAgentFlagsEnv + "=" + strings.Join(args, " ")}
	cfg.Recorder = e.rec
	cfg.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.p, err = process.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, name := range []string{"web", "api"} {
			_ = e.p.Stop(context.Background(), name)
		}
		_ = e.p.Close()
		if t.Failed() {
			t.Logf("provider log:\n%s", e.logs)
		}
	})
	return e
}

func testBinary(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func (e *env) machine(t *testing.T, project string) *slipway.Machine {
	t.Helper()
	m, err := e.rec.Machine(t.Context(), project)
	if err != nil {
		t.Fatalf("Machine(%s): %v", project, err)
	}
	return m
}

// waitState waits until the project's record is in state.
func (e *env) waitState(t *testing.T, project string, state slipway.MachineState) *slipway.Machine {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m, err := e.rec.Machine(t.Context(), project)
		if err == nil && m.State == state {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine %s never became %s: %+v (%v); states %v", project, state, m, err, e.rec.sequence(project))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exit tells the project's fake agent to exit with code. The file is
// renamed into place so the agent, polling every few milliseconds, never
// reads it half-written.
func (e *env) exit(t *testing.T, project string, code int) {
	t.Helper()
	writeExitFile(t, filepath.Join(e.volumes, project), code)
}

func writeExitFile(t *testing.T, volume string, code int) {
	t.Helper()
	tmp := filepath.Join(volume, exitFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(code)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(volume, exitFile)); err != nil {
		t.Fatal(err)
	}
}

// agents lists the pids of live (non-zombie) processes running as agents
// of project on e's volumes.
func (e *env) agents(t *testing.T, project string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue
		}
		vol := filepath.Join(e.volumes, project)
		if strings.Contains(string(cmdline), "\x00agent\x00--config\x00"+builder.VolumeLayout(vol).Config+"\x00") ||
			strings.Contains(string(cmdline), "\x00agent\x00--project\x00"+project+"\x00--volume\x00"+vol+"\x00") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func wantSequence(t *testing.T, e *env, project string, want ...slipway.MachineState) {
	t.Helper()
	if got := e.rec.sequence(project); !slices.Equal(got, want) {
		t.Errorf("states of %s = %v, want %v", project, got, want)
	}
}

// The agent's whole configuration reaches it in one file on its volume:
// every field the provider is given arrives, as the agent reads it, with
// the machine's project and volume; the file is the agent's user's alone.
func TestAgentConfigFile(t *testing.T) {
	given := builder.AgentConfig{
		Version:           builder.AgentConfigVersion,
		Project:           "set by the provider",
		VolumeDir:         "/set/by/the/provider",
		TemporalHostPort:  "127.0.0.1:7233",
		TemporalNamespace: "ns",
		NATSURL:           "nats://127.0.0.1:4222",
		Registry:          "127.0.0.1:8080",
		RegistryTLSVerify: true,
		IdleTimeout:       1500 * time.Millisecond,
		StartTimeout:      2 * time.Minute,
		KeepImages:        7,
		ResetThreshold:    0.5,
		NoReuse:           true,
		Buildah:           "/opt/buildah",
		Runtime:           "/opt/slipway-runc",
		Runc:              "/opt/runc",
		Credentials:       builder.AgentCredentials{NATS: "replaced at each wake"},
	}
	if zero := testenv.ZeroFields(given); len(zero) > 0 {
		t.Fatalf("the test leaves %v unset: set every field", zero)
	}
	wake := builder.AgentCredentials{NATS: "n", Temporal: "t", Registry: "r", PayloadKey: "k"}
	issue := func(project string) (builder.AgentCredentials, error) {
		c := wake
		c.NATS += "-" + project
		return c, nil
	}
	e := newEnv(t, process.Config{Agent: given, Credentials: issue})
	if err := e.p.Start(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, "web", slipway.MachineAwake)
	vol := filepath.Join(e.volumes, "web")
	b, err := os.ReadFile(filepath.Join(vol, gotConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var got builder.AgentConfig
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := given
	want.Project, want.VolumeDir = "web", vol
	want.Credentials, _ = issue("web")
	if got != want {
		t.Errorf("the agent read\n%+v\nwant\n%+v", got, want)
	}
	st, err := os.Stat(builder.VolumeLayout(vol).Config)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || int(st.Sys().(*syscall.Stat_t).Uid) != os.Geteuid() {
		t.Errorf("configuration file mode %v, owner %d; want 0600, %d", st.Mode(), st.Sys().(*syscall.Stat_t).Uid, os.Geteuid())
	}
	e.exit(t, "web", 0)
	e.waitState(t, "web", slipway.MachineAsleep)
}

// An agent starts with a minimal environment: nothing of the server's
// but the few variables agentEnv names (a secret the server was started
// with stays with it), plus Config.Env and the isolation mode's own.
func TestAgentEnvironmentIsMinimal(t *testing.T) {
	t.Setenv("SLIPWAY_TEST_SERVER_SECRET", "marker-4f1c")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "marker-9e2a")
	t.Setenv(leakcheck.Env, "1")
	e := newEnv(t, process.Config{})
	if err := e.p.Start(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	m := e.waitState(t, "web", slipway.MachineAwake)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", m.PID))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if strings.Contains(string(b), "marker-") {
		t.Errorf("the agent's environment holds the server's secrets: %q", b)
	}
	vol := filepath.Join(e.volumes, "web")
	for k, want := range map[string]string{
		"PATH": os.Getenv("PATH"), leakcheck.Env: "1", fakeAgentEnv: "1",
		"TMPDIR": builder.VolumeLayout(vol).Tmp,
	} {
		if env[k] != want {
			t.Errorf("the agent's %s = %q, want %q", k, env[k], want)
		}
	}
	allowed := map[string]bool{"PATH": true, "HOME": true, "LANG": true, "LC_ALL": true, "LC_CTYPE": true, "TZ": true,
		leakcheck.Env: true, "GODEBUG": true, "GOCOVERDIR": true, "TMPDIR": true, fakeAgentEnv: true, fakeAgentFlagsEnv: true}
	for k := range env {
		if !allowed[k] {
			t.Errorf("the agent inherits %s", k)
		}
	}
	e.exit(t, "web", 0)
	e.waitState(t, "web", slipway.MachineAsleep)
}

func TestWakeAndSleep(t *testing.T) {
	e := newEnv(t, process.Config{})
	ctx := t.Context()
	if st, err := e.p.Status(ctx, "web"); err != nil || st != slipway.MachineAbsent {
		t.Errorf("Status before the first Start = %s, %v; want absent", st, err)
	}
	before := time.Now()
	if err := e.p.Start(ctx, "web"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	m := e.machine(t, "web")
	if m.State != slipway.MachineStarting && m.State != slipway.MachineAwake {
		t.Errorf("state right after Start = %s, want starting (or already awake)", m.State)
	}
	if m.PID <= 0 || m.LastWokeAt == nil || m.LastWokeAt.Before(before.Add(-time.Second)) || m.Provider != "process" ||
		m.VolumeDir != filepath.Join(e.volumes, "web") {
		t.Errorf("record after Start = %+v", m)
	}
	awake := e.waitState(t, "web", slipway.MachineAwake)
	if awake.LastWakeMs <= 0 || awake.LastWakeMs > 10_000 || awake.PID != m.PID {
		t.Errorf("awake record = %+v; want the wake latency measured and the same pid", awake)
	}
	t.Logf("wake latency of the fake agent (the test binary): %d ms", awake.LastWakeMs)
	if st, err := e.p.Status(ctx, "web"); err != nil || st != slipway.MachineAwake {
		t.Errorf("Status while awake = %s, %v", st, err)
	}
	if !strings.Contains(e.logs.String(), "wake_ms=") {
		t.Errorf("the wake latency was not logged:\n%s", e.logs)
	}

	e.exit(t, "web", 0)
	asleep := e.waitState(t, "web", slipway.MachineAsleep)
	if asleep.PID != 0 || asleep.Error != "" || asleep.LastSleptAt == nil || asleep.LastWakeMs != awake.LastWakeMs || asleep.VolumeBytes <= 0 {
		t.Errorf("asleep record = %+v; want no pid, no error, slept time, the last wake kept, the volume measured", asleep)
	}
	wantSequence(t, e, "web", slipway.MachineStarting, slipway.MachineAwake, slipway.MachineAsleep)
	if st, err := e.p.Status(ctx, "web"); err != nil || st != slipway.MachineAsleep {
		t.Errorf("Status after the agent exited = %s, %v; want asleep", st, err)
	}
	layout := builder.VolumeLayout(filepath.Join(e.volumes, "web"))
	for _, f := range []string{layout.Ready, layout.PID} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left on the volume after a clean exit (%v)", f, err)
		}
	}
	log, _ := os.ReadFile(layout.Log)
	if !strings.Contains(string(log), "fake agent of web polling") {
		t.Errorf("agent.log = %q, want the agent's output", log)
	}

	// The next wake starts a new agent.
	if err := os.Remove(filepath.Join(e.volumes, "web", exitFile)); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Start(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	again := e.waitState(t, "web", slipway.MachineAwake)
	if again.PID == m.PID || again.Error != "" {
		t.Errorf("second wake = %+v, want a new agent", again)
	}
}

func TestFailedExit(t *testing.T) {
	e := newEnv(t, process.Config{})
	if err := e.p.Start(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, "web", slipway.MachineAwake)
	e.exit(t, "web", 1)
	m := e.waitState(t, "web", slipway.MachineFailed)
	if !strings.HasPrefix(m.Error, "the agent exited with status 1; its last output:\n") || !strings.HasSuffix(m.Error, "fake agent exiting 1") ||
		m.PID != 0 || m.LastSleptAt == nil {
		t.Errorf("failed record = %+v", m)
	}
	wantSequence(t, e, "web", slipway.MachineStarting, slipway.MachineAwake, slipway.MachineFailed)
	if st, err := e.p.Status(t.Context(), "web"); err != nil || st != slipway.MachineFailed {
		t.Errorf("Status = %s, %v; want failed", st, err)
	}

	// A failed machine wakes again; the new wake clears the error.
	os.Remove(filepath.Join(e.volumes, "web", exitFile))
	if err := e.p.Start(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	if m := e.waitState(t, "web", slipway.MachineAwake); m.Error != "" {
		t.Errorf("record after waking a failed machine = %+v, want no error", m)
	}
}

func TestStartReusesAwakeAgent(t *testing.T) {
	e := newEnv(t, process.Config{})
	ctx := t.Context()
	if err := e.p.Start(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	awake := e.waitState(t, "web", slipway.MachineAwake)
	for range 3 {
		if err := e.p.Start(ctx, "web"); err != nil {
			t.Fatal(err)
		}
	}
	building := e.machine(t, "web")
	if building.State != slipway.MachineBuilding || building.PID != awake.PID || building.LastWokeAt == nil || !building.LastWokeAt.Equal(*awake.LastWokeAt) {
		t.Errorf("after Start on an awake machine: %+v; want building, same agent, same wake", building)
	}
	if pids := e.agents(t, "web"); len(pids) != 1 || pids[0] != awake.PID {
		t.Errorf("agent processes of web = %v, want only %d", pids, awake.PID)
	}
	e.exit(t, "web", 0)
	e.waitState(t, "web", slipway.MachineAsleep)
	wantSequence(t, e, "web", slipway.MachineStarting, slipway.MachineAwake, slipway.MachineBuilding, slipway.MachineAsleep)
}

func TestConcurrentStarts(t *testing.T) {
	e := newEnv(t, process.Config{})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 10 {
		for _, project := range []string{"web", "api"} {
			wg.Go(func() { errs <- e.p.Start(t.Context(), project) })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, project := range []string{"web", "api"} {
		e.waitState(t, project, slipway.MachineAwake)
		if pids := e.agents(t, project); len(pids) != 1 {
			t.Errorf("agents of %s after 10 concurrent Starts = %v, want one", project, pids)
		}
	}
}

func TestKilledAgent(t *testing.T) {
	e := newEnv(t, process.Config{})
	if err := e.p.Start(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	m := e.waitState(t, "web", slipway.MachineAwake)
	if err := syscall.Kill(m.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	failed := e.waitState(t, "web", slipway.MachineFailed)
	if !strings.HasPrefix(failed.Error, "the agent was killed by signal 9 (killed)") || failed.PID != 0 {
		t.Errorf("record of a SIGKILLed agent = %+v", failed)
	}
	if st, err := e.p.Status(t.Context(), "web"); err != nil || st != slipway.MachineFailed {
		t.Errorf("Status = %s, %v; want failed", st, err)
	}
}

func TestCannotStart(t *testing.T) {
	e := newEnv(t, process.Config{Binary: "/nonexistent/slipway"})
	err := e.p.Start(t.Context(), "web")
	if err == nil {
		t.Fatal("Start with a missing binary succeeded")
	}
	m := e.machine(t, "web")
	if m.State != slipway.MachineFailed || !strings.Contains(m.Error, "cannot start the agent /nonexistent/slipway") {
		t.Errorf("record = %+v, want failed with the reason", m)
	}
}

func TestReadyTimeout(t *testing.T) {
	e := newEnv(t, process.Config{ReadyTimeout: 300 * time.Millisecond}, "-no-ready")
	if err := e.p.Start(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	m := e.waitState(t, "web", slipway.MachineAwake)
	if m.LastWakeMs != 0 {
		t.Errorf("wake of an agent without a ready file measured %d ms, want 0 (unknown)", m.LastWakeMs)
	}
	if !strings.Contains(e.logs.String(), "agent did not signal readiness") {
		t.Errorf("no warning about the missing ready file:\n%s", e.logs)
	}
}

func TestStop(t *testing.T) {
	e := newEnv(t, process.Config{})
	if err := e.p.Start(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	m := e.waitState(t, "web", slipway.MachineAwake)
	if err := e.p.Stop(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	// SIGTERM kills the fake agent: stopped is asleep, not failed.
	if s := e.waitState(t, "web", slipway.MachineAsleep); s.Error != "" {
		t.Errorf("record after Stop = %+v", s)
	}
	if pids := e.agents(t, "web"); len(pids) != 0 {
		t.Errorf("agent %d still runs after Stop: %v", m.PID, pids)
	}
	if err := e.p.Destroy(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.volumes, "web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("volume after Destroy: %v", err)
	}
	if m := e.machine(t, "web"); m.State != slipway.MachineAbsent {
		t.Errorf("record after Destroy = %+v, want absent", m)
	}
	if st, err := e.p.Status(t.Context(), "web"); err != nil || st != slipway.MachineAbsent {
		t.Errorf("Status after Destroy = %s, %v", st, err)
	}
}

// startOrphan starts a fake agent of project the way an earlier server
// would have, and records it awake: the provider under test did not start
// it. With flags, it is started the way a server before the agent's
// configuration file started agents.
func startOrphan(t *testing.T, e *env, project string, flags bool) *exec.Cmd {
	t.Helper()
	vol := filepath.Join(e.volumes, project)
	layout := builder.VolumeLayout(vol)
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"agent", "--project", project, "--volume", vol}
	if !flags {
		if err := builder.WriteAgentConfig(layout.Config, builder.AgentConfig{Project: project, VolumeDir: vol, TemporalHostPort: "127.0.0.1:7233"}, -1, -1); err != nil {
			t.Fatal(err)
		}
		args = []string{"agent", "--config", layout.Config}
	}
	cmd := exec.Command(testBinary(t), args...)
	cmd.Env = append(os.Environ(), fakeAgentEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := os.WriteFile(layout.PID, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(layout.Ready); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal("the orphan agent never got ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	woke := time.Now().UTC()
	if err := e.rec.DB.UpsertMachine(t.Context(), &slipway.Machine{Project: project, Provider: "process", State: slipway.MachineBuilding,
		PID: cmd.Process.Pid, VolumeDir: vol, LastWokeAt: &woke, LastWakeMs: 50}); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestAgentThatOutlivedItsServer(t *testing.T) {
	t.Run("killed while no one watched", func(t *testing.T) {
		e := newEnv(t, process.Config{})
		cmd := startOrphan(t, e, "web", false)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		st, err := e.p.Status(t.Context(), "web")
		if err != nil || st != slipway.MachineFailed {
			t.Fatalf("Status of a dead agent recorded building = %s, %v; want failed", st, err)
		}
		if m := e.machine(t, "web"); m.PID != 0 || !strings.Contains(m.Error, "crashed or was killed") || m.LastSleptAt == nil {
			t.Errorf("record = %+v", m)
		}
	})
	t.Run("exited cleanly while no one watched", func(t *testing.T) {
		e := newEnv(t, process.Config{})
		cmd := startOrphan(t, e, "web", false)
		e.exit(t, "web", 0)
		_ = cmd.Wait()
		if st, err := e.p.Status(t.Context(), "web"); err != nil || st != slipway.MachineAsleep {
			t.Fatalf("Status of an agent that exited cleanly = %s, %v; want asleep", st, err)
		}
	})
	for _, flags := range []bool{false, true} {
		name := "adopted and watched"
		if flags {
			name += ", started with flags by a server before the configuration file"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, process.Config{})
			cmd := startOrphan(t, e, "web", flags)
			if st, err := e.p.Status(t.Context(), "web"); err != nil || st != slipway.MachineBuilding {
				t.Fatalf("Status of a live agent recorded building = %s, %v", st, err)
			}
			// A wake reuses it rather than starting a second agent.
			if err := e.p.Start(t.Context(), "web"); err != nil {
				t.Fatal(err)
			}
			if pids := e.agents(t, "web"); len(pids) != 1 || pids[0] != cmd.Process.Pid {
				t.Errorf("agents after Start = %v, want only the adopted %d", pids, cmd.Process.Pid)
			}
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			// Its watcher notices without anyone asking.
			m := e.waitState(t, "web", slipway.MachineFailed)
			if !strings.Contains(m.Error, "crashed or was killed") {
				t.Errorf("record = %+v", m)
			}
		})
	}
}

func TestWithoutRecorder(t *testing.T) {
	dir := t.TempDir()
	p, err := process.New(process.Config{VolumesDir: dir, Binary: testBinary(t), Env: []string{fakeAgentEnv + "=1"},
		Agent: builder.AgentConfig{TemporalHostPort: "127.0.0.1:7233"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background(), "web") })
	if err := p.Start(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := p.Status(t.Context(), "web")
		if err != nil {
			t.Fatal(err)
		}
		if st == slipway.MachineAwake {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status = %s, never awake", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	writeExitFile(t, filepath.Join(dir, "web"), 0)
	for {
		st, _ := p.Status(t.Context(), "web")
		if st == slipway.MachineAsleep {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status = %s, never asleep", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInvalidProject(t *testing.T) {
	e := newEnv(t, process.Config{})
	for _, f := range []func() error{
		func() error { return e.p.Start(t.Context(), "../etc") },
		func() error { _, err := e.p.Status(t.Context(), "../etc"); return err },
		func() error { return e.p.Stop(t.Context(), "../etc") },
		func() error { return e.p.Destroy(t.Context(), "../etc") },
	} {
		if err := f(); slipway.ErrorCode(err) != slipway.EINVALID {
			t.Errorf("call with project ../etc: %v, want invalid", err)
		}
	}
}

// Close stops and awaits every goroutine of the provider (the watchers of
// the agents it started and of those it adopted) and leaves the agents
// running, as a server that exits leaves them; a closed provider starts
// no agent.
func TestClose(t *testing.T) {
	e := newEnv(t, process.Config{})
	before := goleak.IgnoreCurrent()
	if err := e.p.Start(t.Context(), "web"); err != nil {
		t.Fatal(err)
	}
	m := e.waitState(t, "web", slipway.MachineAwake)
	orphan := startOrphan(t, e, "api", false)
	if st, err := e.p.Status(t.Context(), "api"); err != nil || st != slipway.MachineBuilding {
		t.Fatalf("Status of the adopted agent = %s, %v", st, err)
	}
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	// The store is the test's, open until its cleanup; its indexer starts
	// a goroutine of its own in the background.
	goleak.VerifyNone(t, before, goleak.IgnoreTopFunction("github.com/slipway-ci/slipway/sqlite.(*indexer).run.func1"))
	if err := e.p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if pids := e.agents(t, "web"); !slices.Equal(pids, []int{m.PID}) {
		t.Errorf("agents of web after Close = %v, want %d still running", pids, m.PID)
	}
	if pids := e.agents(t, "api"); !slices.Equal(pids, []int{orphan.Process.Pid}) {
		t.Errorf("agents of api after Close = %v, want %d still running", pids, orphan.Process.Pid)
	}
	if err := e.p.Start(t.Context(), "api"); err == nil {
		t.Error("Start after Close succeeded")
	}
	// No one waits for the agent now: reap it here.
	e.exit(t, "web", 0)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(m.PID, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
		t.Errorf("agent of web: %v, %v", ws, err)
	}
}
