package apps

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// startTime returns the start time of process pid, in clock ticks since
// boot (field 22 of /proc/<pid>/stat).
func startTime(pid int) (string, error) {
	f, err := statFields(pid)
	if err != nil {
		return "", err
	}
	return f[19], nil
}

// statFields returns the fields of /proc/<pid>/stat after the command
// name (the state first), at least 20 of them.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return f, nil
}

func (r *Runtime) forgetNet(inst *Instance) { r.nets.Delete(inst.Addr()) }

// process is one process, known by its pid and start time.
type process struct {
	pid     int
	started string
}

// conmonOf returns inst's conmon, or a zero process when it has none.
func (r *Runtime) conmonOf(ctx context.Context, inst *Instance) process {
	c, err := r.svc.inspect(ctx, inst.Name)
	if err != nil || c.State.ConmonPid <= 0 {
		return process{}
	}
	started, err := startTime(c.State.ConmonPid)
	if err != nil {
		return process{}
	}
	return process{pid: c.State.ConmonPid, started: started}
}

// alive says whether p runs (a zombie does not).
func (p process) alive() bool {
	f, err := statFields(p.pid)
	return err == nil && f[19] == p.started && f[0] != "Z"
}

// waitGone waits, for at most limit, until p has exited.
func (p process) waitGone(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for wait := time.Millisecond; p.pid > 0; wait = min(2*wait, 50*time.Millisecond) {
		if !p.alive() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still runs after %s", p.pid, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return nil
}
