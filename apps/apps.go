// Package apps runs a project's released image as a container on this
// host (its app), and puts it to sleep in two depths: frozen (its
// processes paused by the cgroup freezer, memory kept, woken in
// milliseconds) and stopped (no process, no memory; the container is kept
// for a fast start or a rollback).
//
// It drives podman as root on a storage of its own (Config.Dir). The slow
// steps (pull, create) run the podman CLI; every step a sleeping app's
// first request waits for stays off it: a thaw writes the container's
// cgroup freezer file directly, and a start from stopped asks a podman API
// service (`podman system service` on a unix socket) that the Runtime
// keeps running, so no request pays the podman CLI's own start-up. A
// stopped app's container is left created in runc but not started
// (unless Config.NoPrime), so its wake is a `runc start`. The gateway
// reaches a running app inside its own network namespace
// (Runtime.DialContext), not through its published port's forwarder.
//
// It runs apps as root only: on a host with cgroup v1 (these machines'
// hybrid layout) rootless podman ignores memory and CPU limits and gives
// a container no cgroup of its own to freeze.
//
// Containers are found by their labels (LabelApp, LabelRelease, ...) and
// their name (Name), so a restarted server adopts them (Reconcile). A
// container publishes its port on 127.0.0.1 only, has a network of its
// own by default (Config.Network: apps cannot reach each other), runs
// without privileges on a read-only root file system (tmpfs /tmp, /run,
// /var/tmp) with memory, CPU and process limits.
//
// The app's environment (Spec.Env: runtime settings and secrets) is never
// on a command line nor in an error or log line of this package: it
// reaches podman in a 0600 env file, and every value of it is masked in
// the app's output this package returns.
//
// It knows nothing of projects beyond their names, of deployments, the
// gateway or the store.
package apps

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Labels on every container of an app.
const (
	// LabelApp holds the project's name: the label Reconcile looks for.
	LabelApp = "slipway.app"
	// LabelRelease holds the release id.
	LabelRelease = "slipway.release"
	// LabelPort holds the port the app listens on inside its container.
	LabelPort = "slipway.port"
	// LabelHealthPath holds the health check path.
	LabelHealthPath = "slipway.health-path"
	// LabelSpec holds the spec's fingerprint (Runtime.Fingerprint): a
	// container runs exactly the Spec whose fingerprint it carries.
	LabelSpec = "slipway.spec"
	// LabelEnvKeys holds the names (never the values) of Spec.Env, so
	// that an adopted app's output is masked as well.
	LabelEnvKeys = "slipway.env-keys"
	// LabelPreview holds Spec.Preview, the pull request number of a
	// preview's app (absent: the project's own app).
	LabelPreview = "slipway.preview"
)

// Defaults, filled in by Config.withDefaults and Spec.withDefaults.
const (
	DefaultPodman        = "podman"
	DefaultHealthPath    = "/"
	DefaultHealthTimeout = 30 * time.Second
	DefaultStopTimeout   = 10 * time.Second
	DefaultPidsLimit     = 1024
	// DefaultLogMaxBytes is Config.LogMaxBytes' default: 10 MiB.
	DefaultLogMaxBytes = 10 << 20
	// DefaultOutputLines is how many of an app's last output lines an
	// UnhealthyError carries.
	DefaultOutputLines = 20
)

// Config says where a Runtime keeps its containers and how it treats
// them. Zero fields take the defaults above.
type Config struct {
	// Dir holds the runtime's state: storage/ (images, containers),
	// run/ (podman's run root and the API socket), tmp/, conf/ (the
	// containers.conf every podman command gets) and stopped/ (which
	// containers were stopped on purpose). Required, absolute.
	Dir string
	// AuthFile is a containers-auth.json file (podman login's format)
	// with the credentials of the registries images are pulled from,
	// written by the caller: every pull gets it as REGISTRY_AUTH_FILE.
	// Empty: podman's default.
	AuthFile string
	// RegistryInsecure pulls over plain HTTP without verifying
	// certificates (the embedded registry on loopback).
	RegistryInsecure bool
	// Podman is the podman executable; default DefaultPodman from PATH.
	Podman string
	// HealthTimeout is how long Start and Wake wait for the health path
	// to answer 2xx or 3xx.
	HealthTimeout time.Duration
	// StopTimeout is how long an app has to exit after SIGTERM before it
	// is killed.
	StopTimeout time.Duration
	// PidsLimit caps the processes of one app (--pids-limit).
	PidsLimit int64
	// Network is how apps reach the network: NetworkIsolated (default)
	// or NetworkBridge.
	Network Network
	// NoPrime makes Stop leave a stopped app with no process at all, and
	// its Wake a whole container start through the API service (about
	// 0.6× of `podman start`). By default Stop leaves the container
	// created in the OCI runtime but not started (`podman init`, "primed"):
	// the app's own processes are gone and use no CPU, but conmon and
	// runc's init wait for the start (about 14 MB of RSS per app,
	// measured; with NetworkIsolated its network helpers too), and a Wake
	// is then only `runc start`: tens of milliseconds, about 0.2× of
	// `podman start` (make bench-runtime).
	NoPrime bool
	// LogMaxBytes bounds an app's log file (podman's k8s-file, which
	// Logs, LogSource and the server's collector read): past it conmon
	// starts the file anew. Default DefaultLogMaxBytes.
	LogMaxBytes int64
	// OnStart, when set, is called with an app's instance just before its
	// container starts (a Start, a Wake from stopped), so that a follower
	// of its output (LogSource) watches it from its first line. It runs
	// with the app's lock held: it must return at once and must not call
	// the Runtime back.
	OnStart func(*Instance)
	// Logger receives what the runtime does (never an env value); default
	// slog.Default().
	Logger *slog.Logger
}

