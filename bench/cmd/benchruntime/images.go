package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/buildah/baseimage"
)

// image is one sample app's image, imported into the app runtime's own
// storage (no registry: Start finds it there and pulls nothing).
type image struct {
	// Name says which app it is in the tables.
	Name string
	// Ref is the image's local reference.
	Ref string
	// Port is the port the app listens on; Path the path the benchmark
	// asks (its health path as well).
	Port int
	Path string
}

// httpdScript is the busybox app's command: busybox httpd serving one
// small file on $PORT (one process per connection, no keep-alive).
const httpdScript = `mkdir -p /tmp/www && echo ok > /tmp/www/index.html
trap 'exit 0' TERM
httpd -f -p "$PORT" -h /tmp/www &
wait`

// makeImages imports the two sample apps into the runtime's storage at
// dir: busybox httpd, and bench/app-go (a Go service on chi, built here
// with CGO_ENABLED=0) on the same busybox root file system.
func makeImages(ctx context.Context, dir, repoRoot string) ([]image, error) {
	var bb bytes.Buffer
	if err := baseimage.WriteBusyboxTar(&bb, baseimage.BusyboxPath); err != nil {
		return nil, err
	}
	busybox := filepath.Join(dir, "busybox.tar")
	if err := os.WriteFile(busybox, bb.Bytes(), 0o600); err != nil {
		return nil, err
	}
	cmd, _ := json.Marshal([]string{"/bin/sh", "-c", httpdScript})
	httpd := image{Name: "busybox-httpd", Ref: "localhost/bench/httpd:1", Port: 8000, Path: "/"}
	if err := importImage(ctx, dir, busybox, httpd.Ref, "CMD "+string(cmd), "EXPOSE 8000"); err != nil {
		return nil, err
	}

	bin := filepath.Join(dir, "notes")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Dir = filepath.Join(repoRoot, "bench", "app-go")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build bench/app-go (needs the Go module proxy or its modules cached): %v: %s", err, out)
	}
	notesTar := filepath.Join(dir, "notes.tar")
	if err := withFile(bb.Bytes(), bin, "usr/local/bin/notes", notesTar); err != nil {
		return nil, err
	}
	notes := image{Name: "go-notes", Ref: "localhost/bench/notes:1", Port: 8080, Path: "/healthz"}
	if err := importImage(ctx, dir, notesTar, notes.Ref,
		`CMD ["/usr/local/bin/notes", "-listen", ":8080"]`, "EXPOSE 8080", "USER nobody"); err != nil {
		return nil, err
	}
	return []image{httpd, notes}, nil
}

// withFile writes to out the tar base with the file src added at name
// (mode 0755, its directories too).
func withFile(base []byte, src, name, out string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tr := tar.NewReader(bytes.NewReader(base))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	mtime := time.Unix(0, 0)
	for _, d := range []string{"usr/local/", "usr/local/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: mtime}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, b.Bytes(), 0o600)
}

// importImage imports the root file system tar as ref into the runtime's
// storage at dir, with the Dockerfile-style changes.
func importImage(ctx context.Context, dir, tarPath, ref string, changes ...string) error {
	args := []string{"import"}
	for _, c := range append(append([]string{}, baseimage.Changes[0]), changes...) {
		args = append(args, "--change", c)
	}
	if out, err := podmanAt(ctx, dir, append(args, tarPath, ref)...); err != nil {
		return fmt.Errorf("import %s: %v: %s", ref, err, out)
	}
	return nil
}

// podmanAt runs the podman CLI on the app runtime's storage at dir, as the
// runtime itself does (its containers.conf, storage and run root): what
// "by hand" means in the tables.
func podmanAt(ctx context.Context, dir string, args ...string) ([]byte, error) {
	global := []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "overlay"}
	cmd := exec.CommandContext(ctx, "podman", append(global, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CONTAINERS_CONF=" + filepath.Join(dir, "conf", "containers.conf"),
		"TMPDIR=" + filepath.Join(dir, "tmp")}
	return cmd.CombinedOutput()
}

// checkRunRoot fails unless the runtime at dir uses dir/run as its run
// root (podmanAt assumes it).
func checkRunRoot(dir string) error {
	if len(filepath.Join(dir, "run")) > apps.MaxRunRoot {
		return fmt.Errorf("work directory %s is too long for podman's run root: pick a shorter -dir", dir)
	}
	return nil
}
