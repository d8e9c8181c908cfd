// Package testenv holds helpers shared by the tests of every package: a
// builder (buildah, or the old builder podman) on private, throw-away
// storage, a busybox base image made from the host's busybox-static, git
// repositories, and WaitFor, which waits on a condition rather than for a
// fixed time.
//
// The helpers use the real tools and fail the test loudly (with the install
// hint) when one is missing; they never skip. Only tests may import this
// package.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/buildah/baseimage"
	"github.com/slipway-ci/slipway/podman"
)

// Builder returns a Builder (buildah, DefaultBinary) whose storage, run
// root, tmp dir and containers.conf live in a t.TempDir(). Cleanup resets
// the storage and unmounts anything buildah left mounted, so the directory
// can be removed.
func Builder(t testing.TB) *buildah.Builder {
	t.Helper()
	return newBuilder(t, buildah.EngineBuildah)
}

// Podman returns a Podman (the old builder, package podman) on private
// storage, like Builder.
func Podman(t testing.TB) *podman.Podman {
	t.Helper()
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("testenv: %s not found: %v (install it: %s)", tool, err, podman.InstallHint)
		}
	}
	return newBuilder(t, buildah.EnginePodman)
}

func newBuilder(t testing.TB, engine buildah.Engine) *buildah.Builder {
	t.Helper()
	dir := t.TempDir()
	cfg := buildah.ConfigAt(dir)
	cfg.Engine = engine
	cfg.AuthFile = RegistryAuthFile()
	b, err := buildah.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// Registered after t.TempDir's removal, so it runs before it.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := b.Reset(ctx); err != nil {
			t.Logf("testenv: reset %s: %v", dir, err)
		}
		if err := buildah.UnmountUnder(dir); err != nil {
			t.Logf("testenv: %v", err)
		}
	})
	return b
}

// BusyboxRootfsTar writes a tar of a minimal root filesystem (Debian's
// busybox-static /bin/busybox plus a symlink per applet) into a temporary
// directory and returns its path.
func BusyboxRootfsTar(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "busybox-rootfs.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := baseimage.WriteBusyboxTar(f, baseimage.BusyboxPath); err != nil {
		f.Close()
		t.Fatalf("testenv: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// BaseImageName is the repository and tag BaseImage pushes to.
const BaseImageName = "base/busybox:1"

// BaseImage imports the busybox root filesystem into b and pushes it to
// the registry at registryHost ("127.0.0.1:port", plain HTTP) as
// <registryHost>/base/busybox:1, which it returns.
func BaseImage(t testing.TB, b *buildah.Builder, registryHost string) string {
	t.Helper()
	ref := registryHost + "/" + BaseImageName
	ctx := context.Background()
	if err := b.Import(ctx, BusyboxRootfsTar(t), ref, baseimage.Changes...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if _, err := b.Push(ctx, ref, false, nil); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return ref
}