// Network is the network mode of apps.
type Network string

const (
	// NetworkIsolated (the default) gives each app a user-mode network
	// of its own (slirp4netns, without a way to the host's loopback):
	// apps cannot reach each other, nor the host's loopback services; the
	// published port is forwarded by rootlessport. Each running app costs
	// a slirp4netns and a rootlessport process (about 10 MB of RSS); a
	// start is faster than on the bridge (no firewall rules to write).
	NetworkIsolated Network = "isolated"
	// NetworkBridge puts apps on podman's default bridge (netavark, the
	// kernel forwards the port): no process per app, but an app can
	// reach every other container on that bridge (other apps included)
	// at its address.
	NetworkBridge Network = "bridge"
)

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		return c, fmt.Errorf("apps: Config.Dir must be an absolute path, got %q", c.Dir)
	}
	if c.Podman == "" {
		c.Podman = DefaultPodman
	}
	switch c.Network {
	case "":
		c.Network = NetworkIsolated
	case NetworkBridge, NetworkIsolated:
	default:
		return c, fmt.Errorf("apps: unknown network mode %q (%s or %s)", c.Network, NetworkBridge, NetworkIsolated)
	}
	if c.HealthTimeout <= 0 {
		c.HealthTimeout = DefaultHealthTimeout
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.PidsLimit <= 0 {
		c.PidsLimit = DefaultPidsLimit
	}
	if c.LogMaxBytes <= 0 {
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Spec is what Start runs: one release of one project's app.
type Spec struct {
	// Project is the project's name (lowercase letters, digits, dashes).
	Project string
	// Release identifies the release, e.g. the deployment's id or the
	// commit: letters, digits, '.', '_' and '-'.
	Release string
	// Image is a registry reference, e.g. 127.0.0.1:8080/demo:<sha>; it
	// is pulled (with Config.AuthFile) unless the storage has it.
	Image string
	// Port is the port the app listens on inside its container. 0: the
	// image's single EXPOSEd TCP port. Slipway sets PORT in the app's
	// environment to the port used.
	Port int
	// Env is the app's runtime environment, KEY=VALUE each, secrets
	// included: never logged, masked in every output this package
	// returns. A value cannot hold a newline.
	Env []string
	// MemoryBytes caps the app's memory (--memory); 0: no limit.
	MemoryBytes int64
	// CPUs caps the app's CPU time in cores (--cpus); 0: no limit.
	CPUs float64
	// HealthPath is the path whose 2xx or 3xx answer says the app serves;
	// default DefaultHealthPath.
	HealthPath string
	// Writable gives the app a writable root file system; by default it
	// is read-only, with tmpfs on /tmp, /run and /var/tmp.
	Writable bool
	// Preview is the number of the pull request whose preview this app
	// serves, 0 for the project's own app (label LabelPreview).
	Preview int
}

var (
	projectName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	releaseName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	envKey      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (s Spec) withDefaults() (Spec, error) {
	if !projectName.MatchString(s.Project) {
		return s, fmt.Errorf("app project %q: lowercase letters, digits and dashes only", s.Project)
	}
	if !releaseName.MatchString(s.Release) {
		return s, fmt.Errorf("app %s: release %q: letters, digits, '.', '_' and '-' only", s.Project, s.Release)
	}
	if s.Image == "" {
		return s, fmt.Errorf("app %s: no image", s.Project)
	}
	if s.Port < 0 || s.Port > 65535 {
		return s, fmt.Errorf("app %s: port %d is out of range", s.Project, s.Port)
	}
	if s.Preview < 0 {
		return s, fmt.Errorf("app %s: invalid pull request number %d", s.Project, s.Preview)
	}
	if s.MemoryBytes < 0 || s.CPUs < 0 {
		return s, fmt.Errorf("app %s: negative memory or CPU limit", s.Project)
	}
	if s.HealthPath == "" {
		s.HealthPath = DefaultHealthPath
	}
	if !strings.HasPrefix(s.HealthPath, "/") {
		return s, fmt.Errorf("app %s: health path %q must start with /", s.Project, s.HealthPath)
	}
	for i, kv := range s.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !envKey.MatchString(k) {
			// The entry may be a secret: say which one, not what it holds.
			return s, fmt.Errorf("app %s: environment entry %d is not KEY=VALUE with a valid name", s.Project, i+1)
		}
		if k == "PORT" {
			return s, fmt.Errorf("app %s: PORT is set by Slipway (set Spec.Port instead)", s.Project)
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			return s, fmt.Errorf("app %s: the value of %s holds a line break or NUL, which cannot be passed", s.Project, k)
		}
	}
	return s, nil
}

// Name is the container name of a project's release:
// slipway-app-<project>-<release>.
func Name(project, release string) string {
	return "slipway-app-" + project + "-" + release
}

// Instance is one container of an app, made by Start or found by
// Reconcile. Its methods' callers are the Runtime's methods.
type Instance struct {
	// Name is the container's name (see Name); ID its podman id.
	Name, ID string
	// Project, Release and Image are those of the Spec.
	Project, Release, Image string
	// Port is the app's port inside the container, HostPort where it is
	// published on 127.0.0.1.
	Port, HostPort int
	// HealthPath is the Spec's health check path.
	HealthPath string
	// Spec is the fingerprint of the Spec it runs (Runtime.Fingerprint).
	Spec string
	// Preview is the Spec's pull request number (0: the project's app).
	Preview int

	// fz is the container's freezer, once found; guarded by the
	// Runtime's lock of Name.
	fz freezer
}

// Addr is where the app answers: 127.0.0.1:<HostPort>.
func (i *Instance) Addr() string { return fmt.Sprintf("127.0.0.1:%d", i.HostPort) }

// State is what an app's container is doing.
type State string

const (
	// Running: its processes run and it serves.
	Running State = "running"
	// Frozen: its processes are paused by the cgroup freezer, their memory
	// kept; Wake thaws them.
	Frozen State = "frozen"
	// Stopped: it has no process, on purpose (Stop), or it was created
	// and never started; Wake starts it.
	Stopped State = "stopped"
	// Failed: its processes exited without Stop asking (a crash, an
	// out-of-memory kill); Wake starts it again.
	Failed State = "failed"
)

// ErrPort says Start cannot tell the app's port: the image EXPOSEs none
// or several, and Spec.Port is 0.
var ErrPort = errors.New("set the port the app listens on")

// ErrNotFound says an app's container does not exist (any more).
var ErrNotFound = errors.New("no such app container")

// UnhealthyError says an app did not answer its health path with 2xx or
// 3xx in time, or exited while starting. Output holds its last lines of
// output, env values masked: what a 504 page or a failed release shows.
type UnhealthyError struct {
	// Name is the container's name.
	Name string
	// Reason says what went wrong, e.g. "it exited with status 3" or
	// "GET / answered 500 for 30s".
	Reason string
	// Output is the app's last lines of output (stdout and stderr).
	Output []string
	// Err is the context's error when the wait for the app was cut
	// short (a wake's timeout), else nil: errors.Is sees it.
	Err error
}

// Unwrap returns Err.
func (e *UnhealthyError) Unwrap() error { return e.Err }

func (e *UnhealthyError) Error() string {
	msg := fmt.Sprintf("app %s is not healthy: %s", e.Name, e.Reason)
	if len(e.Output) > 0 {
		msg += "; its last output:\n" + strings.Join(e.Output, "\n")
	}
	return msg
}

// WakeReport says what a Wake (or a StartTimed) did and how long its
// phases took, for the gateway's Server-Timing header.
type WakeReport struct {
	// From is the state the app was in; "" for a StartTimed.
	From State
	// Thaw is the time the freezer took (From Frozen).
	Thaw time.Duration
	// Pull is the time StartTimed took to find the image, pulling it
	// unless the storage had it; Create the time it took to create the
	// container.
	Pull, Create time.Duration
	// Start is the time podman took to start the container, Health the
	// time until the health path answered (From Stopped or Failed).
	Start, Health time.Duration
	// Total is the whole Wake.
	Total time.Duration
}
