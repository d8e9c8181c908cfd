package slipway

import (
	"context"
	"encoding/json"
	"math"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
)

// AppSettings is how a project's app runs: its resource limits, its health
// check, when it sleeps and the port it listens on. Zero fields take the
// defaults (Effective), so a project that sets nothing runs with them and a
// change of a default reaches it.
type AppSettings struct {
	// MemoryBytes is the app container's memory limit (podman --memory);
	// 0 means DefaultAppMemoryBytes.
	MemoryBytes int64 `json:"memoryBytes"`
	// CPUs is how many CPUs the app may use (podman --cpus); 0 means
	// DefaultAppCPUs.
	CPUs float64 `json:"cpus"`
	// HealthPath is the path a GET must answer below 400 for the app to
	// count as healthy; "" means DefaultAppHealthPath.
	HealthPath string `json:"healthPath"`
	// IdleTimeout is how long the app runs without a request or an open
	// connection before it is frozen, in whole seconds; 0 means
	// DefaultAppIdleTimeout.
	IdleTimeout time.Duration `json:"-"`
	// StopAfter is how long the app stays idle before it is stopped (at
	// least IdleTimeout), in whole seconds; 0 means DefaultAppStopAfter.
	StopAfter time.Duration `json:"-"`
	// Port is the port the app listens on, given to it as PORT; 0 means
	// the image's single EXPOSE.
	Port int `json:"port"`
}

// The app settings of a project that sets none, and their bounds.
const (
	DefaultAppMemoryBytes = 256 << 20 // 256 MiB
	DefaultAppCPUs        = 1.0
	DefaultAppHealthPath  = "/"
	DefaultAppIdleTimeout = 5 * time.Minute
	DefaultAppStopAfter   = time.Hour
	// MinAppMemoryBytes is podman's smallest --memory (6 MiB).
	MinAppMemoryBytes = 6 << 20
	// MaxAppCPUs caps --cpus where the host's CPU count is smaller.
	MaxAppCPUs = 1024
	// MinAppIdleTimeout is the shortest idle timeout: shorter ones would
	// freeze an app between the requests of one page load.
	MinAppIdleTimeout = time.Second
	// MaxAppDuration bounds the idle timeout and stop-after (30 days).
	MaxAppDuration = 30 * 24 * time.Hour
	// MaxAppHealthPathBytes bounds the health check path.
	MaxAppHealthPathBytes = 1024
)

// Effective returns a with the defaults in its zero fields (Port stays 0:
// its default comes from the image).
func (a AppSettings) Effective() AppSettings {
	if a.MemoryBytes <= 0 {
		a.MemoryBytes = DefaultAppMemoryBytes
	}
	if a.CPUs <= 0 {
		a.CPUs = DefaultAppCPUs
	}
	if a.HealthPath == "" {
		a.HealthPath = DefaultAppHealthPath
	}
	if a.IdleTimeout <= 0 {
		a.IdleTimeout = DefaultAppIdleTimeout
	}
	if a.StopAfter <= 0 {
		a.StopAfter = DefaultAppStopAfter
	}
	return a
}

// Validate checks a's effective settings together (stop-after at least
// the idle timeout) and each stored one: EINVALID says which and why.
func (a AppSettings) Validate() error {
	e := a.Effective()
	switch {
	case a.MemoryBytes < 0 || (a.MemoryBytes > 0 && a.MemoryBytes < MinAppMemoryBytes):
		return Errorf(EINVALID, "invalid app memory %s: use at least 6MiB (podman's smallest limit)", humanize.IBytes(uint64(max(a.MemoryBytes, 0))))
	case a.CPUs < 0 || a.CPUs > maxAppCPUs() || math.IsNaN(a.CPUs):
		return Errorf(EINVALID, "invalid app CPUs %v: use a number above 0 and at most %v", a.CPUs, maxAppCPUs())
	case a.IdleTimeout < 0 || (a.IdleTimeout > 0 && a.IdleTimeout < MinAppIdleTimeout) || a.IdleTimeout > MaxAppDuration || a.IdleTimeout%time.Second != 0:
		return Errorf(EINVALID, "invalid idle timeout %s: use whole seconds from 1s to 720h", a.IdleTimeout)
	case a.StopAfter < 0 || a.StopAfter > MaxAppDuration || a.StopAfter%time.Second != 0:
		return Errorf(EINVALID, "invalid stop-after %s: use whole seconds up to 720h", a.StopAfter)
	case e.StopAfter < e.IdleTimeout:
		return Errorf(EINVALID, "stop-after %s is shorter than the idle timeout %s: an app is frozen after the idle timeout, then stopped after stop-after", e.StopAfter, e.IdleTimeout)
	case a.Port < 0 || a.Port > 65535:
		return Errorf(EINVALID, "invalid app port %d: use 1-65535", a.Port)
	}
	if a.HealthPath != "" {
		return validateHealthPath(a.HealthPath)
	}
	return nil
}

