// Package process is the default machine provider: a project's machine is
// a local `slipway agent` process, and its volume is a directory.
//
// It watches the agents it starts and records every state change of a
// machine (see slipway.MachineState) through an optional StateRecorder,
// with the wake latency: the time from launching the agent to the agent's
// ready file (builder.Layout.Ready) appearing on the volume. The volume's
// layout and the agent's configuration, which the provider writes on the
// volume before it starts the agent, are package builder's.
//
// It must not build anything itself; it only starts, watches and stops
// agent processes.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/builder"
)

// Name is the Provider field of the machine records this provider writes.
const Name = "process"

// AgentBinaryName is the small agent-only executable (cmd/slipway-agent)
// that the provider prefers when it lies next to the running executable:
// it starts several times faster than the full slipway binary.
const AgentBinaryName = "slipway-agent"

// StateRecorder stores machine records; slipway.Store implements it.
type StateRecorder interface {
	// Machine returns a project's record, or ENOTFOUND.
	Machine(ctx context.Context, project string) (*slipway.Machine, error)
	// UpsertMachine replaces a project's record.
	UpsertMachine(ctx context.Context, m *slipway.Machine) error
}

// Config configures the provider.
type Config struct {
	// VolumesDir holds one volume directory per project. Required.
	VolumesDir string
	// Binary is the executable run as `Binary agent --config FILE`.
	// Default: slipway-agent next to the running executable if there is
	// one, else the running executable.
	Binary string
	// Agent is the configuration of every agent: the provider sets its
	// Project and VolumeDir for each machine and writes it to the
	// machine's volume (builder.Layout.Config, mode 0600, owned by the
	// agent's user) before it starts the agent.
	Agent builder.AgentConfig
	// Env is added to the agent's environment, which is otherwise
	// minimal (agentEnv): nothing else of the server's is inherited.
	Env []string
	// Credentials, if set, issues the credentials of project's machine;
	// it is called at each start of the agent, and its result goes into
	// Agent.Credentials of that machine's configuration file.
	Credentials func(project string) (builder.AgentCredentials, error)
	// Isolation says whom agents run as: IsolationRoot (the default) runs
	// them as the server's user; IsolationRootless runs each project's
	// agent as its own builder user (see UserName), created on first use,
	// which owns the project's volume (mode 0700). Check the host with
	// ProbeRootless first.
	Isolation Isolation
	// RuntimeBase holds the rootless agents' XDG_RUNTIME_DIRs (one per
	// volume) and the lock serializing user creation; default
	// DefaultRuntimeBase.
	RuntimeBase string
	// Recorder, if set, receives every state change of every machine.
	// Without it the provider still works; it only knows what it sees.
	Recorder StateRecorder
	// ReadyTimeout is how long the provider waits for a launched agent's
	// ready file before it takes the agent as awake anyway, if it still
	// runs (an agent that does not write the file). Default 3s.
	ReadyTimeout time.Duration
	// Logger gets operational messages; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Provider implements slipway.MachineProvider with local processes.
//
// It owns two goroutines per agent it watches (one waits for the agent's
// exit, one follows its states); Close stops and awaits them all.
type Provider struct {
	cfg Config
	mu  sync.Mutex
	// machines are the machines this provider has seen, by project.
	machines map[string]*machine
	// closed is set by Close: no agent is launched or watched after it.
	// Guarded by mu.
	closed bool
	// done is closed by Close: watching goroutines return.
	done chan struct{}
	// watchers counts the watching goroutines.
	watchers sync.WaitGroup
}

// errClosed is returned by Start after Close.
var errClosed = errors.New("process provider: closed")

// machine is what the provider knows of one project's machine. Its fields
// are guarded by Provider.mu.
type machine struct {
	project string
	// rec is the machine's record as last written (or read).
	rec slipway.Machine
	// loaded is set once rec was read from the recorder (or there is none).
	loaded bool
	// cmd is the agent this provider started and has not reaped yet.
	cmd *exec.Cmd
	// stopping is set by Stop: the agent's exit is a sleep, not a failure.
	stopping bool
	// watched is the pid of an agent this provider did not start (it
	// outlived an earlier server) and watches until it exits.
	watched int
	// user runs the agent in rootless mode, once known.
	user *builderUser
}

var _ slipway.MachineProvider = (*Provider)(nil)

// New returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.VolumesDir == "" {
		return nil, errors.New("process provider: no volumes directory")
	}
	if cfg.Binary == "" {
		bin, err := DefaultBinary()
		if err != nil {
			return nil, fmt.Errorf("process provider: %w", err)
		}
		cfg.Binary = bin
	}
	switch cfg.Isolation {
	case "":
		cfg.Isolation = IsolationRoot
	case IsolationRoot, IsolationRootless:
	default:
		return nil, fmt.Errorf("process provider: unknown isolation %q (want %q or %q)", cfg.Isolation, IsolationRoot, IsolationRootless)
	}
	if cfg.RuntimeBase == "" {
		cfg.RuntimeBase = DefaultRuntimeBase
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{cfg: cfg, machines: map[string]*machine{}, done: make(chan struct{})}, nil
}

