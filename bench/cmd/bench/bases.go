package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/podman"
)

// Base images. No public registry is reachable, so the base images the
// sample apps build on are made from the host: a root filesystem written
// as a tar, imported once per benchmark run and pushed to the registry
// under test, so every system pulls the same image. An app's Dockerfile
// names them localhost/base/NAME:TAG (pointDockerfile points them at the
// registry); baseImages says how each NAME is made.

// baseImage is how one base image is made.
type baseImage struct {
	// rootfs writes the image's root filesystem as a tar to w.
	rootfs func(w io.Writer) error
	// changes are applied to the imported image's configuration.
	changes []string
}

var baseImages = map[string]baseImage{
	"node":    {rootfs: writeNodeRootfs, changes: nodeBaseChanges},
	"go":      {rootfs: writeGoRootfs, changes: goBaseChanges},
	"runtime": {rootfs: writeRuntimeRootfs, changes: runtimeBaseChanges},
}

// makeBase imports the base image name as ref in p's storage and pushes
// it.
func makeBase(ctx context.Context, p *podman.Podman, name, ref string, log io.Writer) error {
	b, ok := baseImages[name]
	if !ok {
		return fmt.Errorf("no base image %q (the harness makes %s)", name, strings.Join(slices.Sorted(maps.Keys(baseImages)), ", "))
	}
	f, err := os.CreateTemp(p.Config().TmpDir, name+"-rootfs-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := b.rootfs(f); err != nil {
		f.Close()
		return fmt.Errorf("%s base image: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := p.Import(ctx, f.Name(), ref, b.changes...); err != nil {
		return err
	}
	if _, err := p.Push(ctx, ref, false, log); err != nil {
		return err
	}
	return nil
}

// Host files every base image with a shell takes.
const (
	hostBusybox  = "/bin/busybox" // statically linked (busybox-static)
	hostCABundle = "/etc/ssl/certs/ca-certificates.crt"
)

// checkHostFiles says which of files the host lacks, and how to get it.
func checkHostFiles(files ...string) error {
	hints := map[string]string{hostBusybox: "apt-get install busybox-static", hostCABundle: "apt-get install ca-certificates"}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s missing (%s)", f, hints[f])
		}
	}
	return nil
}

// newRootfsWriter starts a root filesystem with the directories every
// base image has.
func newRootfsWriter(w io.Writer) *rootfsWriter {
	r := &rootfsWriter{tw: tar.NewWriter(w), dirs: map[string]bool{}}
	for _, d := range []string{"bin", "dev", "etc", "home", "proc", "root", "sys", "usr/bin", "usr/local/bin", "var/tmp"} {
		r.dir(d, 0o755)
	}
	r.dir("tmp", 0o1777)
	return r
}

// close ends the tar and returns the first error.
func (r *rootfsWriter) close() error {
	if r.err != nil {
		return r.err
	}
	return r.tw.Close()
}

// users writes the minimal /etc of a base image: root, nobody, and name
// lookup from files then DNS.
func (r *rootfsWriter) users() {
	r.file("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
	r.file("etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\n")
	r.file("etc/nsswitch.conf", 0o644, "passwd: files\ngroup: files\nhosts: files dns\n")
}

// shell writes busybox as /bin/sh and its other applets (RUN steps need a
// shell), /usr/bin/env, and the CA bundle (builds fetch over TLS).
func (r *rootfsWriter) shell() {
	if r.err != nil {
		return
	}
	if r.err = checkHostFiles(hostBusybox, hostCABundle); r.err != nil {
		return
	}
	applets, err := busyboxApplets(hostBusybox)
	if err != nil {
		r.err = err
		return
	}
	r.hostFile("bin/busybox", hostBusybox, 0o755)
	for _, a := range applets {
		r.symlink("bin/"+a, "busybox")
	}
	// Scripts start with "#!/usr/bin/env ...".
	r.symlink("usr/bin/env", "/bin/busybox")
	r.hostFile("etc/ssl/certs/ca-certificates.crt", hostCABundle, 0o644)
}

// busyboxApplets lists busybox's applets (busybox --list).
func busyboxApplets(busybox string) ([]string, error) {
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	var names []string
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || a != path.Base(a) || strings.HasPrefix(a, ".") {
			continue
		}
		names = append(names, a)
	}
	slices.Sort(names)
	if !slices.Contains(names, "sh") {
		return nil, fmt.Errorf("%s has no sh applet", busybox)
	}
	return names, nil
}

// rootfsWriter writes a root filesystem tar, creating parent directories
// as needed; the first error sticks.
type rootfsWriter struct {
	tw   *tar.Writer
	dirs map[string]bool
	err  error
}

var epoch = time.Unix(0, 0)

func (r *rootfsWriter) parents(name string) {
	if d := path.Dir(name); d != "." && !r.dirs[d] {
		r.dir(d, 0o755)
	}
}

func (r *rootfsWriter) dir(name string, mode int64) {
	if r.err != nil || r.dirs[name] {
		return
	}
	r.parents(name)
	r.dirs[name] = true
	r.err = r.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: epoch})
}

func (r *rootfsWriter) symlink(name, target string) {
	if r.err != nil {
		return
	}
	r.parents(name)
	r.err = r.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch})
}

func (r *rootfsWriter) file(name string, mode int64, data string) {
	if r.err != nil {
		return
	}
	r.parents(name)
	if r.err = r.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch}); r.err == nil {
		_, r.err = io.WriteString(r.tw, data)
	}
}

// hostFile copies the host file src (symlinks followed) to name.
func (r *rootfsWriter) hostFile(name, src string, mode int64) {
	if r.err != nil {
		return
	}
	f, err := os.Open(src)
	if err != nil {
		r.err = err
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		r.err = err
		return
	}
	r.parents(name)
	if r.err = r.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: fi.Size(), ModTime: epoch}); r.err == nil {
		_, r.err = io.Copy(r.tw, f)
	}
}

// hostTree copies the host directory src to name, keeping symlinks. keep,
// if not nil, says which paths (relative to src, slash-separated) to
// copy; a directory it refuses is skipped whole.
func (r *rootfsWriter) hostTree(name, src string, keep func(rel string, dir bool) bool) {
	if r.err != nil {
		return
	}
	r.err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if keep != nil && rel != "." && !keep(filepath.ToSlash(rel), d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := path.Join(name, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			r.dir(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			r.symlink(dst, target)
		case d.Type().IsRegular():
			r.hostFile(dst, p, int64(fi.Mode().Perm()))
		}
		return r.err
	})
}
