package apps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Freeze pauses every process of inst with the cgroup freezer (memory
// kept) and returns once they are all paused. Connections to it stay
// open; requests wait. Only a running app can be frozen.
func (r *Runtime) Freeze(ctx context.Context, inst *Instance) error {
	defer r.lock(inst.Name)()
	c, err := r.svc.inspect(ctx, inst.Name)
	if err != nil {
		return fmt.Errorf("freeze app %s: %w", inst.Name, err)
	}
	if !c.State.Running {
		return fmt.Errorf("freeze app %s: it is %s, not running", inst.Name, c.State.Status)
	}
	fz, err := freezerOf(c.State.Pid)
	if err != nil {
		return fmt.Errorf("freeze app %s: %w", inst.Name, err)
	}
	inst.fz = fz
	if err := fz.freeze(); err != nil {
		return fmt.Errorf("freeze app %s: %w", inst.Name, err)
	}
	return nil
}

// Thaw lets a frozen inst run again; for an app that is not frozen it does
// nothing. It writes the freezer file only: no podman command runs.
func (r *Runtime) Thaw(ctx context.Context, inst *Instance) error {
	defer r.lock(inst.Name)()
	_, err := r.thawLocked(ctx, inst)
	return err
}

// thawLocked thaws inst if it is frozen and says whether it was. The
// freezer found by an earlier call is tried first, with no API call.
func (r *Runtime) thawLocked(ctx context.Context, inst *Instance) (bool, error) {
	if inst.fz.file != "" {
		if frozen, err := inst.fz.frozen(); err == nil {
			if !frozen {
				return false, nil
			}
			return true, inst.fz.thaw()
		}
	}
	c, err := r.svc.inspect(ctx, inst.Name)
	if err != nil {
		return false, fmt.Errorf("thaw app %s: %w", inst.Name, err)
	}
	if !c.State.Running {
		return false, nil
	}
	fz, err := freezerOf(c.State.Pid)
	if err != nil {
		return false, fmt.Errorf("thaw app %s: %w", inst.Name, err)
	}
	inst.fz = fz
	frozen, err := fz.frozen()
	if err != nil || !frozen {
		return false, err
	}
	return true, fz.thaw()
}

// Stop ends inst's processes (SIGTERM, then SIGKILL after
// Config.StopTimeout; a frozen app is thawed first so that it can exit)
// and keeps its container for a fast Wake or a rollback: no CPU is left
// in use. Unless Config.NoPrime, the container is then primed: created in
// runc again, its processes not started (conmon and runc's init wait, with
// a few MB of memory), so that a Wake is only `runc start`.
func (r *Runtime) Stop(ctx context.Context, inst *Instance) error {
	return r.stop(ctx, inst, !r.cfg.NoPrime)
}

// Retire stops inst as Stop does but never primes it: no process of it is
// left, not even conmon. It is for a release that another replaced, kept
// for a rollback: its next start is a whole container start.
func (r *Runtime) Retire(ctx context.Context, inst *Instance) error {
	return r.stop(ctx, inst, false)
}

func (r *Runtime) stop(ctx context.Context, inst *Instance, prime bool) error {
	defer r.lock(inst.Name)()
	if _, err := r.thawLocked(ctx, inst); err != nil {
		return fmt.Errorf("stop app %s: %w", inst.Name, err)
	}
	if err := r.markStopped(inst.Name, true); err != nil {
		return fmt.Errorf("stop app %s: %w", inst.Name, err)
	}
	r.forgetNet(inst)
	conmon := r.conmonOf(ctx, inst)
	if err := r.svc.stop(ctx, inst.Name, r.cfg.StopTimeout); err != nil {
		return fmt.Errorf("stop app %s: %w", inst.Name, err)
	}
	if prime {
		// podman's own clean-up of the stopped container (conmon's exit
		// command, which conmon waits for) runs on its own: priming
		// before it ends would have the clean-up undo it.
		if err := conmon.waitGone(ctx, r.cfg.StopTimeout+10*time.Second); err != nil {
			r.cfg.Logger.Warn("apps: wait for podman's clean-up of a stopped app", "app", inst.Name, "err", err)
		}
		// Not priming only makes the next wake slower: the app is stopped.
		if err := r.svc.init(ctx, inst.Name); err != nil {
			r.cfg.Logger.Warn("apps: prime a stopped app's next start", "app", inst.Name, "err", err)
		}
	}
	r.cfg.Logger.Info("apps: stopped", "app", inst.Name, "primed", prime)
	return nil
}

// Wake makes inst serve: a frozen app is thawed (the freezer file only), a
// stopped or failed one started through the podman API service and
// awaited on its health path, as Start does (an *UnhealthyError when it
// does not answer; it is stopped again); a running one is left alone.
// Concurrent Wakes of one app wait for the first. Give it the context of
// the wake (the gateway's wake timeout), not of one request: a start cut
// short by a cancelled context may leave the app starting.
func (r *Runtime) Wake(ctx context.Context, inst *Instance) (WakeReport, error) {
	t0 := time.Now()
	defer r.lock(inst.Name)()
	thawed, err := r.thawLocked(ctx, inst)
	if err != nil {
		return WakeReport{}, fmt.Errorf("wake app %s: %w", inst.Name, err)
	}
	if thawed {
		d := time.Since(t0)
		return WakeReport{From: Frozen, Thaw: d, Total: d}, nil
	}
	state, _, err := r.state(ctx, inst)
	if err != nil {
		return WakeReport{}, fmt.Errorf("wake app %s: %w", inst.Name, err)
	}
	rep := WakeReport{From: state}
	if state == Running {
		rep.Total = time.Since(t0)
		return rep, nil
	}
	rep.Start, rep.Health, err = r.startHealthy(ctx, inst)
	rep.Total = time.Since(t0)
	if err != nil {
		var ue *UnhealthyError
		if errors.As(err, &ue) {
			return rep, err
		}
		return rep, fmt.Errorf("wake app %s: %w", inst.Name, err)
	}
	r.cfg.Logger.Info("apps: woke", "app", inst.Name, "from", state, "took", rep.Total)
	return rep, nil
}

// Remove removes inst's container, whatever its state. A container that
// is gone already is no error.
func (r *Runtime) Remove(ctx context.Context, inst *Instance) error {
	defer r.lock(inst.Name)()
	// A frozen process cannot die: thaw it first.
	if _, err := r.thawLocked(ctx, inst); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("remove app %s: %w", inst.Name, err)
	}
	r.forgetNet(inst)
	if err := r.svc.remove(ctx, inst.Name); err != nil {
		return fmt.Errorf("remove app %s: %w", inst.Name, err)
	}
	if err := r.markStopped(inst.Name, false); err != nil {
		return fmt.Errorf("remove app %s: %w", inst.Name, err)
	}
	r.cfg.Logger.Info("apps: removed", "app", inst.Name)
	return nil
}

