package apps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const secretValue = "s3cret-Value-42"

// TestLifecycle runs one app through every state: start (200 on its port,
// its environment, its limits), freeze (no answer), thaw, stop (no process
// left), wake from stopped, remove (nothing left).
func TestLifecycle(t *testing.T) {
	imgs := testImages(t)
	r := newRuntime(t, cleanDir(t))
	ctx := t.Context()
	inst, err := r.Start(ctx, Spec{
		Project: "demo", Release: "r1", Image: imgs.app,
		Env:         []string{"GREETING=" + secretValue},
		MemoryBytes: 64 << 20, CPUs: 0.5, HealthPath: "/index.html",
	})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Port != 8000 || inst.Name != "slipway-app-demo-r1" {
		t.Errorf("Start = port %d, name %q; want 8000 (the image's EXPOSE), slipway-app-demo-r1", inst.Port, inst.Name)
	}
	if body := mustGet(t, inst, "/"); body != "ok\n" {
		t.Errorf("GET / = %q, want %q", body, "ok\n")
	}
	if body := mustGet(t, inst, "/cgi-bin/env"); !strings.Contains(body, "greeting="+secretValue+" port=8000") {
		t.Errorf("GET /cgi-bin/env = %q; want the app's GREETING and PORT=8000", body)
	}
	wantState(t, r, inst, Running)

	t.Run("limits", func(t *testing.T) { checkLimits(t, r, inst) })
	t.Run("freeze", func(t *testing.T) { checkFreeze(t, r, inst) })
	t.Run("stop and wake", func(t *testing.T) { checkStopWake(t, r, inst) })
	t.Run("dial inside its network namespace", func(t *testing.T) { checkDial(t, r, inst) })
	t.Run("stop without priming", func(t *testing.T) { checkNoPrime(t, r, inst) })
	t.Run("retire", func(t *testing.T) { checkRetire(t, r, inst) })
	t.Run("primed, across a restart", func(st *testing.T) { r = checkPrimedRestart(st, t, r, inst) })
	t.Run("remove", func(t *testing.T) { checkRemove(t, r, inst) })
}

func checkLimits(t *testing.T, r *Runtime, inst *Instance) {
	got := inspectField(t, r, inst.Name, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.ReadonlyRootfs}}")
	if want := fmt.Sprintf("%d 500000000 %d true", 64<<20, DefaultPidsLimit); got != want {
		t.Errorf("podman inspect memory, CPUs, pids, read-only = %q, want %q", got, want)
	}
	if ports := inspectField(t, r, inst.Name, "{{json .HostConfig.PortBindings}}"); !strings.Contains(ports, `"HostIp":"127.0.0.1"`) {
		t.Errorf("port bindings %s: want 127.0.0.1 only", ports)
	}
	// The kernel enforces them: the container's memory cgroup.
	cg := inspectField(t, r, inst.Name, "{{.State.CgroupPath}}")
	b, err := os.ReadFile(filepath.Join(cgroupRoot, "memory", cg, "memory.limit_in_bytes"))
	if err != nil {
		b, err = os.ReadFile(filepath.Join(cgroupRoot, cg, "memory.max")) // cgroup v2
	}
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(64<<20) {
		t.Errorf("memory cgroup limit = %q, %v; want %d", b, err, 64<<20)
	}
	// The environment never was on a command line.
	if cmd := inspectField(t, r, inst.Name, "{{.Config.CreateCommand}}"); strings.Contains(cmd, secretValue) || !strings.Contains(cmd, "--env-file") {
		t.Errorf("podman create's command line %q holds the env value, or no --env-file", cmd)
	}
}

