// Package testenv holds helpers shared by the tests of every package: a
// podman on private, throw-away storage, a busybox base image made from the
// host's busybox-static, and git repositories.
//
// The helpers use the real tools and fail the test loudly (with the install
// hint) when one is missing; they never skip. Only tests may import this
// package.
package testenv

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/podman"
	"github.com/slipway-ci/slipway/podman/baseimage"
)

// Podman returns a Podman whose storage, run root, tmp dir and
// containers.conf live in a t.TempDir(). Cleanup resets the storage and
// unmounts anything podman left mounted, so the directory can be removed.
func Podman(t testing.TB) *podman.Podman {
	t.Helper()
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("testenv: %s not found: %v (install it: %s)", tool, err, podman.InstallHint)
		}
	}
	dir := t.TempDir()
	p, err := podman.New(podman.ConfigAt(dir))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// Registered after t.TempDir's removal, so it runs before it.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Reset(ctx); err != nil {
			t.Logf("testenv: podman system reset: %v", err)
		}
		unmountUnder(t, dir)
	})
	return p
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(t testing.TB, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Logf("testenv: %v", err)
		return
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
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	for _, mp := range mounts {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			t.Logf("testenv: umount %s: %v", mp, err)
		}
	}
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

// BaseImage imports the busybox root filesystem into p and pushes it to
// the registry at registryHost ("127.0.0.1:port", plain HTTP) as
// <registryHost>/base/busybox:1, which it returns.
func BaseImage(t testing.TB, p *podman.Podman, registryHost string) string {
	t.Helper()
	ref := registryHost + "/" + BaseImageName
	ctx := context.Background()
	if err := p.Import(ctx, BusyboxRootfsTar(t), ref, baseimage.Changes...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if _, err := p.Push(ctx, ref, false, nil); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return ref
}
