// Package process is the default machine provider: a project's machine is
// a local `slipway agent` process, and its volume is a directory.
//
// It must not build anything itself; it only starts, watches and stops
// agent processes.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-ci/slipway"
)

// Config configures the provider.
type Config struct {
	// VolumesDir holds one volume directory per project. Required.
	VolumesDir string
	// Binary is the slipway executable to run as the agent; default the
	// running executable.
	Binary string
	// Args are passed to `slipway agent` after the project and volume flags
	// (the Temporal and NATS addresses, say).
	Args []string
	// Env is added to the agent's environment.
	Env []string
	// Logger gets operational messages; default slog.Default().
	Logger *slog.Logger
}

// Provider implements slipway.MachineProvider with local processes.
type Provider struct {
	cfg Config
	mu  sync.Mutex
	// procs are the agents this provider started and has not reaped yet.
	procs map[string]*exec.Cmd
}

var _ slipway.MachineProvider = (*Provider)(nil)

// New returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.VolumesDir == "" {
		return nil, errors.New("process provider: no volumes directory")
	}
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("process provider: find own executable: %w", err)
		}
		cfg.Binary = exe
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Provider{cfg: cfg, procs: map[string]*exec.Cmd{}}, nil
}

// VolumeDir is the project's volume directory.
func (p *Provider) VolumeDir(project string) string {
	return filepath.Join(p.cfg.VolumesDir, project)
}

func (p *Provider) pidFile(project string) string {
	return filepath.Join(p.VolumeDir(project), "agent.pid")
}

// Ensure implements slipway.MachineProvider.
func (p *Provider) Ensure(ctx context.Context, project string) error {
	if err := slipway.ValidateProjectName(project); err != nil {
		return err
	}
	if err := os.MkdirAll(p.VolumeDir(project), 0o755); err != nil {
		return fmt.Errorf("create volume of %s: %w", project, err)
	}
	return nil
}

// Start implements slipway.MachineProvider: it starts the agent unless one
// is already running for the project.
func (p *Provider) Start(ctx context.Context, project string) error {
	if err := p.Ensure(ctx, project); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pid, ok := p.runningPID(project); ok {
		p.cfg.Logger.Debug("machine already awake", "project", project, "pid", pid)
		return nil
	}
	vol := p.VolumeDir(project)
	logFile, err := os.OpenFile(filepath.Join(vol, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open agent log of %s: %w", project, err)
	}
	defer logFile.Close()
	args := append([]string{"agent", "--project", project, "--volume", vol}, p.cfg.Args...)
	cmd := exec.Command(p.cfg.Binary, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = vol
	cmd.Env = append(os.Environ(), p.cfg.Env...)
	// Its own process group: a signal to the server's terminal does not
	// kill builds, and a server crash leaves the machine running (it
	// reconnects when the server is back).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent of %s: %w", project, err)
	}
	if err := os.WriteFile(p.pidFile(project), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("record agent pid of %s: %w", project, err)
	}
	p.procs[project] = cmd
	p.cfg.Logger.Info("machine woke", "project", project, "pid", cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if p.procs[project] == cmd {
			delete(p.procs, project)
		}
		p.mu.Unlock()
		p.cfg.Logger.Info("machine asleep", "project", project, "exit", exitStatus(err))
	}()
	return nil
}

func exitStatus(err error) string {
	if err == nil {
		return "0"
	}
	return err.Error()
}

// runningPID reports the project's agent pid if it is alive. Callers hold
// p.mu.
func (p *Provider) runningPID(project string) (int, bool) {
	if cmd, ok := p.procs[project]; ok {
		return cmd.Process.Pid, true
	}
	b, err := os.ReadFile(p.pidFile(project))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, isAgent(pid, project)
}

// isAgent reports whether pid is a live (not zombie) slipway agent of
// project, so a recycled pid is never mistaken for one.
func isAgent(pid int, project string) bool {
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
	hasAgent, hasProject := false, false
	for i, a := range args {
		if a == "agent" {
			hasAgent = true
		}
		if a == "--project" && i+1 < len(args) && args[i+1] == project {
			hasProject = true
		}
	}
	return hasAgent && hasProject
}

// Stop implements slipway.MachineProvider: SIGTERM to the agent's process
// group, SIGKILL after a grace period.
func (p *Provider) Stop(ctx context.Context, project string) error {
	p.mu.Lock()
	pid, ok := p.runningPID(project)
	p.mu.Unlock()
	if !ok {
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if !isAgent(pid, project) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return nil
}

// Status implements slipway.MachineProvider.
func (p *Provider) Status(ctx context.Context, project string) (slipway.MachineState, error) {
	if _, err := os.Stat(p.VolumeDir(project)); os.IsNotExist(err) {
		return slipway.MachineAbsent, nil
	}
	p.mu.Lock()
	_, ok := p.runningPID(project)
	p.mu.Unlock()
	if ok {
		return slipway.MachineAwake, nil
	}
	return slipway.MachineAsleep, nil
}

// Destroy implements slipway.MachineProvider.
func (p *Provider) Destroy(ctx context.Context, project string) error {
	if err := slipway.ValidateProjectName(project); err != nil {
		return err
	}
	if err := p.Stop(ctx, project); err != nil {
		return err
	}
	return os.RemoveAll(p.VolumeDir(project))
}