func checkFreeze(t *testing.T, r *Runtime, inst *Instance) {
	ctx := t.Context()
	if err := r.Freeze(ctx, inst); err != nil {
		t.Fatal(err)
	}
	wantState(t, r, inst, Frozen)
	cg := inspectField(t, r, inst.Name, "{{.State.CgroupPath}}")
	if b, err := os.ReadFile(filepath.Join(cgroupRoot, "freezer", cg, "freezer.state")); err != nil || strings.TrimSpace(string(b)) != "FROZEN" {
		t.Errorf("freezer.state = %q, %v; want FROZEN", b, err)
	}
	if code, _, err := get("http://"+inst.Addr()+"/", 300*time.Millisecond); err == nil {
		t.Errorf("GET / of a frozen app = %d; want no answer (client timeout)", code)
	}
	rep, err := r.Wake(ctx, inst)
	if err != nil || rep.From != Frozen {
		t.Fatalf("Wake = %+v, %v; want From frozen", rep, err)
	}
	mustGet(t, inst, "/")
	wantState(t, r, inst, Running)
	// Freeze, then Thaw alone.
	if err := r.Freeze(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := r.Thaw(ctx, inst); err != nil {
		t.Fatal(err)
	}
	mustGet(t, inst, "/")
}

func checkStopWake(t *testing.T, r *Runtime, inst *Instance) {
	ctx := t.Context()
	pid := inspectField(t, r, inst.Name, "{{.State.Pid}}")
	// Stop a frozen app: it is thawed so that it can exit.
	if err := r.Freeze(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx, inst); err != nil {
		t.Fatal(err)
	}
	wantState(t, r, inst, Stopped)
	wantPrimed(t, r, inst, true)
	if !processGone(pid) {
		t.Errorf("the app's process %s is still there after Stop", pid)
	}
	if _, _, err := get("http://"+inst.Addr()+"/", time.Second); err == nil {
		t.Error("a stopped app answered")
	}
	rep, err := r.Wake(ctx, inst)
	if err != nil || rep.From != Stopped || rep.Start <= 0 {
		t.Fatalf("Wake = %+v, %v; want From stopped with a start time", rep, err)
	}
	mustGet(t, inst, "/")
	wantState(t, r, inst, Running)
	// A second Wake of a running app does nothing.
	if rep, err := r.Wake(ctx, inst); err != nil || rep.From != Running {
		t.Errorf("Wake of a running app = %+v, %v; want From running", rep, err)
	}
	// Concurrent Wakes of a stopped app: one starts it, the others wait
	// for it and find it running.
	if err := r.Stop(ctx, inst); err != nil {
		t.Fatal(err)
	}
	reps := make(chan WakeReport, 8)
	var wg sync.WaitGroup
	for range cap(reps) {
		wg.Go(func() {
			rep, err := r.Wake(ctx, inst)
			if err != nil {
				t.Error(err)
			}
			reps <- rep
		})
	}
	wg.Wait()
	close(reps)
	from := map[State]int{}
	for rep := range reps {
		from[rep.From]++
	}
	if from[Stopped] != 1 || from[Running] != cap(reps)-1 {
		t.Errorf("8 concurrent Wakes came from %v; want 1 stopped, 7 running", from)
	}
	mustGet(t, inst, "/")
}

// wantPrimed checks podman's status of a stopped app: created in runc
// (primed) or exited.
func wantPrimed(t *testing.T, r *Runtime, inst *Instance, primed bool) {
	t.Helper()
	status := inspectField(t, r, inst.Name, "{{.State.Status}}")
	// podman 4.3 says either, for a container created in runc.
	if got := status == "initialized" || status == "created"; got != primed {
		t.Errorf("podman's status of a stopped app = %q; primed (initialized or created): %v, want %v", status, got, primed)
	}
}

// checkNoPrime: with Config.NoPrime, a stopped app keeps no process, not
// even conmon, and Wake starts it.
func checkNoPrime(t *testing.T, r *Runtime, inst *Instance) {
	ctx := t.Context()
	r.cfg.NoPrime = true
	defer func() { r.cfg.NoPrime = false }()
	pid := inspectField(t, r, inst.Name, "{{.State.Pid}}")
	conmon := inspectField(t, r, inst.Name, "{{.State.ConmonPid}}")
	if err := r.Stop(ctx, inst); err != nil {
		t.Fatal(err)
	}
	wantState(t, r, inst, Stopped)
	wantPrimed(t, r, inst, false)
	if !processGone(pid) || !processGone(conmon) {
		t.Errorf("the app's process %s or its conmon %s is still there after Stop", pid, conmon)
	}
	if _, _, err := get("http://"+inst.Addr()+"/", time.Second); err == nil {
		t.Error("a stopped app answered")
	}
	if rep, err := r.Wake(ctx, inst); err != nil || rep.From != Stopped {
		t.Fatalf("Wake = %+v, %v; want From stopped", rep, err)
	}
	mustGet(t, inst, "/")
	wantState(t, r, inst, Running)
}

// checkRetire: a retired app is stopped and not primed, whatever
// Config.NoPrime says, and wakes.
func checkRetire(t *testing.T, r *Runtime, inst *Instance) {
	ctx := t.Context()
	if err := r.Retire(ctx, inst); err != nil {
		t.Fatal(err)
	}
	wantState(t, r, inst, Stopped)
	wantPrimed(t, r, inst, false)
	if rep, err := r.Wake(ctx, inst); err != nil || rep.From != Stopped {
		t.Fatalf("Wake = %+v, %v; want From stopped", rep, err)
	}
	mustGet(t, inst, "/")
}

// checkPrimedRestart: an app stopped (primed) by one Runtime, which is
// then closed, is found stopped by a new one on the same directory (a
// restarted server), which wakes it with its limits, stops it cleanly,
// primes it again and wakes it. It returns the new Runtime, made for
// parent.
func checkPrimedRestart(t, parent *testing.T, r *Runtime, inst *Instance) *Runtime {
	ctx := t.Context()
	if err := r.Stop(ctx, inst); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r2 := newRuntimeWith(parent, Config{Dir: r.cfg.Dir})
	insts, err := r2.Reconcile(ctx)
	if err != nil || len(insts) != 1 || insts[0].Name != inst.Name || insts[0].HostPort != inst.HostPort {
		t.Fatalf("Reconcile = %+v, %v; want %s on port %d", insts, err, inst.Name, inst.HostPort)
	}
	adopted := insts[0]
	wantState(t, r2, adopted, Stopped)
	if rep, err := r2.Wake(ctx, adopted); err != nil || rep.From != Stopped {
		t.Fatalf("Wake after a restart = %+v, %v; want From stopped", rep, err)
	}
	mustGet(t, adopted, "/")
	cg := inspectField(t, r2, inst.Name, "{{.State.CgroupPath}}")
	b, err := os.ReadFile(filepath.Join(cgroupRoot, "memory", cg, "memory.limit_in_bytes"))
	if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(64<<20) {
		t.Errorf("memory limit of the woken app: %q, %v; want %d", b, err, 64<<20)
	}
	pid := inspectField(t, r2, inst.Name, "{{.State.Pid}}")
	if err := r2.Stop(ctx, adopted); err != nil {
		t.Fatal(err)
	}
	wantState(t, r2, adopted, Stopped)
	wantPrimed(t, r2, adopted, true)
	if !processGone(pid) {
		t.Errorf("the app's process %s is still there after Stop", pid)
	}
	if rep, err := r2.Wake(ctx, adopted); err != nil || rep.From != Stopped {
		t.Fatalf("second Wake after a restart = %+v, %v; want From stopped", rep, err)
	}
	mustGet(t, adopted, "/")
	return r2
}

// checkDial: DialContext reaches the app inside its own network namespace
// (the peer is its port there, not the published one), also after a
// stop and a wake (a new namespace); a stopped app is dialled no more.
func checkDial(t *testing.T, r *Runtime, inst *Instance) {
	ctx := t.Context()
	dialGet := func() {
		t.Helper()
		c, err := r.DialContext(ctx, "tcp", inst.Addr())
		if err != nil {
			t.Fatalf("DialContext(%s): %v", inst.Addr(), err)
		}
		defer c.Close()
		if got, want := c.RemoteAddr().String(), fmt.Sprintf("127.0.0.1:%d", inst.Port); got != want {
			t.Errorf("DialContext(%s) reached %s, want %s (inside the app's namespace)", inst.Addr(), got, want)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: app\r\n\r\n")
		b, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(b), "HTTP/1.") || !strings.HasSuffix(string(b), "ok\n") {
			t.Errorf("GET / over DialContext's connection = %q, want the app's ok", b)
		}
	}
	dialGet()
	if err := r.Stop(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.nets.Load(inst.Addr()); ok {
		t.Error("a stopped app is still dialled inside its namespace")
	}
	if _, err := r.Wake(ctx, inst); err != nil {
		t.Fatal(err)
	}
	dialGet()
	// Another address is dialled as it is.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := r.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil || c.RemoteAddr().String() != ln.Addr().String() {
		t.Fatalf("DialContext of another address: %v, %v", c, err)
	}
	c.Close()
}

func checkRemove(t *testing.T, r *Runtime, inst *Instance) {
	ctx := t.Context()
	pid := inspectField(t, r, inst.Name, "{{.State.Pid}}")
	if err := r.Freeze(ctx, inst); err != nil { // a frozen app goes too
		t.Fatal(err)
	}
	if err := r.Remove(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if !processGone(pid) {
		t.Errorf("the app's process %s is still there after Remove", pid)
	}
	if _, err := r.State(ctx, inst); !errors.Is(err, ErrNotFound) {
		t.Errorf("State after Remove: %v, want ErrNotFound", err)
	}
	if insts, err := r.Reconcile(ctx); err != nil || len(insts) != 0 {
		t.Errorf("Reconcile after Remove = %d apps, %v; want none", len(insts), err)
	}
	if err := r.Remove(ctx, inst); err != nil {
		t.Errorf("Remove twice: %v", err)
	}
	if err := r.PruneImages(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := r.podman(ctx, "images", "--quiet"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("images after Remove and PruneImages = %q, %v; want none", out, err)
	}
}

// TestUnhealthyApp: an app that exits while starting fails Start with its
// output (env values masked) and leaves nothing behind.
func TestUnhealthyApp(t *testing.T) {
	imgs := testImages(t)
	r := newRuntime(t, cleanDir(t))
	_, err := r.Start(t.Context(), Spec{Project: "demo", Release: "bad1", Image: imgs.bad,
		Env: []string{"DATABASE_URL=postgres://app:" + secretValue + "@db/app"}})
	var ue *UnhealthyError
	if !errors.As(err, &ue) {
		t.Fatalf("Start of an app that exits = %v; want an *UnhealthyError", err)
	}
	out := strings.Join(ue.Output, "\n")
	if !strings.Contains(ue.Reason, "exited with status 3") || !strings.Contains(out, "booting bad app") ||
		!strings.Contains(out, "fatal: cannot reach the database at") {
		t.Errorf("UnhealthyError = %q; want the exit status and both output lines", err)
	}
	if strings.Contains(err.Error(), secretValue) || !strings.Contains(out, "[redacted]") {
		t.Errorf("UnhealthyError = %q; want the env value masked", err)
	}
	if insts, err := r.Reconcile(t.Context()); err != nil || len(insts) != 0 {
		t.Errorf("after a failed Start, Reconcile = %d apps, %v; want none", len(insts), err)
	}
	if out, err := r.podman(t.Context(), "ps", "--all", "--quiet"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("podman ps --all = %q, %v; want no container", out, err)
	}
}

// TestStartCutShort: a Start whose context ends before the app answers
// (a wake's timeout) fails with the app's output and the context's
// error, and leaves nothing behind.
func TestStartCutShort(t *testing.T) {
	imgs := testImages(t)
	r := newRuntime(t, cleanDir(t))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := r.Start(ctx, Spec{Project: "demo", Release: "silent1", Image: imgs.silent})
	var ue *UnhealthyError
	if !errors.As(err, &ue) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start cut short = %v; want an *UnhealthyError wrapping the context's deadline", err)
	}
	if out := strings.Join(ue.Output, "\n"); !strings.Contains(out, "waiting for a database that never answers") {
		t.Errorf("UnhealthyError.Output = %q; want the app's output line", out)
	}
	if insts, err := r.Reconcile(t.Context()); err != nil || len(insts) != 0 {
		t.Errorf("after a Start cut short, Reconcile = %d apps, %v; want none", len(insts), err)
	}
}

// TestStartRefuses: what Start refuses, before running anything.
func TestStartRefuses(t *testing.T) {
	imgs := testImages(t)
	r := newRuntime(t, cleanDir(t))
	for _, c := range []struct {
		name string
		spec Spec
		want string
	}{
		{"no EXPOSE", Spec{Project: "demo", Release: "np", Image: imgs.noPort}, "the image exposes no TCP port (EXPOSE) and the app has no port set"},
		{"PORT in env", Spec{Project: "demo", Release: "p", Image: imgs.app, Env: []string{"PORT=1"}}, "PORT is set by Slipway"},
		{"bad env", Spec{Project: "demo", Release: "e", Image: imgs.app, Env: []string{secretValue}}, "entry 1 is not KEY=VALUE"},
		{"bad project", Spec{Project: "Demo", Release: "r", Image: imgs.app}, "lowercase"},
		{"missing image", Spec{Project: "demo", Release: "m", Image: imgs.app + "-missing"}, "pull"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.Start(t.Context(), c.spec)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), secretValue) {
				t.Errorf("Start = %v; want an error saying %q (and no env value)", err, c.want)
			}
		})
	}
	if _, err := r.Start(t.Context(), Spec{Project: "demo", Release: "np", Image: imgs.noPort}); !errors.Is(err, ErrPort) {
		t.Errorf("Start of an image without EXPOSE = %v, want ErrPort", err)
	}
	// With PORT set, the image without EXPOSE serves.
	inst, err := r.Start(t.Context(), Spec{Project: "demo", Release: "np2", Image: imgs.noPort, Port: 9000})
	if err != nil {
		t.Fatal(err)
	}
	if body := mustGet(t, inst, "/cgi-bin/env"); !strings.Contains(body, "port=9000") {
		t.Errorf("GET /cgi-bin/env = %q, want port=9000", body)
	}
	if _, err := r.Start(t.Context(), Spec{Project: "demo", Release: "np2", Image: imgs.noPort, Port: 9000}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("Start of the same release again = %v; want 'exists already'", err)
	}
}

