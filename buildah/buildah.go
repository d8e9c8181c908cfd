// Package buildah drives the builder, buildah (os/exec), on one storage
// root: the builder volume of one project. Every build, push, tag and image
// listing of a builder goes through it.
//
// The builder is buildah ≥ MinVersion (CVE-2024-1753 fixed), which
// scripts/setup builds from the version pinned in tools/buildah into
// DefaultBinary: New refuses an older one. Debian 12's own buildah (1.28)
// and podman 4.3 lack the fix; podman 4.3 can still be driven through this
// package as EnginePodman, for the benchmark's side-by-side measurement of
// the old builder only (see package podman).
//
// It runs buildah as whoever runs it. As root, buildah is rootful; as an
// unprivileged user with subordinate uid/gid ranges (the rootless machine
// mode), buildah is rootless and keeps everything the Config names on the
// volume, plus its blob-info cache under $XDG_DATA_HOME (which the machine
// provider also points at the volume); the overlay driver is then the
// kernel's native rootless overlay, and RUN steps get their network from
// slirp4netns without a way to the host's loopback. As root, RUN steps sit
// on netavark's bridge, and buildah keeps its blob-info cache in
// /var/lib/containers/cache.
//
// Every command runs with CONTAINERS_CONF pointing at a containers.conf this
// package writes for the volume (runc, cgroupfs, no default ulimits, tmp
// dirs on the volume, slirp4netns) and with --root/--runroot/--storage-driver
// overlay, so nothing depends on the host's containers configuration. RUN
// steps run through DefaultRuntime, which refuses a RUN step that shares
// the host's network (RUN --network=host). It builds, pushes and imports
// images; it must not know about projects, deployments or logs beyond the
// io.Writers it is given.
package buildah

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultBinary is where scripts/setup installs buildah, built from the
// module in tools/buildah. It is not on PATH: nothing else should pick it
// up by accident, nor Slipway pick up another buildah.
const DefaultBinary = "/usr/local/libexec/slipway/buildah"

// DefaultRuntime is where scripts/setup installs cmd/slipway-runc, the OCI
// runtime RUN steps run with: runc, once it checked that the container has
// a network namespace of its own.
const DefaultRuntime = "/usr/local/libexec/slipway/runc"

// DefaultRunc is the runc executable, looked up in PATH: the runtime's
// own, and what removes the RUN containers of a cancelled build.
const DefaultRunc = "runc"

// MinVersion is the oldest buildah New accepts: the first release of the
// 1.35 line with the fix for CVE-2024-1753 (a RUN --mount=type=bind whose
// source is a symlink is resolved on the host). Backports to older lines
// exist, but Slipway pins a newer buildah anyway.
const MinVersion = "1.35.1"

// SetupHint says how to get the builder.
const SetupHint = "run scripts/setup: it builds buildah from tools/buildah into " + DefaultBinary

// Engine is the program a Builder drives.
type Engine string

const (
	// EngineBuildah is buildah ≥ MinVersion: every Slipway build.
	EngineBuildah Engine = "buildah"
	// EnginePodman is Debian 12's podman 4.3 (`podman build`, buildah 1.28
	// inside), which lacks the fix for CVE-2024-1753. It exists for the
	// benchmark, to measure the old builder beside the new one, as root
	// only; never use it for code Slipway does not trust.
	EnginePodman Engine = "podman"
)

// Config says where a Builder keeps its state. All directories are created
// if missing.
type Config struct {
	// Root is the storage root (--root): images, layers, the build cache.
	// It belongs on the project's volume.
	Root string
	// RunRoot is the run root (--runroot): lock files and mount state.
	RunRoot string
	// TmpDir holds the engine's temporary files (image copies, build
	// bundles, per-build scratch) and, in BuildTmpDir, the contents of
	// RUN --mount=type=cache.
	TmpDir string
	// ConfDir is where this volume's containers.conf is written.
	ConfDir string
	// Engine is the program to drive; default EngineBuildah.
	Engine Engine
	// Binary is the engine's executable. Default: DefaultBinary for
	// EngineBuildah, "podman" from PATH for EnginePodman.
	Binary string
	// Runtime is the OCI runtime of RUN steps (EngineBuildah only).
	// Default: DefaultRuntime.
	Runtime string
	// Runc is the runc executable: the runtime's own, and what removes the
	// RUN containers of a cancelled build. Default: DefaultRunc from PATH.
	Runc string
	// AuthFile is a containers-auth.json file (podman login's format)
	// with the registry credentials of pulls and pushes: every engine
	// command gets it as REGISTRY_AUTH_FILE, so no credential is ever in
	// argv. Empty: the engine's own default.
	AuthFile string
}

