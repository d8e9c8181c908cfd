package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/podman"
)

// defaultBuildah is where scripts/setup installs the new builder.
const defaultBuildah = buildah.DefaultBinary

// builder is the tool the local floor and clean CI build and push with:
// `podman build` (the old builder: Debian's podman 4.3, which builds with
// buildah 1.28) or `buildah build` (the new builder: buildah 1.42.1, built
// from its Go module, which Slipway's builders are moving to).
type builder struct {
	// Name is "podman" or "buildah".
	Name string
	// Bin is the executable.
	Bin string
	// Version is its --version line.
	Version string
	// BuildFlags go into every build, after "build".
	BuildFlags []string
}

func (b *builder) String() string { return fmt.Sprintf("%s (%s)", b.Version, b.Bin) }

// podmanBuilder is the old builder: podman from PATH.
func podmanBuilder() (*builder, error) {
	bin, err := exec.LookPath("podman")
	if err != nil {
		return nil, fmt.Errorf("podman not found (%s): %w", podman.InstallHint, err)
	}
	return &builder{Name: "podman", Bin: bin, Version: toolVersion(bin)}, nil
}

// buildahBuilder is the new builder at bin, or nil when there is no
// executable there.
func buildahBuilder(bin string) (*builder, error) {
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return nil, nil
	}
	var nofile, nproc unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		return nil, fmt.Errorf("getrlimit: %w", err)
	}
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &nproc); err != nil {
		return nil, fmt.Errorf("getrlimit: %w", err)
	}
	return &builder{Name: "buildah", Bin: bin, Version: toolVersion(bin), BuildFlags: ulimitFlags(nofile, nproc)}, nil
}

// ulimitFlags spell out the limits RUN containers get: this process's
// own. Without them buildah 1.42 raises nofile and nproc for its RUN
// containers, which runc cannot do here without CAP_SYS_RESOURCE ("error
// setting rlimit type 7"); podman 4.3 goes by containers.conf's
// default_ulimits = [] instead.
func ulimitFlags(nofile, nproc unix.Rlimit) []string {
	lim := func(v uint64) string {
		if v == unix.RLIM_INFINITY {
			return "-1"
		}
		return fmt.Sprint(v)
	}
	return []string{
		"--ulimit", "nofile=" + lim(nofile.Cur) + ":" + lim(nofile.Max),
		"--ulimit", "nproc=" + lim(nproc.Cur) + ":" + lim(nproc.Max),
	}
}

// toolVersion is bin's --version line ("buildah version 1.42.1 (…)").
func toolVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown version"
	}
	return strings.TrimSpace(string(out))
}

// storage opens a storage of this builder in dir. The podman package lays
// out the directories and writes their containers.conf (runc, cgroupfs, no
// default ulimits, tmp dirs in dir) and runs the tool with --root,
// --runroot and --storage-driver: buildah takes the same global flags and
// reads the same containers.conf. Each builder gets storages of its own
// (buildah 1.42 does not reuse podman 4.3's layer cache anyway).
func (b *builder) storage(dir string) (*podman.Podman, error) {
	if b.Name == "buildah" {
		cfg := buildah.ConfigAt(dir)
		cfg.Binary = b.Bin
		return buildah.New(context.Background(), cfg)
	}
	cfg := podman.ConfigAt(dir)
	cfg.Binary = b.Bin
	return podman.New(cfg)
}