// appSettingsJSON is AppSettings as the API and `--json` output spell
// it: durations in seconds.
type appSettingsJSON struct {
	MemoryBytes        int64   `json:"memoryBytes"`
	CPUs               float64 `json:"cpus"`
	HealthPath         string  `json:"healthPath"`
	IdleTimeoutSeconds int64   `json:"idleTimeoutSeconds"`
	StopAfterSeconds   int64   `json:"stopAfterSeconds"`
	Port               int     `json:"port"`
}

// MarshalJSON writes a with its durations in seconds.
func (a AppSettings) MarshalJSON() ([]byte, error) {
	return json.Marshal(appSettingsJSON{a.MemoryBytes, a.CPUs, a.HealthPath, int64(a.IdleTimeout / time.Second), int64(a.StopAfter / time.Second), a.Port})
}

// UnmarshalJSON reads what MarshalJSON writes; a null port is 0.
func (a *AppSettings) UnmarshalJSON(b []byte) error {
	var j appSettingsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*a = AppSettings{j.MemoryBytes, j.CPUs, j.HealthPath, time.Duration(j.IdleTimeoutSeconds) * time.Second, time.Duration(j.StopAfterSeconds) * time.Second, j.Port}
	return nil
}

// maxAppCPUs is the most CPUs an app may ask for: the host's, capped.
func maxAppCPUs() float64 { return float64(min(runtime.NumCPU(), MaxAppCPUs)) }

func validateHealthPath(p string) error {
	if !strings.HasPrefix(p, "/") || len(p) > MaxAppHealthPathBytes || strings.ContainsAny(p, " #\t\r\n") || !utf8.ValidString(p) {
		return Errorf(EINVALID, "invalid health path %q: use a URL path starting with \"/\" (a query is allowed), without spaces or '#', at most %d bytes", p, MaxAppHealthPathBytes)
	}
	return nil
}

// String says a's effective settings as people read them.
func (a AppSettings) String() string {
	e := a.Effective()
	port := "PORT from the image's EXPOSE"
	if e.Port > 0 {
		port = "port " + strconv.Itoa(e.Port)
	}
	return humanize.IBytes(uint64(e.MemoryBytes)) + ", " + strconv.FormatFloat(e.CPUs, 'f', -1, 64) + " CPUs, health " + e.HealthPath +
		", freeze after " + FormatAppDuration(e.IdleTimeout) + ", stop after " + FormatAppDuration(e.StopAfter) + ", " + port
}

// FormatAppDuration says d briefly: "5m", "1h", "1h30m", "90s".
func FormatAppDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// isDefault reports whether s asks for the default.
func isDefault(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	return s == "default" || s == ""
}

// ParseAppMemory parses an app memory limit such as "512MiB" or "1G" (at
// least 6 MiB), or "default" (0).
func ParseAppMemory(s string) (int64, error) {
	if isDefault(s) {
		return 0, nil
	}
	n, err := humanize.ParseBytes(strings.TrimSpace(s))
	if err != nil || strings.HasPrefix(strings.TrimSpace(s), "-") || n < MinAppMemoryBytes || n > 1<<50 {
		return 0, Errorf(EINVALID, "invalid memory limit %q: use a size of at least 6MiB such as 256MiB or 1GiB, or \"default\" for 256 MiB", s)
	}
	return int64(n), nil
}