// Close stops watching the agents and waits until every goroutine of the
// provider has returned. It leaves the agents running, as a server that
// exits does: the next provider on the same volumes adopts them (Status,
// Start). Start fails after Close. Close is safe to call more than once.
func (p *Provider) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	p.mu.Unlock()
	p.watchers.Wait()
	return nil
}

// goWatch runs f in a goroutine that Close awaits; f must return once
// p.done is closed. Callers hold p.mu and have checked p.closed.
func (p *Provider) goWatch(f func()) {
	p.watchers.Add(1)
	go func() {
		defer p.watchers.Done()
		f()
	}()
}

// DefaultBinary is the agent executable used when Config.Binary is empty:
// slipway-agent in the running executable's directory if it exists, else
// the running executable.
func DefaultBinary() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	agent := filepath.Join(filepath.Dir(exe), AgentBinaryName)
	if st, err := os.Stat(agent); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return agent, nil
	}
	return exe, nil
}

// Binary is the executable the provider runs as the agent.
func (p *Provider) Binary() string { return p.cfg.Binary }

// Isolation is the mode agents run in.
func (p *Provider) Isolation() Isolation { return p.cfg.Isolation }

// VolumeDir is the project's volume directory.
func (p *Provider) VolumeDir(project string) string {
	return filepath.Join(p.cfg.VolumesDir, project)
}

// layout is the layout of the project's volume.
func (p *Provider) layout(project string) builder.Layout {
	return builder.VolumeLayout(p.VolumeDir(project))
}