// ConfigAt returns a Config that keeps everything under dir: dir/storage,
// dir/run, dir/tmp and dir/conf.
func ConfigAt(dir string) Config {
	return Config{
		Root:    filepath.Join(dir, "storage"),
		RunRoot: filepath.Join(dir, "run"),
		TmpDir:  filepath.Join(dir, "tmp"),
		ConfDir: filepath.Join(dir, "conf"),
	}
}

// Builder runs buildah (or, for the benchmark, podman) commands against one
// storage root. It is safe for concurrent use, but builds on one storage
// share its working containers: cancelling one build removes the working
// containers of every build on that storage.
type Builder struct {
	cfg      Config
	confFile string
	// version is the engine's version, e.g. "1.42.1".
	version string
	// ulimits are the --ulimit flags of a build: this process's own limits.
	ulimits []string
}

// New checks the engine (for EngineBuildah: that it is at least
// MinVersion) and the tools, creates the directories and writes
// containers.conf. It runs the engine once, to ask its version.
func New(ctx context.Context, cfg Config) (*Builder, error) {
	for name, v := range map[string]string{"Root": cfg.Root, "RunRoot": cfg.RunRoot, "TmpDir": cfg.TmpDir, "ConfDir": cfg.ConfDir} {
		if v == "" {
			return nil, fmt.Errorf("builder: Config.%s is required", name)
		}
		if !filepath.IsAbs(v) {
			return nil, fmt.Errorf("builder: Config.%s must be an absolute path, got %q", name, v)
		}
	}
	cfg.RunRoot = shortRunRoot(cfg.RunRoot)
	v, err := cfg.resolve(ctx)
	if err != nil {
		return nil, err
	}
	b := &Builder{cfg: cfg, confFile: filepath.Join(cfg.ConfDir, "containers.conf"), version: v}
	if cfg.Engine == EngineBuildah {
		// podman 4.3 needs none (it has no defaults with default_ulimits
		// empty), and fails with them.
		if b.ulimits, err = ulimitFlags(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.ConfDir, 0o700); err != nil {
		return nil, fmt.Errorf("builder: %w", err)
	}
	if err := b.ensureDirs(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(b.confFile, []byte(b.containersConf()), 0o644); err != nil {
		return nil, fmt.Errorf("builder: write containers.conf: %w", err)
	}
	return b, nil
}

// Check checks the builder New uses by default (DefaultBinary, at least
// MinVersion, with DefaultRuntime and runc) and names it with its version,
// e.g. "buildah 1.42.1": what a server says when it starts, before any
// agent needs a builder.
func Check(ctx context.Context) (string, error) {
	var cfg Config
	v, err := cfg.resolve(ctx)
	if err != nil {
		return "", err
	}
	return string(cfg.Engine) + " " + v, nil
}

// resolve fills in the engine's and tools' defaults, finds them, and
// returns the engine's version, refusing a buildah older than MinVersion.
func (cfg *Config) resolve(ctx context.Context) (string, error) {
	switch cfg.Engine {
	case "":
		cfg.Engine = EngineBuildah
	case EngineBuildah:
	case EnginePodman:
		if os.Geteuid() != 0 {
			// Rootless podman 4.3 would give RUN steps a way to the host's
			// loopback (slirp4netns without --disable-host-loopback).
			return "", errors.New("builder: the podman engine runs as root only (it is the benchmark's old builder)")
		}
	default:
		return "", fmt.Errorf("builder: unknown engine %q", cfg.Engine)
	}
	if cfg.Binary == "" {
		cfg.Binary = map[Engine]string{EngineBuildah: DefaultBinary, EnginePodman: "podman"}[cfg.Engine]
	}
	if cfg.Runtime == "" && cfg.Engine == EngineBuildah {
		cfg.Runtime = DefaultRuntime
	}
	if cfg.Runc == "" {
		cfg.Runc = DefaultRunc
	}
	tools := []*string{&cfg.Binary, &cfg.Runc}
	if cfg.Engine == EngineBuildah {
		tools = append(tools, &cfg.Runtime)
	}
	for _, bin := range tools {
		p, err := exec.LookPath(*bin)
		if err != nil {
			hint := SetupHint
			if *bin == DefaultRunc || *bin == "podman" {
				hint = "apt-get install " + *bin + ", or " + SetupHint
			}
			return "", fmt.Errorf("builder: %s not found (%s): %w", *bin, hint, err)
		}
		*bin = p
	}
	v, err := engineVersion(ctx, cfg.Engine, cfg.Binary)
	if err != nil {
		return "", err
	}
	if cfg.Engine == EngineBuildah && !versionAtLeast(v, MinVersion) {
		return "", fmt.Errorf("builder: %s is buildah %s, older than %s, which lacks the fix for CVE-2024-1753: Slipway does not build with it (%s)",
			cfg.Binary, v, MinVersion, SetupHint)
	}
	return v, nil
}

// engineVersion asks the engine binary its version ("1.42.1").
func engineVersion(ctx context.Context, engine Engine, binary string) (string, error) {
	args := []string{"version", "--json"}
	if engine == EnginePodman {
		args = []string{"version", "--format", "json"}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("builder: %s version: %w (%s)", binary, err, SetupHint)
	}
	var v struct {
		Version string `json:"version"`
		Client  struct {
			Version string
		}
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", fmt.Errorf("builder: %s version: %w", binary, err)
	}
	if engine == EnginePodman {
		v.Version = v.Client.Version
	}
	if v.Version == "" {
		return "", fmt.Errorf("builder: %s version: no version in %q", binary, out)
	}
	return v.Version, nil
}

// versionAtLeast reports whether the dotted version v ("1.42.1", maybe
// with a suffix such as "-dev") is at least min.
func versionAtLeast(v, min string) bool {
	parse := func(s string) [3]int {
		var n [3]int
		s, _, _ = strings.Cut(s, "-")
		for i, part := range strings.SplitN(s, ".", 3) {
			n[i], _ = strconv.Atoi(part)
		}
		return n
	}
	a, b := parse(v), parse(min)
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return true
}

// ulimitFlags returns --ulimit flags that set a RUN step's open files and
// processes limits to this process's own. These machines lack
// CAP_SYS_RESOURCE, and runc fails ("error setting rlimit type 7:
// operation not permitted") when asked for limits above the caller's;
// buildah's defaults are.
func ulimitFlags() ([]string, error) {
	var flags []string
	for _, l := range []struct {
		name     string
		resource int
	}{{"nofile", unix.RLIMIT_NOFILE}, {"nproc", unix.RLIMIT_NPROC}} {
		var r unix.Rlimit
		if err := unix.Getrlimit(l.resource, &r); err != nil {
			return nil, fmt.Errorf("builder: getrlimit %s: %w", l.name, err)
		}
		flags = append(flags, "--ulimit", fmt.Sprintf("%s=%s:%s", l.name, rlimitValue(r.Cur), rlimitValue(r.Max)))
	}
	return flags, nil
}

// rlimitValue writes a limit the way --ulimit reads it (-1 is unlimited).
func rlimitValue(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "-1"
	}
	return strconv.FormatUint(v, 10)
}

// containersConf is the engine configuration of this volume. These machines
// lack CAP_SYS_RESOURCE, so default ulimits cannot be applied (runc: "error
// setting rlimit type 7"), and crun does not work with the hybrid cgroup
// layout: hence no default ulimits and runc. Rootless RUN steps get their
// network from slirp4netns (Debian 12's pasta is too old), never with a way
// to the host's loopback, where the registry, NATS and Temporal listen.
func (b *Builder) containersConf() string {
	conf := fmt.Sprintf(`# Written by Slipway for this volume; rewritten on every start.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = %s
image_copy_tmp_dir = %s
`, tomlString(b.cfg.TmpDir), tomlString(b.imageCopyDir()))
	if b.cfg.Engine == EngineBuildah {
		conf += `network_cmd_options = ["allow_host_loopback=false"]

[network]
default_rootless_network_cmd = "slirp4netns"
`
	}
	return conf
}

func (b *Builder) imageCopyDir() string { return filepath.Join(b.cfg.TmpDir, "image-copy") }

// ensureDirs creates the directories the engine expects to exist; a reset
// removes some of them.
func (b *Builder) ensureDirs() error {
	for _, d := range []string{b.cfg.Root, b.cfg.RunRoot, b.cfg.TmpDir, b.imageCopyDir(), b.BuildTmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("builder: %w", err)
		}
	}
	return nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Config returns the configuration with defaults filled in.
func (b *Builder) Config() Config { return b.cfg }

// ConfFile is the path of the containers.conf every command uses.
func (b *Builder) ConfFile() string { return b.confFile }

// Version is the engine's version, e.g. "1.42.1".
func (b *Builder) Version() string { return b.version }

// String names the engine and its version, e.g. "buildah 1.42.1".
func (b *Builder) String() string { return string(b.cfg.Engine) + " " + b.version }

// Command returns an engine command on this storage: global flags first,
// then args. It runs in its own process group, and cancelling ctx kills the
// whole group.
func (b *Builder) Command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{
		"--root", b.cfg.Root,
		"--runroot", b.cfg.RunRoot,
		"--storage-driver", "overlay",
	}, args...)
	// After a reset the tmp dirs are gone; the engine would fail without
	// them. An error here shows up as the engine's own.
	_ = b.ensureDirs()
	cmd := exec.CommandContext(ctx, b.cfg.Binary, full...)
	cmd.Env = append(os.Environ(),
		"CONTAINERS_CONF="+b.confFile,
		"TMPDIR="+b.cfg.TmpDir,
		// The runtime guard (cmd/slipway-runc) hands over to this runc.
		"SLIPWAY_RUNC="+b.cfg.Runc,
	)
	if b.cfg.AuthFile != "" {
		cmd.Env = append(cmd.Env, "REGISTRY_AUTH_FILE="+b.cfg.AuthFile)
	}
	setGroupKill(cmd)
	return cmd
}

