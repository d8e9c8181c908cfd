package apps

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Start runs spec: it pulls the image unless the storage has it, creates
// the container (named Name(project, release)), starts it and waits until
// its health path answers 2xx or 3xx on 127.0.0.1:<HostPort> within
// Config.HealthTimeout. When the app does not become healthy it returns
// an *UnhealthyError with the app's last output and leaves nothing behind
// (the container is removed); any other failure also removes what it
// made. A container of that name must not exist yet.
func (r *Runtime) Start(ctx context.Context, spec Spec) (*Instance, error) {
	inst, _, err := r.StartTimed(ctx, spec)
	return inst, err
}

// StartTimed is Start, and says how long its phases took (Pull, Create,
// Start, Health), for a first request's Server-Timing.
func (r *Runtime) StartTimed(ctx context.Context, spec Spec) (*Instance, WakeReport, error) {
	t0 := time.Now()
	var rep WakeReport
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, rep, err
	}
	name := Name(spec.Project, spec.Release)
	// The spec as given (Port 0 stays 0): what Find fingerprints.
	fp, err := r.Fingerprint(spec)
	if err != nil {
		return nil, rep, err
	}
	defer r.lock(name)()
	if _, err := r.svc.inspect(ctx, name); err == nil {
		return nil, rep, fmt.Errorf("start app %s: its container exists already: wake or remove it", name)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, rep, fmt.Errorf("start app %s: %w", name, err)
	}
	if err := r.ensureImage(ctx, spec.Image); err != nil {
		return nil, rep, fmt.Errorf("start app %s: %w", name, err)
	}
	if spec.Port == 0 {
		if spec.Port, err = r.imagePort(ctx, spec.Image); err != nil {
			return nil, rep, fmt.Errorf("start app %s: %w", name, err)
		}
	}
	rep.Pull = time.Since(t0)
	inst, err := r.create(ctx, name, spec, fp)
	if err != nil {
		return nil, rep, fmt.Errorf("start app %s: %w", name, err)
	}
	rep.Create = time.Since(t0) - rep.Pull
	r.cfg.Logger.Info("apps: starting", "app", name, "image", spec.Image, "port", spec.Port, "host_port", inst.HostPort)
	rep.Start, rep.Health, err = r.startHealthy(ctx, inst)
	rep.Total = time.Since(t0)
	if err != nil {
		// Nothing stays behind: not even a stopped container.
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rmErr := r.svc.remove(rmCtx, name); rmErr != nil {
			r.cfg.Logger.Warn("apps: remove a failed app", "app", name, "err", rmErr)
		}
		var ue *UnhealthyError
		if errors.As(err, &ue) {
			return nil, rep, err
		}
		return nil, rep, fmt.Errorf("start app %s: %w", name, err)
	}
	return inst, rep, nil
}

// create creates spec's container with a free host port; the environment
// goes through a 0600 env file, never argv.
func (r *Runtime) create(ctx context.Context, name string, spec Spec, fp string) (*Instance, error) {
	hostPort, err := freePort()
	if err != nil {
		return nil, err
	}
	envFile, err := r.writeEnvFile(spec)
	if err != nil {
		return nil, err
	}
	defer os.Remove(envFile)
	keys := make([]string, 0, len(spec.Env))
	for _, kv := range spec.Env {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	args := []string{"create", "--name", name, "--label", LabelSpec + "=" + fp,
		"--label", LabelApp + "=" + spec.Project, "--label", LabelRelease + "=" + spec.Release,
		"--label", LabelPort + "=" + strconv.Itoa(spec.Port), "--label", LabelHealthPath + "=" + spec.HealthPath,
		"--label", LabelEnvKeys + "=" + strings.Join(keys, ","),
		"--label", LabelPreview + "=" + strconv.Itoa(spec.Preview),
		"--publish", fmt.Sprintf("127.0.0.1:%d:%d/tcp", hostPort, spec.Port),
		"--env-file", envFile, "--hostname", spec.Project,
		"--pids-limit", strconv.FormatInt(r.cfg.PidsLimit, 10),
		"--security-opt", "no-new-privileges", "--cap-drop", "all", "--cap-add", appCapabilities,
		"--stop-timeout", strconv.Itoa(int(r.cfg.StopTimeout.Round(time.Second) / time.Second)),
		"--restart", "no", "--pull", "never",
		"--log-driver", "k8s-file", "--log-opt", "max-size=" + strconv.FormatInt(r.cfg.LogMaxBytes, 10),
	}
	if r.cfg.Network == NetworkIsolated {
		args = append(args, "--network", "slirp4netns:allow_host_loopback=false")
	}
	if !spec.Writable {
		args = append(args, "--read-only", "--read-only-tmpfs")
	}
	if spec.MemoryBytes > 0 {
		args = append(args, "--memory", strconv.FormatInt(spec.MemoryBytes, 10)+"b")
	}
	if spec.CPUs > 0 {
		args = append(args, "--cpus", strconv.FormatFloat(spec.CPUs, 'f', -1, 64))
	}
	out, err := r.podman(ctx, append(args, spec.Image)...)
	if err != nil {
		return nil, redactor(spec.Env).fail(err)
	}
	return &Instance{
		Name: name, ID: strings.TrimSpace(string(out)), Project: spec.Project, Release: spec.Release, Image: spec.Image,
		Port: spec.Port, HostPort: hostPort, HealthPath: spec.HealthPath, Spec: fp, Preview: spec.Preview,
	}, nil
}

// appCapabilities are what an app keeps of root's powers inside its
// container: enough to change to another user and to own its files, no
// more (no raw sockets, no mknod, no chroot).
const appCapabilities = "CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,NET_BIND_SERVICE,SETGID,SETUID"

// writeEnvFile writes spec's environment, and PORT, to a 0600 file.
func (r *Runtime) writeEnvFile(spec Spec) (string, error) {
	f, err := os.CreateTemp(filepath.Join(r.cfg.Dir, "tmp"), "env-*")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("PORT=" + strconv.Itoa(spec.Port) + "\n")
	for _, kv := range spec.Env {
		b.WriteString(kv + "\n")
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write the env file: %w", err)
	}
	return f.Name(), nil
}

// startHealthy starts inst's container through the API service and waits
// for its health path. On failure the container is stopped (a Start
// removes it) and the error is an *UnhealthyError when the app itself
// failed.
func (r *Runtime) startHealthy(ctx context.Context, inst *Instance) (start, health time.Duration, err error) {
	if err := r.markStopped(inst.Name, false); err != nil {
		return 0, 0, err
	}
	if r.cfg.OnStart != nil {
		r.cfg.OnStart(inst)
	}
	t0 := time.Now()
	if err := r.svc.start(ctx, inst.Name); err != nil {
		// podman's error names the app's command when it cannot run.
		return time.Since(t0), 0, r.unhealthy(ctx, inst, err.Error())
	}
	start = time.Since(t0)
	if err := r.waitHealthy(ctx, inst); err != nil {
		health = time.Since(t0) - start
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.StopTimeout+30*time.Second)
		defer cancel()
		if stopErr := r.svc.stop(stopCtx, inst.Name, 0); stopErr != nil && !errors.Is(stopErr, ErrNotFound) {
			r.cfg.Logger.Warn("apps: stop an unhealthy app", "app", inst.Name, "err", stopErr)
		}
		return start, health, err
	}
	health = time.Since(t0) - start
	// Where DialContext finds it: one API call, after the first answer.
	if c, err := r.svc.inspect(ctx, inst.Name); err == nil {
		r.setNet(inst, c.State.Pid)
	}
	return start, health, nil
}

