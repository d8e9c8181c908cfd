package apps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Runtime runs apps as root podman containers on its own storage. It is
// safe for concurrent use; operations on one container are serialized.
type Runtime struct {
	cfg   Config
	conf  string // containers.conf
	svc   *service
	locks sync.Map // container name → *sync.Mutex
	nets  sync.Map // a running app's Addr → netTarget (DialContext)
	// specKey keys the specs' fingerprints (Fingerprint).
	specKey []byte
}

// New checks podman, writes the runtime's containers.conf and starts its
// podman API service. Close stops the service; the apps keep running.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("apps: the app runtime runs as root (rootless apps are not supported on this host yet)")
	}
	bin, err := exec.LookPath(cfg.Podman)
	if err != nil {
		return nil, fmt.Errorf("apps: %s not found (apt-get install podman runc): %w", cfg.Podman, err)
	}
	cfg.Podman = bin
	r := &Runtime{cfg: cfg, conf: filepath.Join(cfg.Dir, "conf", "containers.conf")}
	for _, d := range []string{"storage", "run", "tmp", "conf", "stopped"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("apps: %w", err)
		}
	}
	if err := os.MkdirAll(r.runRoot(), 0o700); err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	if err := os.WriteFile(r.conf, []byte(r.containersConf()), 0o600); err != nil {
		return nil, fmt.Errorf("apps: write containers.conf: %w", err)
	}
	if r.specKey, err = loadSpecKey(filepath.Join(cfg.Dir, "spec.key")); err != nil {
		return nil, fmt.Errorf("apps: %w", err)
	}
	r.svc = newService(r)
	if err := r.svc.ensure(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Close stops the podman API service and waits for it. The apps' containers
// keep running (a new Runtime adopts them). Safe to call twice.
func (r *Runtime) Close() error {
	r.svc.close()
	return nil
}

// MaxRunRoot is the longest run root podman accepts.
const MaxRunRoot = 50

// runRoot is podman's run root (its sockets and transient state): Dir/run,
// or, when that is longer than podman accepts (a data directory deep in
// the file system), a directory under /run named by a hash of Dir, the
// same for every Runtime on Dir.
func (r *Runtime) runRoot() string { return runRootFor(r.cfg.Dir) }

func runRootFor(dir string) string {
	if run := filepath.Join(dir, "run"); len(run) <= MaxRunRoot {
		return run
	}
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join("/run/slipway-apps", hex.EncodeToString(sum[:8]))
}

// containersConf is this runtime's podman configuration. These machines
// lack CAP_SYS_RESOURCE, so podman's default ulimits cannot be applied
// (runc: "error setting rlimit type 7"), and crun does not work with the
// hybrid cgroup layout: hence no default ulimits, and runc. cgroupfs: no
// systemd is needed, and every container's cgroup is
// /libpod_parent/libpod-<id> in each hierarchy.
func (r *Runtime) containersConf() string {
	tmp := filepath.Join(r.cfg.Dir, "tmp")
	return fmt.Sprintf(`# Written by Slipway's app runtime; rewritten on every start.
[containers]
default_ulimits = []
log_driver = "k8s-file"
log_size_max = 10485760

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = %q
image_copy_tmp_dir = %q
`, filepath.Join(tmp, "libpod"), tmp)
}

// podmanCommand is a podman command on this runtime's storage; its
// environment holds the configuration and the registry auth file only.
func (r *Runtime) podmanCommand(ctx context.Context, args ...string) *exec.Cmd {
	global := []string{"--root", filepath.Join(r.cfg.Dir, "storage"), "--runroot", r.runRoot(), "--storage-driver", "overlay"}
	cmd := exec.CommandContext(ctx, r.cfg.Podman, append(global, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CONTAINERS_CONF=" + r.conf, "TMPDIR=" + filepath.Join(r.cfg.Dir, "tmp")}
	if r.cfg.AuthFile != "" {
		cmd.Env = append(cmd.Env, "REGISTRY_AUTH_FILE="+r.cfg.AuthFile)
	}
	return cmd
}

// podman runs a podman command and returns its standard output; its error
// carries the end of its standard error.
func (r *Runtime) podman(ctx context.Context, args ...string) ([]byte, error) {
	cmd := r.podmanCommand(ctx, args...)
	stderr := &tailBuffer{max: 1024}
	cmd.Stderr = stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("podman %s: %v: %s", args[0], err, stderr.String())
	}
	return out, nil
}

// lock serializes the operations on the container name.
func (r *Runtime) lock(name string) func() {
	m, _ := r.locks.LoadOrStore(name, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// ensureImage pulls image unless the storage has it.
func (r *Runtime) ensureImage(ctx context.Context, image string) error {
	if err := r.podmanCommand(ctx, "image", "exists", image).Run(); err == nil {
		return nil
	}
	args := []string{"pull", "--quiet"}
	if r.cfg.RegistryInsecure {
		args = append(args, "--tls-verify=false")
	}
	if _, err := r.podman(ctx, append(args, image)...); err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	return nil
}

// imagePort returns the image's single EXPOSEd TCP port.
func (r *Runtime) imagePort(ctx context.Context, image string) (int, error) {
	out, err := r.podman(ctx, "image", "inspect", "--format", "{{json .Config.ExposedPorts}}", image)
	if err != nil {
		return 0, err
	}
	var exposed map[string]struct{}
	if s := strings.TrimSpace(string(out)); s != "" && s != "null" {
		if err := json.Unmarshal([]byte(s), &exposed); err != nil {
			return 0, fmt.Errorf("image %s: exposed ports %q: %w", image, s, err)
		}
	}
	var ports []int
	for p := range exposed {
		num, proto, _ := strings.Cut(p, "/")
		if n, err := strconv.Atoi(num); err == nil && (proto == "" || proto == "tcp") {
			ports = append(ports, n)
		}
	}
	switch len(ports) {
	case 0:
		return 0, fmt.Errorf("the image exposes no TCP port (EXPOSE) and the app has no port set: %w", ErrPort)
	case 1:
		return ports[0], nil
	default:
		return 0, fmt.Errorf("the image exposes %d ports %v and the app has no port set to pick the one that serves HTTP: %w", len(ports), ports, ErrPort)
	}
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stoppedMark is the file that says the container name was stopped on
// purpose (Stopped, not Failed).
func (r *Runtime) stoppedMark(name string) string {
	return filepath.Join(r.cfg.Dir, "stopped", name)
}

func (r *Runtime) markStopped(name string, stopped bool) error {
	if !stopped {
		if err := os.Remove(r.stoppedMark(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(r.stoppedMark(name), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}
