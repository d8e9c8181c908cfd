// Package baseimage makes small base images locally, for tests and the
// server's demo mode: no container registry on the internet is needed.
//
// Busybox makes an image from the host's statically linked busybox (Debian:
// apt-get install busybox-static). It must not pull anything.
package baseimage

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/buildah"
)

// BusyboxPath is where Debian's busybox-static installs the binary.
const BusyboxPath = "/bin/busybox"

// Changes are applied to the imported image's configuration.
var Changes = []string{
	"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	`CMD ["/bin/sh"]`,
}

// Busybox imports a busybox root filesystem made from BusyboxPath as the
// local image ref (e.g. "127.0.0.1:5000/base/busybox:1"). Pushing it is the
// caller's business.
func Busybox(ctx context.Context, b *buildah.Builder, ref string) error {
	f, err := os.CreateTemp(b.Config().TmpDir, "busybox-*.tar")
	if err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	defer os.Remove(f.Name())
	if err := WriteBusyboxTar(f, BusyboxPath); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	if err := b.Import(ctx, f.Name(), ref, Changes...); err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	return nil
}

// WriteBusyboxTar writes a tar of a minimal root filesystem to w:
// /bin/busybox (a copy of busybox, which must be statically linked), a
// symlink in /bin for every applet it has (sh, echo, cat, sleep, ...),
// /etc/passwd and /etc/group with root and nobody, and empty /tmp, /root,
// /home, /var, /usr/bin.
func WriteBusyboxTar(w io.Writer, busybox string) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("busybox image: %w (apt-get install busybox-static)", err)
	}
	if err := checkStatic(bin); err != nil {
		return fmt.Errorf("busybox image: %s: %w (apt-get install busybox-static)", busybox, err)
	}
	applets, err := applets(busybox)
	if err != nil {
		return err
	}

	mtime := time.Unix(0, 0)
	tw := tar.NewWriter(w)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: mtime})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	err = func() error {
		for _, d := range []string{"bin", "dev", "etc", "home", "proc", "root", "sys", "usr", "usr/bin", "var"} {
			if err := dir(d, 0o755); err != nil {
				return err
			}
		}
		if err := dir("tmp", 0o1777); err != nil {
			return err
		}
		if err := file("bin/busybox", 0o755, bin); err != nil {
			return err
		}
		for _, a := range applets {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: mtime}); err != nil {
				return err
			}
		}
		if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")); err != nil {
			return err
		}
		if err := file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")); err != nil {
			return err
		}
		return tw.Close()
	}()
	if err != nil {
		return fmt.Errorf("busybox image: write tar: %w", err)
	}
	return nil
}

// applets lists busybox's applets (busybox --list).
func applets(busybox string) ([]string, error) {
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox image: %s --list: %w", busybox, err)
	}
	var names []string
	for _, a := range strings.Fields(string(out)) {
		// Guard the tar against odd names; "[" and "[[" are fine.
		if a == "busybox" || a != path.Base(a) || strings.HasPrefix(a, ".") {
			continue
		}
		names = append(names, a)
	}
	slices.Sort(names)
	if !slices.Contains(names, "sh") {
		return nil, fmt.Errorf("busybox image: %s has no sh applet", busybox)
	}
	return names, nil
}

// checkStatic refuses a dynamically linked binary: the image has no libc.
func checkStatic(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("not an ELF binary: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("dynamically linked")
		}
	}
	return nil
}