// setGroupKill makes cmd a process group leader and has cancellation kill
// the whole group: the engine's children (runc, conmon, slirp4netns) would
// otherwise outlive it.
func setGroupKill(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	// A killed RUN step's process lives in its own session and may hold
	// our pipes open; do not wait for it forever.
	cmd.WaitDelay = 5 * time.Second
}

// run runs an engine command and returns its trimmed stdout; on failure
// the error carries stderr.
func (b *Builder) run(ctx context.Context, args ...string) (string, error) {
	cmd := b.Command(ctx, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s %s: %w", b.cfg.Engine, args[0], ctx.Err())
		}
		return "", fmt.Errorf("%s %s: %w: %s", b.cfg.Engine, args[0], err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Import creates the image ref from a root filesystem tarball. changes are
// Dockerfile instructions applied to the image config, e.g.
// `CMD ["/bin/sh"]`. buildah has no import: it builds FROM scratch with
// an ADD of the tarball; podman imports.
func (b *Builder) Import(ctx context.Context, tarPath, ref string, changes ...string) error {
	if err := checkTag(ref); err != nil {
		return err
	}
	if b.cfg.Engine == EnginePodman {
		args := []string{"import", "--quiet"}
		for _, c := range changes {
			args = append(args, "--change", c)
		}
		args = append(args, "--", tarPath, ref)
		if _, err := b.run(ctx, args...); err != nil {
			return fmt.Errorf("import %s: %w", ref, err)
		}
		return nil
	}
	dir, err := os.MkdirTemp(b.cfg.TmpDir, "import-")
	if err != nil {
		return fmt.Errorf("import %s: %w", ref, err)
	}
	defer os.RemoveAll(dir)
	if err := linkOrCopy(tarPath, filepath.Join(dir, "rootfs.tar")); err != nil {
		return fmt.Errorf("import %s: %w", ref, err)
	}
	df := "FROM scratch\nADD rootfs.tar /\n"
	for _, c := range changes {
		if strings.ContainsAny(c, "\r\n") {
			return fmt.Errorf("import %s: change %q spans lines", ref, c)
		}
		df += c + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return fmt.Errorf("import %s: %w", ref, err)
	}
	if _, err := b.run(ctx, "build", "--quiet", "--layers=false", "--format", "oci", "-t", ref, "-f", filepath.Join(dir, "Dockerfile"), "--", dir); err != nil {
		return fmt.Errorf("import %s: %w", ref, err)
	}
	return nil
}

// linkOrCopy makes dst a hard link of src, or a copy when they are on
// different file systems.
func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Push pushes the local image ref to its registry and returns the digest of
// the pushed manifest ("sha256:..."). Output goes to out (may be nil).
func (b *Builder) Push(ctx context.Context, ref string, tlsVerify bool, out io.Writer) (string, error) {
	f, err := os.CreateTemp(b.cfg.TmpDir, "digest-*")
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	digestFile := f.Name()
	f.Close()
	defer os.Remove(digestFile)

	cmd := b.Command(ctx, "push", fmt.Sprintf("--tls-verify=%t", tlsVerify), "--digestfile", digestFile, "--", ref)
	tail := newTail(20)
	lw := newLineWriters(out, out, tail)
	cmd.Stdout, cmd.Stderr = lw.stdout, lw.stderr
	err = cmd.Run()
	lw.flush()
	if ctx.Err() != nil {
		return "", fmt.Errorf("push %s: %w", ref, ctx.Err())
	}
	if err != nil {
		return "", fmt.Errorf("push %s: %w: %s", ref, err, strings.Join(tail.lines(), "\n"))
	}
	d, err := os.ReadFile(digestFile)
	if err != nil {
		return "", fmt.Errorf("push %s: read digest: %w", ref, err)
	}
	digest := strings.TrimSpace(string(d))
	if !strings.HasPrefix(digest, "sha256:") {
		return "", fmt.Errorf("push %s: unexpected digest %q", ref, digest)
	}
	return digest, nil
}

// Reset removes every image, container and layer of this storage and the
// contents of the RUN cache mounts. The Builder stays usable: the
// directories are made again. With buildah it also repairs a storage
// buildah cannot open: it removes the storage and run root outright.
func (b *Builder) Reset(ctx context.Context) error {
	if b.cfg.Engine == EnginePodman {
		if _, err := b.run(ctx, "system", "reset", "--force"); err != nil {
			return err
		}
		return b.ensureDirs()
	}
	// Working containers first: removing them unmounts their layers.
	// Whatever fails here, the removal below takes care of.
	_, _ = b.run(ctx, "rm", "--all")
	if err := b.Remove(ctx, b.cfg.Root, b.cfg.RunRoot, b.BuildTmpDir()); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return b.ensureDirs()
}

// Remove removes directories that hold the files of containers: a
// storage, cache mounts. Rootless, they belong to the user's subordinate
// ids, which only its user namespace may remove: buildah unshare removes
// them. As root, what is mounted below them is unmounted first.
func (b *Builder) Remove(ctx context.Context, dirs ...string) error {
	if len(dirs) == 0 {
		return nil
	}
	if os.Geteuid() != 0 && b.cfg.Engine == EngineBuildah {
		_, err := b.run(ctx, append([]string{"unshare", "rm", "-rf", "--"}, dirs...)...)
		return err
	}
	for _, d := range dirs {
		if err := UnmountUnder(d); err != nil {
			return err
		}
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	return nil
}

// UnmountUnder lazily unmounts every mount point at or below dir, deepest
// first: layers a killed builder left mounted, and the overlay directory
// the storage makes a private mount of itself. Reset uses it; so do tests
// that remove a storage.
func UnmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mounts = append(mounts, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	for _, mp := range mounts {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("umount %s: %w", mp, err)
		}
	}
	return nil
}

// unescapeMount decodes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkTag refuses references that would end up tagged "latest": Slipway
// tags by commit, never latest.
func checkTag(ref string) error {
	if ref == "" {
		return errors.New("builder: empty image reference")
	}
	if strings.Contains(ref, "@") {
		return fmt.Errorf("builder: %q: a digest reference cannot be a tag", ref)
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	if !ok || tag == "" {
		return fmt.Errorf("builder: %q has no tag (it would be tagged latest)", ref)
	}
	if tag == "latest" {
		return fmt.Errorf("builder: %q: Slipway never tags latest", ref)
	}
	return nil
}

// maxRunRoot is the longest run root the engines accept ("the specified
// runroot is longer than 50 characters").
const maxRunRoot = 50

// shortRunRoot returns dir when it is short enough, otherwise a short
// directory in /run (or $XDG_RUNTIME_DIR, or the temp dir) named after a
// hash of dir, so every volume still gets its own run root. Run roots hold
// only locks and mount state, which need not survive a reboot.
func shortRunRoot(dir string) string {
	if len(dir) <= maxRunRoot {
		return dir
	}
	sum := sha256.Sum256([]byte(dir))
	name := "slipway-" + hex.EncodeToString(sum[:8])
	// /run is root's; a rootless user has its XDG_RUNTIME_DIR.
	for _, base := range []string{"/run", os.Getenv("XDG_RUNTIME_DIR"), os.TempDir()} {
		if base == "" {
			continue
		}
		if st, err := os.Stat(base); err == nil && st.IsDir() && unix.Access(base, unix.W_OK) == nil {
			if p := filepath.Join(base, name); len(p) <= maxRunRoot {
				return p
			}
		}
	}
	return filepath.Join("/tmp", name)
}

// Image is one image in the storage.
type Image struct {
	// ID is the image's full id (hex, without "sha256:").
	ID string `json:"id"`
	// Names are its tags.
	Names []string `json:"names"`
	// Created is its creation time, in Unix seconds.
	Created int64 `json:"created"`
}

// Images lists the storage's images (not the intermediate images of
// builds).
func (b *Builder) Images(ctx context.Context) ([]Image, error) {
	args := []string{"images", "--json", "--no-trunc"}
	if b.cfg.Engine == EnginePodman {
		args = []string{"images", "--format", "json", "--no-trunc"}
	}
	out, err := b.run(ctx, args...)
	if err != nil {
		return nil, err
	}
	if out == "" {
		return nil, nil
	}
	// buildah's and podman's JSON differ in the case of their keys only,
	// which encoding/json ignores.
	var imgs []Image
	if err := json.Unmarshal([]byte(out), &imgs); err != nil {
		return nil, fmt.Errorf("%s images: %w", b.cfg.Engine, err)
	}
	for i := range imgs {
		imgs[i].ID = strings.TrimPrefix(imgs[i].ID, "sha256:")
	}
	return imgs, nil
}

// RemoveImages removes images by id, with all their tags. Layers other
// images still use stay.
func (b *Builder) RemoveImages(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := b.run(ctx, append([]string{"rmi", "--force", "--"}, ids...)...)
	return err
}

// Tag adds the tag ref to the local image src (an id or a reference).
func (b *Builder) Tag(ctx context.Context, src, ref string) error {
	if err := checkTag(ref); err != nil {
		return err
	}
	_, err := b.run(ctx, "tag", src, ref)
	return err
}

// ImageExists reports whether the local storage has the image ref (an id
// or a reference).
func (b *Builder) ImageExists(ctx context.Context, ref string) bool {
	return b.Command(ctx, "inspect", "--type", "image", "--", ref).Run() == nil
}
