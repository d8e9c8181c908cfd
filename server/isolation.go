package server

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/slipway-ci/slipway/machine/process"
)

// DefaultBuilderIsolation is Config.BuilderIsolation's default.
const DefaultBuilderIsolation = "auto"

// probeCacheFile keeps, in the data directory, the verdict of the rootless
// probe's slow part (see process.ProbeRootlessCached).
const probeCacheFile = "rootless-probe.json"

// chooseIsolation decides whom the agents run as (see
// Config.BuilderIsolation), prepares the data directory for it and says
// which mode it chose, with which builder (e.g. "buildah 1.42.1"), and why,
// in one log line starting "builders:".
func chooseIsolation(ctx context.Context, want, builder, dataDir, volumesDir, agentBinary string, log *slog.Logger) (process.Isolation, error) {
	switch want {
	case "root":
		log.Info(fmt.Sprintf("builders: root %s, because --builder-isolation is root", builder))
		return process.IsolationRoot, protectDataDir(dataDir, volumesDir, false)
	case "rootless", "auto":
	default:
		return "", fmt.Errorf("unknown builder isolation %q: use auto, rootless or root", want)
	}
	// Builder users pass through the data directory to their volumes; the
	// rest of it stays the server's alone.
	if err := protectDataDir(dataDir, volumesDir, true); err != nil {
		return "", err
	}
	probe, err := process.ProbeRootlessCached(ctx, volumesDir, agentBinary, "", filepath.Join(dataDir, probeCacheFile))
	if err != nil {
		if want == "rootless" {
			return "", fmt.Errorf("--builder-isolation rootless, but this host cannot run rootless builders: %w", err)
		}
		log.Warn(fmt.Sprintf("builders: root %s, because rootless builders are not possible here: %v", builder, err))
		return process.IsolationRoot, protectDataDir(dataDir, volumesDir, false)
	}
	how := fmt.Sprintf("probed now: %s", probe.Reprobed)
	if probe.Cached {
		how = fmt.Sprintf("the builder's verdict cached at %s in %s; probed again when buildah, the kernel, /dev/net/tun or the subuids change",
			probe.ProbedAt.Format(time.RFC3339), probeCacheFile)
	}
	log.Info(fmt.Sprintf("builders: rootless %s (user %s, %s), because this host can run it (%s)", builder, process.UserName("<project>"), probe.Storage, how))
	return process.IsolationRootless, nil
}

// protectDataDir makes everything in the data directory the server's
// alone. In rootless mode the data directory and its volumes directory are
// mode 0711, so builder users can pass through them to their own volume
// (mode 0700) but list nothing; every other entry of the data directory is
// made private (0700 or 0600). Otherwise the data directory is 0700.
func protectDataDir(dataDir, volumesDir string, rootless bool) error {
	if !rootless {
		return os.Chmod(dataDir, 0o700)
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dataDir, e.Name())
		if p == volumesDir || e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		mode := fs.FileMode(0o600)
		if e.IsDir() {
			mode = 0o700
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, info.Mode().Perm()&mode); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(volumesDir, 0o711); err != nil {
		return err
	}
	for _, d := range []string{dataDir, volumesDir} {
		if err := os.Chmod(d, 0o711); err != nil {
			return err
		}
	}
	return nil
}