// TestReconcile: a new Runtime on the same directory (a restarted server)
// adopts a running app and a stopped one.
func TestReconcile(t *testing.T) {
	imgs := testImages(t)
	dir := cleanDir(t)
	r1 := newRuntime(t, dir)
	ctx := t.Context()
	running, err := r1.Start(ctx, Spec{Project: "demo", Release: "a", Image: imgs.app, Env: []string{"GREETING=" + secretValue}})
	if err != nil {
		t.Fatal(err)
	}
	stopped, err := r1.Start(ctx, Spec{Project: "other", Release: "b", Image: imgs.app, Preview: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.Stop(ctx, stopped); err != nil {
		t.Fatal(err)
	}
	r1.Close()

	r2 := newRuntime(t, dir)
	insts, err := r2.Reconcile(ctx)
	if err != nil || len(insts) != 2 {
		t.Fatalf("Reconcile = %d apps, %v; want 2", len(insts), err)
	}
	byName := map[string]*Instance{}
	for _, i := range insts {
		byName[i.Name] = i
	}
	a, b := byName[running.Name], byName[stopped.Name]
	if a == nil || b == nil || a.HostPort != running.HostPort || a.Port != 8000 || a.Project != "demo" || a.Release != "a" || a.HealthPath != "/" ||
		a.Preview != 0 || b.Preview != 5 {
		t.Fatalf("Reconcile = %+v; want %+v and %s", insts, running, stopped.Name)
	}
	wantState(t, r2, a, Running)
	wantState(t, r2, b, Stopped)
	mustGet(t, a, "/")
	if err := r2.Freeze(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Wake(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Wake(ctx, b); err != nil {
		t.Fatal(err)
	}
	mustGet(t, b, "/")
	// The API service killed under the runtime: the next call starts it
	// again.
	r2.svc.mu.Lock()
	svc, done := r2.svc.cmd, r2.svc.done
	r2.svc.mu.Unlock()
	if err := svc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	wantState(t, r2, a, Running) // maybe before the runtime saw it exit
	<-done
	if got, err := r2.Get(ctx, "demo", "a"); err != nil || got.HostPort != running.HostPort {
		t.Errorf("Get = %+v, %v; want host port %d", got, err, running.HostPort)
	}
	path, err := r2.LogPath(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil {
		t.Fatal(err)
	} else if l, ok := ParseLogLine(strings.SplitN(string(b), "\n", 2)[0]); !ok || l.Stream != "stdout" || l.Text != "app listening on 8000" {
		t.Errorf("the log file's first line = %+v, %v; want stdout's 'app listening on 8000'", l, ok)
	}
	if err := r2.PruneImages(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := r2.podman(ctx, "images", "--quiet"); err != nil || strings.TrimSpace(string(out)) == "" {
		t.Errorf("images after PruneImages = %q, %v; want the apps' image kept", out, err)
	}
	lines, err := r2.Logs(ctx, a, 5)
	all := strings.Join(lines, "\n")
	if err != nil || !strings.Contains(all, "app listening on 8000") || !strings.Contains(all, "greeting is [redacted]") || strings.Contains(all, secretValue) {
		t.Errorf("Logs = %q, %v; want the app's lines, its env value masked", lines, err)
	}
}

// TestIsolatedNetwork: with NetworkIsolated (the default), an app serves on its
// 127.0.0.1 port, reaches the outside through slirp4netns, but cannot
// reach another app: neither through the host's loopback (slirp's
// 10.0.2.2) nor through the host's own address.
func TestIsolatedNetwork(t *testing.T) {
	imgs := testImages(t)
	r := newRuntime(t, cleanDir(t)) // isolated: the default
	ctx := t.Context()
	a, err := r.Start(ctx, Spec{Project: "a", Release: "1", Image: imgs.app})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Start(ctx, Spec{Project: "b", Release: "1", Image: imgs.app})
	if err != nil {
		t.Fatal(err)
	}
	mustGet(t, a, "/")
	mustGet(t, b, "/")
	targets := []string{fmt.Sprintf("10.0.2.2 %d", b.HostPort)}
	if ip := hostAddress(t); ip != "" {
		targets = append(targets, fmt.Sprintf("%s %d", ip, b.HostPort))
	}
	for _, target := range targets {
		out, _ := r.podman(ctx, "exec", a.Name, "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 `+target)
		if strings.Contains(string(out), "200 OK") {
			t.Errorf("app a reached app b at %s: %q", target, out)
		}
	}
	// The same request to itself, inside its network, works: the check
	// above can fail.
	if out, err := r.podman(ctx, "exec", a.Name, "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 127.0.0.1 8000`); err != nil || !strings.Contains(string(out), "200 OK") {
		t.Errorf("app a asking itself = %q, %v; want 200 OK", out, err)
	}
	// Wake from stopped works in this mode too.
	if err := r.Stop(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Wake(ctx, a); err != nil {
		t.Fatal(err)
	}
	mustGet(t, a, "/")
}

// hostAddress returns an IPv4 address of this host other than loopback.
func hostAddress(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil && !strings.HasPrefix(ipn.IP.String(), "10.88.") {
			return ipn.IP.String()
		}
	}
	return ""
}

// Find returns the container that runs a spec as it is, whatever its
// release (a rollback reuses it); another environment or setting is
// another spec; the fingerprint label tells nothing of the environment.
func TestFind(t *testing.T) {
	imgs := testImages(t)
	r := newRuntime(t, cleanDir(t))
	spec := Spec{Project: "demo", Release: "one", Image: imgs.app, Env: []string{"SECRET=" + secretValue, "A=1"}, MemoryBytes: 64 << 20}
	inst, err := r.Start(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	later := spec
	later.Release = "two"
	later.Env = []string{"A=1", "SECRET=" + secretValue} // another order, same environment
	found, err := r.Find(t.Context(), later)
	if err != nil || found.Name != inst.Name || found.HostPort != inst.HostPort {
		t.Fatalf("Find of the same spec under another release = %+v, %v; want %s", found, err, inst.Name)
	}
	for name, change := range map[string]func(*Spec){
		"env":    func(s *Spec) { s.Env = []string{"A=2", "SECRET=" + secretValue} },
		"memory": func(s *Spec) { s.MemoryBytes = 128 << 20 },
		"health": func(s *Spec) { s.HealthPath = "/cgi-bin/env" },
	} {
		other := later
		change(&other)
		if _, err := r.Find(t.Context(), other); !errors.Is(err, ErrNotFound) {
			t.Errorf("Find with another %s = %v, want ErrNotFound", name, err)
		}
	}
	out, err := r.podman(t.Context(), "inspect", "--format", "{{json .Config.Labels}}", inst.Name)
	if err != nil || !strings.Contains(string(out), LabelSpec) || strings.Contains(string(out), secretValue) {
		t.Errorf("labels %s (%v): want a fingerprint and no env value", out, err)
	}
}