// Ensure implements slipway.MachineProvider.
func (p *Provider) Ensure(ctx context.Context, project string) error {
	if err := slipway.ValidateProjectName(project); err != nil {
		return err
	}
	if p.cfg.Isolation == IsolationRootless {
		// Builder users reach their volumes through here, and see nothing
		// else: no listing, and no other volume.
		if err := os.MkdirAll(p.cfg.VolumesDir, 0o711); err != nil {
			return fmt.Errorf("create volume of %s: %w", project, err)
		}
		if err := os.Chmod(p.cfg.VolumesDir, 0o711); err != nil {
			return fmt.Errorf("create volume of %s: %w", project, err)
		}
		if _, err := p.builderUser(ctx, project); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(p.VolumeDir(project), 0o700); err != nil {
		return fmt.Errorf("create volume of %s: %w", project, err)
	}
	return nil
}

// builderUser returns the user that runs project's agent in rootless
// mode, creating it on first use.
func (p *Provider) builderUser(ctx context.Context, project string) (builderUser, error) {
	p.mu.Lock()
	m := p.machines[project]
	if m != nil && m.user != nil {
		u := *m.user
		p.mu.Unlock()
		return u, nil
	}
	p.mu.Unlock()
	u, err := ensureUser(ctx, UserName(project), p.cfg.RuntimeBase)
	if err != nil {
		return builderUser{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if m = p.machines[project]; m == nil {
		m = &machine{project: project}
		p.machines[project] = m
	}
	m.user = &u
	return u, nil
}

// runtimeDir is the XDG_RUNTIME_DIR of project's rootless agent.
func (p *Provider) runtimeDir(project string) string {
	return runtimeDir(p.cfg.RuntimeBase, p.VolumeDir(project))
}

// Start implements slipway.MachineProvider: it starts the agent unless one
// is already running for the project, in which case the build reuses it
// and the machine is building. The agent is launched in its own process
// group, so it survives the server; it is watched until it exits.
func (p *Provider) Start(ctx context.Context, project string) error {
	if err := p.Ensure(ctx, project); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errClosed
	}
	m := p.machine(ctx, project)
	if pid, ok := p.runningPID(project, m); ok {
		if m.cmd == nil {
			p.watch(project, m, pid)
		}
		if st := m.rec.State; (st != slipway.MachineStarting && st != slipway.MachineBuilding) || m.rec.PID != pid {
			p.record(ctx, m, func(r *slipway.Machine) {
				r.State, r.PID, r.Error = slipway.MachineBuilding, pid, ""
			})
		}
		p.cfg.Logger.Debug("machine already awake", "project", project, "pid", pid, "state", m.rec.State)
		return nil
	}
	return p.launch(ctx, project, m)
}

// agentUser is whom an agent runs as, and what that takes.
type agentUser struct {
	// env is added to the agent's environment.
	env []string
	// cred is the agent's user; nil: the server's.
	cred *syscall.Credential
	// owner is the uid and gid owning the agent's configuration file (-1:
	// unchanged).
	owner [2]int
}

// prepareUser prepares the volume (and in rootless mode the runtime
// directory) of project's agent for the user it runs as. Callers hold
// p.mu.
func (p *Provider) prepareUser(project string, m *machine) (agentUser, error) {
	vol := p.VolumeDir(project)
	layout := builder.VolumeLayout(vol)
	if p.cfg.Isolation != IsolationRootless {
		wiped, err := prepareVolume(vol, os.Geteuid(), os.Getegid(), false)
		if err != nil {
			return agentUser{}, fmt.Errorf("prepare the volume of %s: %w", project, err)
		}
		if wiped {
			p.cfg.Logger.Info("volume emptied: it belonged to another user (isolation mode changed)", "project", project)
		}
		return agentUser{env: []string{"TMPDIR=" + layout.Tmp}, owner: [2]int{-1, -1}}, nil
	}
	if m.user == nil {
		return agentUser{}, fmt.Errorf("start agent of %s: no builder user (Ensure was not called)", project)
	}
	u := *m.user
	wiped, err := prepareVolume(vol, u.UID, u.GID, true)
	if err != nil {
		return agentUser{}, fmt.Errorf("prepare the volume of %s for user %s: %w", project, u.Name, err)
	}
	if wiped {
		p.cfg.Logger.Info("volume emptied: it belonged to another user (isolation mode changed)", "project", project, "user", u.Name)
	}
	rt := p.runtimeDir(project)
	if err := prepareRuntimeDir(rt, u); err != nil {
		return agentUser{}, fmt.Errorf("prepare the runtime dir of %s: %w", project, err)
	}
	return agentUser{env: rootlessEnv(u, layout, rt), cred: credential(u), owner: [2]int{u.UID, u.GID}}, nil
}

// launch starts the project's agent. Callers hold p.mu.
func (p *Provider) launch(ctx context.Context, project string, m *machine) error {
	vol := p.VolumeDir(project)
	layout := builder.VolumeLayout(vol)
	au, err := p.prepareUser(project, m)
	if err != nil {
		return err
	}
	env, cred, owner := au.env, au.cred, au.owner
	// A ready file is only ever this launch's.
	if err := os.Remove(layout.Ready); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale ready file of %s: %w", project, err)
	}
	agentCfg := p.cfg.Agent
	agentCfg.Project, agentCfg.VolumeDir = project, vol
	if p.cfg.Credentials != nil {
		if agentCfg.Credentials, err = p.cfg.Credentials(project); err != nil {
			return fmt.Errorf("start agent of %s: credentials: %w", project, err)
		}
	}
	if err := builder.WriteAgentConfig(layout.Config, agentCfg, owner[0], owner[1]); err != nil {
		return fmt.Errorf("start agent of %s: %w", project, err)
	}
	logFile, err := os.OpenFile(layout.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open agent log of %s: %w", project, err)
	}
	defer logFile.Close()
	cmd := exec.Command(p.cfg.Binary, "agent", "--config", layout.Config)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = vol
	cmd.Env = append(append(agentEnv(os.Getenv), p.cfg.Env...), env...)
	// Its own process group: a signal to the server's terminal does not
	// kill builds, and a server crash leaves the machine running (it
	// reconnects when the server is back).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	started := p.cfg.Now()
	if err := cmd.Start(); err != nil {
		p.record(ctx, m, func(r *slipway.Machine) {
			r.State, r.PID, r.Error = slipway.MachineFailed, 0, fmt.Sprintf("cannot start the agent %s: %v", p.cfg.Binary, err)
		})
		return fmt.Errorf("start agent of %s: %w", project, err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(p.layout(project).PID, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		p.record(ctx, m, func(r *slipway.Machine) {
			r.State, r.PID, r.Error = slipway.MachineFailed, 0, fmt.Sprintf("cannot record the agent's pid: %v", err)
		})
		return fmt.Errorf("record agent pid of %s: %w", project, err)
	}
	m.cmd, m.stopping = cmd, false
	p.record(ctx, m, func(r *slipway.Machine) {
		r.State, r.PID, r.Error = slipway.MachineStarting, pid, ""
		r.LastWokeAt, r.LastWakeMs = &started, 0
	})
	if m.user != nil && cred != nil {
		p.cfg.Logger.Info("machine waking", "project", project, "pid", pid, "binary", p.cfg.Binary, "user", m.user.Name)
	} else {
		p.cfg.Logger.Info("machine waking", "project", project, "pid", pid, "binary", p.cfg.Binary)
	}

	exited := make(chan error, 1)
	p.goWatch(func() { p.waitExit(cmd, project, exited) })
	p.goWatch(func() { p.follow(project, m, pid, started, exited) })
	return nil
}

// waitExit sends the exit of cmd, an agent this provider started, on
// exited, or returns without when the provider closes (the agent then runs
// on). It waits on a pidfd, so the exit is seen at once; where there is
// none, it polls as watch does.
func (p *Provider) waitExit(cmd *exec.Cmd, project string, exited chan<- error) {
	pid := cmd.Process.Pid
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if p.pollExit(pid, project) {
			exited <- cmd.Wait()
		}
		return
	}
	defer unix.Close(fd)
	for {
		// A bounded poll, so that Close is noticed within its timeout.
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
		switch {
		case n > 0:
			exited <- cmd.Wait()
			return
		case err != nil && !errors.Is(err, unix.EINTR):
			if p.pollExit(pid, project) {
				exited <- cmd.Wait()
			}
			return
		}
		select {
		case <-p.done:
			return
		default:
		}
	}
}

// pollExit waits until pid is no longer a live agent of project (true) or
// the provider closes (false).
func (p *Provider) pollExit(pid int, project string) bool {
	for p.isAgent(pid, project) {
		select {
		case <-p.done:
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
	return true
}

// errUnwatched is the exit "status" of an agent this provider did not
// start: it cannot know how it ended.
var errUnwatched = errors.New("exit status unknown")

// watch follows an agent this provider did not start (one that outlived an
// earlier server) until it exits. Callers hold p.mu.
func (p *Provider) watch(project string, m *machine, pid int) {
	if m.watched == pid || p.closed {
		return
	}
	m.watched = pid
	started := p.cfg.Now()
	if m.rec.LastWokeAt != nil {
		started = *m.rec.LastWokeAt
	}
	exited := make(chan error, 1)
	p.goWatch(func() {
		if p.pollExit(pid, project) {
			exited <- errUnwatched
		}
	})
	p.goWatch(func() { p.follow(project, m, pid, started, exited) })
}

// follow waits for the agent pid to become ready and then to exit, and
// records both. exited delivers the agent's exit. It runs as long as the
// agent does, or until the provider closes.
func (p *Provider) follow(project string, m *machine, pid int, started time.Time, exited <-chan error) {
	deadline := started.Add(p.cfg.ReadyTimeout)
	interval := 5 * time.Millisecond
	for p.isStarting(m, pid) {
		select {
		case err := <-exited:
			p.exited(project, m, pid, err)
			return
		case <-p.done:
			return
		case <-time.After(interval):
		}
		if st, err := os.Stat(p.layout(project).Ready); err == nil {
			// The file's time, not ours: polling adds no latency.
			p.awake(project, m, pid, max(1, st.ModTime().Sub(started).Milliseconds()))
		} else if p.cfg.Now().After(deadline) {
			p.cfg.Logger.Warn("agent did not signal readiness; taking it as awake", "project", project, "pid", pid,
				"file", p.layout(project).Ready, "timeout", p.cfg.ReadyTimeout)
			p.awake(project, m, pid, 0)
		}
		if time.Since(started) > time.Second {
			interval = 50 * time.Millisecond
		}
	}
	select {
	case err := <-exited:
		p.exited(project, m, pid, err)
	case <-p.done:
	}
}

func (p *Provider) isStarting(m *machine, pid int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return m.rec.PID == pid && m.rec.State == slipway.MachineStarting
}

// awake records that the agent pid polls its queue, wakeMs after it was
// launched (0: not measured).
func (p *Provider) awake(project string, m *machine, pid int, wakeMs int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.rec.PID != pid || m.rec.State != slipway.MachineStarting {
		return
	}
	p.record(context.Background(), m, func(r *slipway.Machine) {
		r.State, r.LastWakeMs = slipway.MachineAwake, wakeMs
	})
	p.cfg.Logger.Info("machine awake", "project", project, "pid", pid, "wake_ms", wakeMs)
}

// exited records the exit of the agent pid: asleep when it exited 0 or was
// stopped, failed otherwise.
func (p *Provider) exited(project string, m *machine, pid int, exitErr error) {
	size := volumeBytes(p.VolumeDir(project))
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.cmd != nil && m.cmd.Process.Pid == pid {
		m.cmd = nil
	}
	if m.watched == pid {
		m.watched = 0
	}
	if size > 0 {
		m.rec.VolumeBytes = size
	}
	p.gone(context.Background(), project, m, pid, exitErr)
}

// gone records that the agent pid is no longer running, if it is the one
// the record names. exitErr is its exit (errUnwatched when unknown: then
// a ready file it left behind means it crashed). Callers hold p.mu.
func (p *Provider) gone(ctx context.Context, project string, m *machine, pid int, exitErr error) {
	if m.rec.PID != pid || !m.rec.State.Running() {
		return
	}
	state, reason := slipway.MachineAsleep, ""
	_, statErr := os.Stat(p.layout(project).Ready)
	leftReady := statErr == nil
	var exitErrType *exec.ExitError
	switch {
	case exitErr == nil || m.stopping:
	case errors.Is(exitErr, errUnwatched):
		if leftReady {
			state, reason = slipway.MachineFailed, fmt.Sprintf("the agent (pid %d) ended without cleaning up: it crashed or was killed", pid)
		}
	case errors.As(exitErr, &exitErrType):
		state, reason = slipway.MachineFailed, describeExit(exitErrType)
		if tail := logTail(p.layout(project).Log, 3); tail != "" {
			reason += "; its last output:\n" + tail
		}
	default:
		state, reason = slipway.MachineFailed, "the agent failed: "+exitErr.Error()
	}
	for _, f := range []string{p.layout(project).Ready, p.layout(project).PID} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.cfg.Logger.Warn("remove agent file", "project", project, "file", f, "err", err)
		}
	}
	if m.user != nil {
		stopPause(p.runtimeDir(project), m.user.UID)
	}
	now := p.cfg.Now()
	m.stopping = false
	p.record(ctx, m, func(r *slipway.Machine) {
		r.State, r.PID, r.Error, r.LastSleptAt = state, 0, reason, &now
	})
	if state == slipway.MachineFailed {
		p.cfg.Logger.Warn("machine failed", "project", project, "pid", pid, "reason", reason)
	} else {
		p.cfg.Logger.Info("machine asleep", "project", project, "pid", pid)
	}
}

// describeExit says how an agent process ended.
func describeExit(e *exec.ExitError) string {
	if ws, ok := e.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("the agent was killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("the agent exited with status %d", e.ExitCode())
}

// logTail returns the last n non-empty lines of the file at path (reading
// at most its last 4 KiB), or "".
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxTail = 4096
	if st, err := f.Stat(); err == nil && st.Size() > maxTail {
		if _, err := f.Seek(st.Size()-maxTail, io.SeekStart); err != nil {
			return ""
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// volumeBytes is the disk space used by the files under dir (hard links
// counted once), or 0 when it cannot be measured.
func volumeBytes(dir string) int64 {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable parts are skipped, not fatal
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			total += info.Size()
			return nil
		}
		if st.Nlink > 1 {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}

// machine returns the provider's view of the project's machine, reading
// its record on first use. Callers hold p.mu.
func (p *Provider) machine(ctx context.Context, project string) *machine {
	m := p.machines[project]
	if m == nil {
		m = &machine{project: project}
		p.machines[project] = m
	}
	if m.loaded {
		return m
	}
	if p.cfg.Recorder == nil {
		m.loaded = true
		return m
	}
	rec, err := p.cfg.Recorder.Machine(ctx, project)
	switch {
	case err == nil:
		m.rec, m.loaded = *rec, true
	case slipway.ErrorCode(err) == slipway.ENOTFOUND:
		m.loaded = true
	default:
		p.cfg.Logger.Warn("read machine record", "project", project, "err", err)
	}
	return m
}

// record applies f to m's record and stores it. A failure to store is
// logged: the record is what users see, the agent runs either way. Callers
// hold p.mu, which keeps the records of one machine in order.
func (p *Provider) record(ctx context.Context, m *machine, f func(*slipway.Machine)) {
	f(&m.rec)
	m.rec.Project, m.rec.Provider, m.rec.VolumeDir = m.project, Name, p.VolumeDir(m.project)
	m.rec.Isolation, m.rec.User = string(p.cfg.Isolation), ""
	if p.cfg.Isolation == IsolationRootless && m.user != nil {
		m.rec.User = m.user.Name
	}
	m.rec.UpdatedAt = p.cfg.Now().UTC()
	if p.cfg.Recorder == nil {
		return
	}
	rec := m.rec
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.cfg.Recorder.UpsertMachine(ctx, &rec); err != nil {
		p.cfg.Logger.Warn("record machine state", "project", rec.Project, "state", rec.State, "err", err)
	}
}

// runningPID reports the project's agent pid if it is alive. Callers hold
// p.mu.
func (p *Provider) runningPID(project string, m *machine) (int, bool) {
	if m.cmd != nil {
		// Not yet reaped, but perhaps already exited.
		pid := m.cmd.Process.Pid
		return pid, p.isAgent(pid, project)
	}
	b, err := os.ReadFile(p.layout(project).PID)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, p.isAgent(pid, project)
}

// isAgent reports whether pid is a live (not zombie) slipway agent of
// project, so a recycled pid is never mistaken for one.
func (p *Provider) isAgent(pid int, project string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	config := p.layout(project).Config
	hasAgent, hasProject := false, false
	for i, a := range args {
		if a == "agent" {
			hasAgent = true
		}
		if i+1 < len(args) && (a == "--config" && args[i+1] == config ||
			// An agent started by a server before the configuration file
			// (--project P --volume V ...) that outlived it. Remove in the
			// release after.
			a == "--project" && args[i+1] == project) {
			hasProject = true
		}
	}
	return hasAgent && hasProject
}

// Stop implements slipway.MachineProvider: SIGTERM to the agent's process
// group, SIGKILL after a grace period. The machine is then asleep.
func (p *Provider) Stop(ctx context.Context, project string) error {
	if err := slipway.ValidateProjectName(project); err != nil {
		return err
	}
	p.mu.Lock()
	m := p.machine(ctx, project)
	pid, ok := p.runningPID(project, m)
	if ok {
		m.stopping = true
	}
	p.mu.Unlock()
	if !ok {
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(15 * time.Second)
	for p.isAgent(pid, project) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			deadline = time.Now().Add(15 * time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The watcher records the exit of an agent this provider started; an
	// unwatched one is recorded here.
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.cmd == nil {
		p.gone(ctx, project, m, pid, nil)
	}
	return nil
}

// Status implements slipway.MachineProvider. It checks that an agent the
// record says runs is alive, and corrects the record of one that is gone
// (asleep, or failed if it left its ready file behind).
func (p *Provider) Status(ctx context.Context, project string) (slipway.MachineState, error) {
	if err := slipway.ValidateProjectName(project); err != nil {
		return "", err
	}
	if _, err := os.Stat(p.VolumeDir(project)); errors.Is(err, fs.ErrNotExist) {
		return slipway.MachineAbsent, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.machine(ctx, project)
	pid, alive := p.runningPID(project, m)
	switch {
	case m.cmd != nil:
		// An agent this provider started: its watcher records its states.
	case alive:
		// One that outlived an earlier server: adopt it.
		if !m.rec.State.Running() || m.rec.PID != pid {
			p.record(ctx, m, func(r *slipway.Machine) { r.State, r.PID, r.Error = slipway.MachineAwake, pid, "" })
		}
		p.watch(project, m, pid)
	case m.rec.State.Running():
		// Gone while no one watched it.
		p.gone(ctx, project, m, m.rec.PID, errUnwatched)
	}
	switch m.rec.State {
	case "", slipway.MachineAbsent:
		return slipway.MachineAsleep, nil // the volume exists
	}
	return m.rec.State, nil
}

// Destroy implements slipway.MachineProvider: it stops the agent, removes
// the volume and the agent's runtime directory and, in rootless mode, the
// project's builder user with its subordinate id ranges (only a user
// Slipway created; see removeUser).
func (p *Provider) Destroy(ctx context.Context, project string) error {
	if err := slipway.ValidateProjectName(project); err != nil {
		return err
	}
	if err := p.Stop(ctx, project); err != nil {
		return err
	}
	p.mu.Lock()
	m := p.machine(ctx, project)
	bu := m.user
	m.user = nil
	p.mu.Unlock()
	if bu == nil && p.cfg.Isolation == IsolationRootless {
		// A user created before this server started.
		if u, err := user.Lookup(UserName(project)); err == nil {
			b := builderUser{Name: u.Username}
			b.UID, _ = strconv.Atoi(u.Uid)
			b.GID, _ = strconv.Atoi(u.Gid)
			if b.UID != 0 {
				bu = &b
			}
		}
	}
	if bu != nil {
		stopPause(p.runtimeDir(project), bu.UID)
		killMachineProcesses(*bu, p.VolumeDir(project), p.runtimeDir(project))
	}
	_ = os.RemoveAll(p.runtimeDir(project))
	if err := os.RemoveAll(p.VolumeDir(project)); err != nil {
		return fmt.Errorf("remove volume of %s: %w", project, err)
	}
	if p.cfg.Isolation == IsolationRootless {
		// The builder user goes with its machine, and with it its
		// subordinate ids. Failing that (a user Slipway did not make, or
		// one still running processes: another server's project of the
		// same name) leaves the user, which takes nothing but a name and
		// an id range.
		name := UserName(project)
		if removed, err := removeUser(ctx, name, p.cfg.RuntimeBase); err != nil {
			p.cfg.Logger.Warn("builder user kept", "project", project, "user", name, "error", err)
		} else if removed {
			p.cfg.Logger.Info("builder user removed", "project", project, "user", name)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.rec.State != "" && m.rec.State != slipway.MachineAbsent {
		p.record(ctx, m, func(r *slipway.Machine) {
			r.State, r.PID, r.Error, r.VolumeBytes = slipway.MachineAbsent, 0, "", 0
		})
	}
	return nil
}
