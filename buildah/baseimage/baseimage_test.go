package baseimage_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/buildah/baseimage"
	"github.com/slipway-ci/slipway/internal/testenv"
)

func TestWriteBusyboxTar(t *testing.T) {
	var buf bytes.Buffer
	if err := baseimage.WriteBusyboxTar(&buf, baseimage.BusyboxPath); err != nil {
		t.Fatal(err)
	}
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = h
	}
	for _, name := range []string{"sh", "echo", "cat", "sleep", "ls", "false", "true", "mkdir"} {
		h := entries["bin/"+name]
		if h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bin/%s = %+v, want a symlink to busybox", name, h)
		}
	}
	if h := entries["bin/busybox"]; h == nil || h.Size == 0 || h.Mode&0o111 == 0 {
		t.Errorf("bin/busybox = %+v, want an executable file", h)
	}
	if h := entries["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp/ = %+v, want mode 1777", h)
	}
}

func TestWriteBusyboxTarRefusesDynamic(t *testing.T) {
	// /bin/ls is dynamically linked on Debian.
	err := baseimage.WriteBusyboxTar(io.Discard, "/bin/ls")
	if err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("WriteBusyboxTar(/bin/ls) = %v, want a dynamically-linked error with the install hint", err)
	}
}

func TestBusyboxBuilds(t *testing.T) {
	b := testenv.Builder(t)
	if err := baseimage.Busybox(t.Context(), b, "localhost/base/busybox:1"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	df := "FROM localhost/base/busybox:1\nRUN echo \"path=$PATH uid=$(id -u)\"\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: dir, Tag: "localhost/app:1", Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin uid=0") {
		t.Errorf("the RUN step's PATH and uid:\n%s", out.String())
	}
	cfg, err := b.Command(t.Context(), "inspect", "--type", "image", "--format", "{{json .OCIv1.Config.Cmd}}", "localhost/app:1").CombinedOutput()
	if err != nil {
		t.Fatalf("buildah inspect: %v: %s", err, cfg)
	}
	if got := strings.TrimSpace(string(cfg)); got != `["/bin/sh"]` {
		t.Errorf("the image's command = %s, want [\"/bin/sh\"]", got)
	}
}
