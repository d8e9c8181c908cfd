// Package podman drives the podman command-line tool (os/exec) on one
// storage root: the builder volume of one project.
//
// It runs podman as whoever runs it. As root, podman is rootful; as an
// unprivileged user with subordinate uid/gid ranges (the rootless machine
// mode), podman is rootless and keeps everything the Config names on the
// volume, plus its blob-info cache under $XDG_DATA_HOME (which the machine
// provider also points at the volume); the overlay driver is then the
// kernel's native rootless overlay.
//
// Every command runs with CONTAINERS_CONF pointing at a containers.conf this
// package writes for the volume (runc, cgroupfs, no default ulimits, tmp
// dirs on the volume) and with --root/--runroot/--storage-driver overlay, so
// nothing depends on the host's podman configuration. It builds, pushes and
// imports images; it must not know about projects, deployments or logs
// beyond the io.Writers it is given.
package podman

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-ci/slipway/internal/atomicfile"
)

// Config says where a Podman keeps its state. All directories are created
// if missing.
type Config struct {
	// Root is the storage root (podman --root): images, layers, the build
	// cache. It belongs on the project's volume.
	Root string
	// RunRoot is the run root (podman --runroot): lock files and mount
	// state.
	RunRoot string
	// TmpDir is the engine's tmp_dir (instead of /run/libpod), also used
	// for image copies and the bundles of build containers.
	TmpDir string
	// ConfDir is where this volume's containers.conf is written.
	ConfDir string
	// Binary is the podman executable. Default: "podman" from PATH.
	Binary string
	// Runc is the runc executable used to remove the RUN containers of a
	// cancelled build. Default: "runc" from PATH.
	Runc string
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

// InstallHint says how to get the tools this package needs on Debian.
const InstallHint = "apt-get install podman runc"

// Podman runs podman commands against one storage root. It is safe for
// concurrent use, but builds on one storage share its working containers:
// cancelling one build removes the build containers of builds started in
// the same second.
type Podman struct {
	cfg      Config
	confFile string
}

// New checks the tools, creates the directories and writes containers.conf.
func New(cfg Config) (*Podman, error) {
	if cfg.Binary == "" {
		cfg.Binary = "podman"
	}
	if cfg.Runc == "" {
		cfg.Runc = "runc"
	}
	for name, v := range map[string]string{"Root": cfg.Root, "RunRoot": cfg.RunRoot, "TmpDir": cfg.TmpDir, "ConfDir": cfg.ConfDir} {
		if v == "" {
			return nil, fmt.Errorf("podman: Config.%s is required", name)
		}
		if !filepath.IsAbs(v) {
			return nil, fmt.Errorf("podman: Config.%s must be an absolute path, got %q", name, v)
		}
	}
	cfg.RunRoot = shortRunRoot(cfg.RunRoot)
	for _, bin := range []*string{&cfg.Binary, &cfg.Runc} {
		p, err := exec.LookPath(*bin)
		if err != nil {
			return nil, fmt.Errorf("podman: %s not found (%s): %w", *bin, InstallHint, err)
		}
		*bin = p
	}
	p := &Podman{cfg: cfg, confFile: filepath.Join(cfg.ConfDir, "containers.conf")}
	if err := os.MkdirAll(cfg.ConfDir, 0o700); err != nil {
		return nil, fmt.Errorf("podman: %w", err)
	}
	if err := p.ensureDirs(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.confFile, []byte(p.containersConf()), 0o644); err != nil {
		return nil, fmt.Errorf("podman: write containers.conf: %w", err)
	}
	if err := p.writeSlirpWrapper(); err != nil {
		return nil, err
	}
	return p, nil
}

// binDir holds the wrappers that come first in podman's PATH.
func (p *Podman) binDir() string { return filepath.Join(p.cfg.ConfDir, "bin") }

// writeSlirpWrapper puts a slirp4netns in binDir that always passes
// --disable-host-loopback. Rootless RUN steps get their network from
// slirp4netns, which buildah 1.28 starts from PATH without that flag: a RUN
// step could then reach every service on the host's loopback (the
// registry, NATS, Temporal) at 10.0.2.2. Without slirp4netns (root
// podman, which uses a bridge) there is nothing to wrap.
func (p *Podman) writeSlirpWrapper() error {
	real, err := exec.LookPath("slirp4netns")
	if err != nil {
		return nil
	}
	if err := os.MkdirAll(p.binDir(), 0o755); err != nil {
		return fmt.Errorf("podman: %w", err)
	}
	script := "#!/bin/sh\n# Written by Slipway: RUN steps must not reach the host's loopback.\nexec " + shellQuote(real) + " --disable-host-loopback \"$@\"\n"
	path := filepath.Join(p.binDir(), "slirp4netns")
	if err := atomicfile.Write(path, []byte(script), 0o755); err != nil {
		return fmt.Errorf("podman: write slirp4netns wrapper: %w", err)
	}
	return nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// containersConf is the engine configuration of this volume. These machines
// lack CAP_SYS_RESOURCE, so podman's default ulimits cannot be applied
// (runc: "error setting rlimit type 7"), and crun does not work with the
// hybrid cgroup layout: hence no default ulimits and runc.
func (p *Podman) containersConf() string {
	return fmt.Sprintf(`# Written by Slipway for this volume; rewritten on every start.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = %s
image_copy_tmp_dir = %s
`, tomlString(p.cfg.TmpDir), tomlString(filepath.Join(p.cfg.TmpDir, "image-copy")))
}

// ensureDirs creates the directories podman expects to exist; podman
// system reset removes some of them.
func (p *Podman) ensureDirs() error {
	for _, d := range []string{p.cfg.Root, p.cfg.RunRoot, p.cfg.TmpDir, filepath.Join(p.cfg.TmpDir, "image-copy"), p.BuildTmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("podman: %w", err)
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
func (p *Podman) Config() Config { return p.cfg }

// ConfFile is the path of the containers.conf every command uses.
func (p *Podman) ConfFile() string { return p.confFile }

// Command returns a podman command on this storage: global flags first,
// then args. It runs in its own process group, and cancelling ctx kills the
// whole group.
func (p *Podman) Command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{
		"--root", p.cfg.Root,
		"--runroot", p.cfg.RunRoot,
		"--storage-driver", "overlay",
	}, args...)
	// After a system reset the tmp dirs are gone; podman would fail
	// without them. An error here shows up as podman's own.
	_ = p.ensureDirs()
	cmd := exec.CommandContext(ctx, p.cfg.Binary, full...)
	cmd.Env = append(os.Environ(),
		"CONTAINERS_CONF="+p.confFile,
		"TMPDIR="+p.cfg.TmpDir,
		"PATH="+p.binDir()+string(filepath.ListSeparator)+os.Getenv("PATH"),
	)
	setGroupKill(cmd)
	return cmd
}

// setGroupKill makes cmd a process group leader and has cancellation kill
// the whole group: podman's children (runc, conmon, buildah-oci-runtime)
// would otherwise outlive it.
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

// run runs a podman command and returns its trimmed stdout; on failure the
// error carries stderr.
func (p *Podman) run(ctx context.Context, args ...string) (string, error) {
	cmd := p.Command(ctx, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("podman %s: %w", args[0], ctx.Err())
		}
		return "", fmt.Errorf("podman %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Import creates the image ref from a rootfs tarball (podman import).
// changes are Dockerfile instructions applied to the image config, e.g.
// `CMD ["/bin/sh"]`.
func (p *Podman) Import(ctx context.Context, tarPath, ref string, changes ...string) error {
	if err := checkTag(ref); err != nil {
		return err
	}
	args := []string{"import", "--quiet"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	args = append(args, "--", tarPath, ref)
	if _, err := p.run(ctx, args...); err != nil {
		return fmt.Errorf("import %s: %w", ref, err)
	}
	return nil
}

// Push pushes the local image ref to its registry and returns the digest of
// the pushed manifest ("sha256:..."). Output goes to out (may be nil).
func (p *Podman) Push(ctx context.Context, ref string, tlsVerify bool, out io.Writer) (string, error) {
	f, err := os.CreateTemp(p.cfg.TmpDir, "digest-*")
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	digestFile := f.Name()
	f.Close()
	defer os.Remove(digestFile)

	cmd := p.Command(ctx, "push", fmt.Sprintf("--tls-verify=%t", tlsVerify), "--digestfile", digestFile, "--", ref)
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
	b, err := os.ReadFile(digestFile)
	if err != nil {
		return "", fmt.Errorf("push %s: read digest: %w", ref, err)
	}
	digest := strings.TrimSpace(string(b))
	if !strings.HasPrefix(digest, "sha256:") {
		return "", fmt.Errorf("push %s: unexpected digest %q", ref, digest)
	}
	return digest, nil
}

// Reset removes every image, container and layer of this storage (podman
// system reset), which also unmounts what podman had mounted. The Podman
// stays usable: the directories are made again.
func (p *Podman) Reset(ctx context.Context) error {
	if _, err := p.run(ctx, "system", "reset", "--force"); err != nil {
		return err
	}
	return p.ensureDirs()
}

// checkTag refuses references that would end up tagged "latest": Slipway
// tags by commit, never latest.
func checkTag(ref string) error {
	if ref == "" {
		return errors.New("podman: empty image reference")
	}
	if strings.Contains(ref, "@") {
		return fmt.Errorf("podman: %q: a digest reference cannot be a tag", ref)
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	if !ok || tag == "" {
		return fmt.Errorf("podman: %q has no tag (it would be tagged latest)", ref)
	}
	if tag == "latest" {
		return fmt.Errorf("podman: %q: Slipway never tags latest", ref)
	}
	return nil
}

// maxRunRoot is the longest run root podman accepts ("the specified runroot
// is longer than 50 characters").
const maxRunRoot = 50

// shortRunRoot returns dir when podman accepts it, otherwise a short
// directory in /run (or $XDG_RUNTIME_DIR, or the temp dir) named after a hash of dir, so every
// volume still gets its own run root. Run roots hold only locks and mount
// state, which need not survive a reboot.
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

// Image is one image in the storage, as `podman images` lists it.
type Image struct {
	ID      string            `json:"Id"`
	Names   []string          `json:"Names"`
	Labels  map[string]string `json:"Labels"`
	Created int64             `json:"Created"`
}

// Images lists the images whose labels match filter ("key=value"; empty
// lists every image).
func (p *Podman) Images(ctx context.Context, labelFilter string) ([]Image, error) {
	args := []string{"images", "--format", "json"}
	if labelFilter != "" {
		args = append(args, "--filter", "label="+labelFilter)
	}
	out, err := p.run(ctx, args...)
	if err != nil {
		return nil, err
	}
	var imgs []Image
	if out == "" {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(out), &imgs); err != nil {
		return nil, fmt.Errorf("podman images: %w", err)
	}
	return imgs, nil
}

// RemoveImages removes images by id, with all their tags. Layers other
// images still use stay.
func (p *Podman) RemoveImages(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := p.run(ctx, append([]string{"rmi", "--force", "--"}, ids...)...)
	return err
}

// Tag adds the tag ref to the local image src (an id or a reference).
func (p *Podman) Tag(ctx context.Context, src, ref string) error {
	if err := checkTag(ref); err != nil {
		return err
	}
	_, err := p.run(ctx, "tag", src, ref)
	return err
}

// ImageExists reports whether the local storage has the image ref (an id
// or a reference).
func (p *Podman) ImageExists(ctx context.Context, ref string) bool {
	return p.Command(ctx, "image", "exists", ref).Run() == nil
}