// healthClient asks health paths: no proxy, no redirects followed (a 3xx
// is an answer), no connection kept.
var healthClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	Timeout:   2 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// waitHealthy polls inst's health path until it answers 2xx or 3xx. It
// fails, with an *UnhealthyError, when the container exits, after
// Config.HealthTimeout, or when parent ends first (the error then wraps
// parent's).
func (r *Runtime) waitHealthy(parent context.Context, inst *Instance) error {
	ctx, cancel := context.WithTimeout(parent, r.cfg.HealthTimeout)
	defer cancel()
	url := "http://" + inst.Addr() + inst.HealthPath
	last := "it did not answer"
	nextCheck := time.Now().Add(100 * time.Millisecond)
	// Connection refused costs microseconds: poll often while an app is
	// likely to come up soon (a wake's first byte waits on it).
	t0 := time.Now()
	for wait := time.Millisecond; ; wait = min(2*wait, pollCap(time.Since(t0))) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := healthClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 400 {
				return nil
			}
			last = fmt.Sprintf("GET %s answered %s", inst.HealthPath, resp.Status)
		}
		if time.Now().After(nextCheck) {
			nextCheck = time.Now().Add(250 * time.Millisecond)
			c, err := r.svc.inspect(ctx, inst.Name)
			if err == nil && !c.State.Running {
				return r.unhealthy(ctx, inst, exitReason(c))
			}
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return r.cutShort(parent, inst, last)
			}
			return r.unhealthy(parent, inst, fmt.Sprintf("%s within %s", last, r.cfg.HealthTimeout))
		case <-time.After(wait):
		}
	}
}

// pollCap is the longest wait between two health checks, elapsed into
// the wait.
func pollCap(elapsed time.Duration) time.Duration {
	if elapsed < 2*time.Second {
		return 5 * time.Millisecond
	}
	return 50 * time.Millisecond
}

func exitReason(c *container) string {
	if c.State.OOMKilled {
		return "it ran out of memory and was killed"
	}
	return fmt.Sprintf("it exited with status %d while starting", c.State.ExitCode)
}

// cutShort makes the UnhealthyError of inst when the caller stopped
// waiting (parent ended: a wake's timeout): it wraps parent's error and
// carries the app's last output, read before the app is stopped, so that
// a 504 page can say why the app did not answer.
func (r *Runtime) cutShort(parent context.Context, inst *Instance, last string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 5*time.Second)
	defer cancel()
	err := r.unhealthy(ctx, inst, last+" before the wait for it ended")
	var ue *UnhealthyError
	if errors.As(err, &ue) {
		ue.Err = parent.Err()
	}
	return err
}

// unhealthy makes the UnhealthyError of inst, with its last output.
func (r *Runtime) unhealthy(ctx context.Context, inst *Instance, reason string) error {
	out, m, err := r.logs(ctx, inst.Name, DefaultOutputLines)
	if err != nil {
		out = []string{"(its output could not be read: " + m.mask(err.Error()) + ")"}
	}
	return &UnhealthyError{Name: inst.Name, Reason: m.mask(reason), Output: out}
}
