package main

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/podman"
)

// The Node base image is made from the host, because no public registry is
// reachable: the host's node binary and the shared libraries it links,
// the host's npm, Debian's statically linked busybox for /bin/sh (RUN
// steps), the host's CA bundle (npm ci inside a build talks to the npm
// registry over TLS) and a minimal /etc. It is imported once per benchmark
// run and pushed to the registry under test, so every system pulls the same
// image.

// nodeBaseChanges are applied to the imported image's configuration.
var nodeBaseChanges = []string{
	"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
	`CMD ["node"]`,
}

// hostPaths says where the Node base image's parts come from.
type hostPaths struct {
	Node     string // the node executable
	NPMDir   string // npm's package directory (…/node_modules/npm)
	Busybox  string // a statically linked busybox
	CABundle string
}

// findHostPaths locates node, npm and busybox on the host.
func findHostPaths() (hostPaths, error) {
	var h hostPaths
	node, err := exec.LookPath("node")
	if err != nil {
		return h, fmt.Errorf("node base image: node not found: %w", err)
	}
	if h.Node, err = filepath.EvalSymlinks(node); err != nil {
		return h, err
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return h, fmt.Errorf("node base image: npm not found: %w", err)
	}
	cli, err := filepath.EvalSymlinks(npm) // …/node_modules/npm/bin/npm-cli.js
	if err != nil {
		return h, err
	}
	h.NPMDir = filepath.Dir(filepath.Dir(cli))
	if _, err := os.Stat(filepath.Join(h.NPMDir, "package.json")); err != nil {
		return h, fmt.Errorf("node base image: npm resolves to %s, not inside an npm package directory", cli)
	}
	h.Busybox = "/bin/busybox"
	if _, err := os.Stat(h.Busybox); err != nil {
		return h, fmt.Errorf("node base image: %s missing (apt-get install busybox-static)", h.Busybox)
	}
	h.CABundle = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(h.CABundle); err != nil {
		return h, fmt.Errorf("node base image: %s missing (apt-get install ca-certificates)", h.CABundle)
	}
	return h, nil
}

var lddLine = regexp.MustCompile(`^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$`)

// sharedLibs lists the absolute paths of the libraries bin links, as ldd
// prints them (including the dynamic loader).
func sharedLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if m := lddLine.FindStringSubmatch(sc.Text()); m != nil {
			libs = append(libs, m[1])
		}
	}
	if len(libs) == 0 {
		return nil, fmt.Errorf("ldd %s: no libraries found in %q", bin, out)
	}
	return libs, nil
}

// writeNodeRootfs writes the base image's root filesystem as a tar to w.
func writeNodeRootfs(w io.Writer, h hostPaths) error {
	libs, err := sharedLibs(h.Node)
	if err != nil {
		return err
	}
	applets, err := busyboxApplets(h.Busybox)
	if err != nil {
		return err
	}
	tw := &rootfsWriter{tw: tar.NewWriter(w), dirs: map[string]bool{}}
	for _, d := range []string{"bin", "dev", "etc", "home", "proc", "root", "sys", "usr/bin", "usr/etc", "usr/local/bin", "var/tmp", "app"} {
		tw.dir(d, 0o755)
	}
	tw.dir("tmp", 0o1777)
	tw.hostFile("bin/busybox", h.Busybox, 0o755)
	for _, a := range applets {
		tw.symlink("bin/"+a, "busybox")
	}
	// npm's scripts start with "#!/usr/bin/env node".
	tw.symlink("usr/bin/env", "/bin/busybox")
	tw.hostFile("usr/bin/node", h.Node, 0o755)
	for _, lib := range libs {
		tw.hostFile(strings.TrimPrefix(lib, "/"), lib, 0o755)
	}
	tw.hostTree("usr/lib/node_modules/npm", h.NPMDir)
	tw.symlink("usr/bin/npm", "../lib/node_modules/npm/bin/npm-cli.js")
	tw.symlink("usr/bin/npx", "../lib/node_modules/npm/bin/npx-cli.js")
	tw.hostFile("etc/ssl/certs/ca-certificates.crt", h.CABundle, 0o644)
	tw.file("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
	tw.file("etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\n")
	tw.file("etc/nsswitch.conf", 0o644, "passwd: files\ngroup: files\nhosts: files dns\n")
	// npm's global config ($PREFIX/etc/npmrc, PREFIX=/usr).
	tw.file("usr/etc/npmrc", 0o644, "cafile=/etc/ssl/certs/ca-certificates.crt\nupdate-notifier=false\nfund=false\naudit=false\n")
	if tw.err != nil {
		return fmt.Errorf("node base image: %w", tw.err)
	}
	if err := tw.tw.Close(); err != nil {
		return fmt.Errorf("node base image: %w", err)
	}
	return nil
}

// makeNodeBase imports the Node base image as ref in p's storage and
// pushes it.
func makeNodeBase(ctx context.Context, p *podman.Podman, ref string, log io.Writer) error {
	h, err := findHostPaths()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(p.Config().TmpDir, "node-rootfs-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := writeNodeRootfs(f, h); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := p.Import(ctx, f.Name(), ref, nodeBaseChanges...); err != nil {
		return err
	}
	if _, err := p.Push(ctx, ref, false, log); err != nil {
		return err
	}
	return nil
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

// hostTree copies the host directory src to name, keeping symlinks.
func (r *rootfsWriter) hostTree(name, src string) {
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
