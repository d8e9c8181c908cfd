// Package podman is the old builder: Debian 12's podman 4.3 (`podman
// build`, buildah 1.28 inside), driven through package buildah as its
// EnginePodman. It lacks the fix for CVE-2024-1753, so no Slipway build
// runs on it; it is kept so that the benchmark can measure it beside the
// new builder (its local floor and clean CI systems, its Node base image),
// and runs as root only.
package podman

import (
	"context"

	"github.com/slipway-ci/slipway/buildah"
)

// Podman runs podman commands against one storage root: a buildah.Builder
// whose engine is podman.
type Podman = buildah.Builder

// Config says where a Podman keeps its state; its Engine is always podman.
type Config = buildah.Config

// InstallHint says how to get the tools this package needs on Debian.
const InstallHint = "apt-get install podman runc"

// ConfigAt returns a Config that keeps everything under dir: dir/storage,
// dir/run, dir/tmp and dir/conf.
func ConfigAt(dir string) Config {
	cfg := buildah.ConfigAt(dir)
	cfg.Engine = buildah.EnginePodman
	return cfg
}

// New checks podman and runc, creates the directories and writes
// containers.conf (see buildah.New).
func New(cfg Config) (*Podman, error) {
	cfg.Engine = buildah.EnginePodman
	return buildah.New(context.Background(), cfg)
}