// ParseAppCPUs parses a CPU limit such as "0.5" or "2": above 0, at most
// the host's CPU count; or "default" (0).
func ParseAppCPUs(s string) (float64, error) {
	if isDefault(s) {
		return 0, nil
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || !(n > 0) || n > maxAppCPUs() || math.IsInf(n, 0) {
		return 0, Errorf(EINVALID, "invalid CPU limit %q: use a number above 0 and at most %v (this host's CPUs), such as 0.5 or 2, or \"default\" for 1", s, maxAppCPUs())
	}
	return n, nil
}

// ParseAppHealthPath parses a health check path: a URL path starting with
// "/"; or "default" ("").
func ParseAppHealthPath(s string) (string, error) {
	if strings.ToLower(s) == "default" || s == "" {
		return "", nil
	}
	if err := validateHealthPath(s); err != nil {
		return "", err
	}
	return s, nil
}

// ParseAppDuration parses an idle timeout or stop-after such as "5m",
// "90s" or "2h" (Go's time.ParseDuration, whole seconds, 1s to 720h); or
// "default" (0). what names the setting in the error.
func ParseAppDuration(what, s string) (time.Duration, error) {
	if isDefault(s) {
		return 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < MinAppIdleTimeout || d > MaxAppDuration || d%time.Second != 0 {
		return 0, Errorf(EINVALID, "invalid %s %q: use whole seconds from 1s to 720h, such as 90s, 5m or 2h, or \"default\"", what, s)
	}
	return d, nil
}

// ParseAppPort parses the port an app listens on (1-65535), or "default"
// (0: the image's single EXPOSE).
func ParseAppPort(s string) (int, error) {
	if isDefault(s) {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, Errorf(EINVALID, "invalid port %q: use 1-65535, or \"default\" for the image's EXPOSE", s)
	}
	return n, nil
}

// AppSettingsStore is a store that keeps the projects' app settings. The
// SQLite store is one.
type AppSettingsStore interface {
	// SetAppSettings replaces a project's app settings and returns the
	// project; an unknown project is ENOTFOUND, settings that fail
	// AppSettings.Validate EINVALID.
	SetAppSettings(ctx context.Context, project string, a AppSettings) (*Project, error)
}

// ReleaseStore is a store that records each project's current release.
// The SQLite store is one.
type ReleaseStore interface {
	// SetRelease records deployment as project's current release
	// (Project.Release). An unknown project is ENOTFOUND, a deployment
	// of another project EINVALID.
	SetRelease(ctx context.Context, project, deployment string) error
}

// EnvVar is a project's runtime environment variable as users see it: its
// name and when it was last set. Its value is write-only, like a build
// secret's: no listing or API answer carries it.
type EnvVar struct {
	Project   string    `json:"project"`
	Name      string    `json:"name"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// EnvValue is a runtime environment variable with its value, for starting
// the project's app only.
type EnvValue struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// Limits on a project's runtime environment.
const (
	// MaxEnvVars is how many variables a project may set.
	MaxEnvVars = 128
	// MaxEnvNameBytes bounds a variable's name.
	MaxEnvNameBytes = 128
	// MaxEnvValueBytes bounds one value.
	MaxEnvValueBytes = 64 << 10
	// MaxEnvBytes bounds a project's names and values together (each
	// NAME=VALUE): far below what Linux lets a process start with.
	MaxEnvBytes = 256 << 10
)

// envNameRE is a POSIX environment variable name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateEnvName checks a runtime environment variable's name: letters,
// digits and '_', not starting with a digit, at most MaxEnvNameBytes; PORT
// is refused (Slipway sets it).
func ValidateEnvName(name string) error {
	if !envNameRE.MatchString(name) || len(name) > MaxEnvNameBytes {
		return Errorf(EINVALID, "invalid environment variable name %q: use 1-%d letters, digits and '_', not starting with a digit", name, MaxEnvNameBytes)
	}
	if name == "PORT" {
		return Errorf(EINVALID, "PORT is set by Slipway (the port the app listens on): set it with slipway project set NAME --port N")
	}
	return nil
}

// ValidateEnv checks a runtime environment variable's name
// (ValidateEnvName) and value: one line of UTF-8 text (no line break or
// NUL: podman's --env-file takes a variable a line), at most
// MaxEnvValueBytes. Values may be short or empty: unlike build secrets
// they never reach a build log to be masked in.
func ValidateEnv(name string, value []byte) error {
	if err := ValidateEnvName(name); err != nil {
		return err
	}
	switch {
	case len(value) > MaxEnvValueBytes:
		return Errorf(ETOOLARGE, "environment variable %s is %d bytes: the limit is %d bytes (64 KiB)", name, len(value), MaxEnvValueBytes)
	case !utf8.Valid(value) || strings.ContainsAny(string(value), "\n\r\x00"):
		return Errorf(EINVALID, "environment variable %s is not one line of UTF-8 text: a value cannot hold a line break or NUL (encode such values, base64 say)", name)
	}
	return nil
}

// EnvStore keeps projects' runtime environments, encrypted at rest like
// build secrets. Implementations are safe for concurrent use.
type EnvStore interface {
	// SetEnv creates or replaces a project's variable. An unknown project
	// is ENOTFOUND; a bad name or value EINVALID (or ETOOLARGE), one past
	// MaxEnvVars or MaxEnvBytes ETOOLARGE.
	SetEnv(ctx context.Context, project, name string, value []byte) (*EnvVar, error)
	// DeleteEnv removes a project's variable and returns its record, or
	// ENOTFOUND.
	DeleteEnv(ctx context.Context, project, name string) (*EnvVar, error)
	// Env lists a project's variables by name, without values.
	Env(ctx context.Context, project string) ([]*EnvVar, error)
	// EnvValues returns a project's variables with their decrypted values,
	// by name: what its app is started with (plus PORT). Never log them.
	EnvValues(ctx context.Context, project string) ([]EnvValue, error)
}