// PruneImages removes the images no container of this runtime uses: an
// app's image stays while any of its containers (a stopped rollback
// target too) is kept.
func (r *Runtime) PruneImages(ctx context.Context) error {
	if _, err := r.podman(ctx, "image", "prune", "--all", "--force"); err != nil {
		return fmt.Errorf("prune app images: %w", err)
	}
	return nil
}

// State says what inst is doing; ErrNotFound when its container is gone.
func (r *Runtime) State(ctx context.Context, inst *Instance) (State, error) {
	defer r.lock(inst.Name)()
	s, _, err := r.state(ctx, inst)
	if err != nil {
		return "", fmt.Errorf("state of app %s: %w", inst.Name, err)
	}
	return s, nil
}

func (r *Runtime) state(ctx context.Context, inst *Instance) (State, *container, error) {
	c, err := r.svc.inspect(ctx, inst.Name)
	if err != nil {
		return "", nil, err
	}
	switch {
	case c.State.Status == "paused":
		return Frozen, c, nil
	case c.State.Running:
		fz, err := freezerOf(c.State.Pid)
		if err != nil {
			return "", c, err
		}
		inst.fz = fz
		if frozen, err := fz.frozen(); err != nil {
			return "", c, err
		} else if frozen {
			r.setNet(inst, c.State.Pid)
			return Frozen, c, nil
		}
		r.setNet(inst, c.State.Pid)
		return Running, c, nil
	case c.State.Status == "created" || c.State.Status == "configured" || c.State.Status == "initialized":
		return Stopped, c, nil
	}
	if _, err := os.Stat(r.stoppedMark(inst.Name)); err == nil {
		return Stopped, c, nil
	}
	return Failed, c, nil
}

// Get returns the instance of a project's release, made earlier by Start
// (by this Runtime or another); ErrNotFound when there is none.
func (r *Runtime) Get(ctx context.Context, project, release string) (*Instance, error) {
	name := Name(project, release)
	c, err := r.svc.inspect(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	inst := instanceOf(c.ID, name, c.Image, c.Config.Labels)
	for _, b := range c.HostConfig.PortBindings[strconv.Itoa(inst.Port)+"/tcp"] {
		inst.HostPort, _ = strconv.Atoi(b.HostPort)
	}
	return inst, nil
}

// Reconcile lists the containers of every app on this runtime's storage
// (those labelled LabelApp), running or not, so that a restarted server
// adopts them: their State says what each does.
func (r *Runtime) Reconcile(ctx context.Context) ([]*Instance, error) {
	cs, err := r.svc.list(ctx, LabelApp)
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	var insts []*Instance
	for _, c := range cs {
		if len(c.Names) == 0 {
			continue
		}
		inst := instanceOf(c.ID, c.Names[0], c.Image, c.Labels)
		for _, p := range c.Ports {
			if p.ContainerPort == inst.Port {
				inst.HostPort = p.HostPort
			}
		}
		insts = append(insts, inst)
	}
	return insts, nil
}

// instanceOf makes the Instance of a container from its labels.
func instanceOf(id, name, image string, labels map[string]string) *Instance {
	port, _ := strconv.Atoi(labels[LabelPort])
	preview, _ := strconv.Atoi(labels[LabelPreview])
	inst := &Instance{
		Name: name, ID: id, Project: labels[LabelApp], Release: labels[LabelRelease], Image: image,
		Port: port, HealthPath: labels[LabelHealthPath], Spec: labels[LabelSpec], Preview: preview,
	}
	return inst
}
