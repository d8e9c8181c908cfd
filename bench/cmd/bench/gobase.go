package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// The Go base image (base/go): the host's Go toolchain (the one `go` in
// PATH runs, /usr/local/go here: statically linked, so it needs no
// libraries) at /usr/local/go, without what builds never read (tests, test
// data, the toolchain's own sources under src/cmd, docs), busybox for
// /bin/sh, the CA bundle (go mod download fetches from the module proxy
// over TLS) and a minimal /etc. The runtime base image (base/runtime) is
// what a static binary needs, like a distroless image: users and /tmp, no
// shell (the Go app copies the CA bundle in from the Go image).

// goBaseChanges are applied to the imported Go image's configuration.
var goBaseChanges = []string{
	"ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"ENV GOPATH=/go",
	// Never download another toolchain: the image's is the one measured.
	"ENV GOTOOLCHAIN=local",
	"WORKDIR /go",
	`CMD ["/bin/sh"]`,
}

// runtimeBaseChanges are applied to the imported runtime image's
// configuration.
var runtimeBaseChanges = []string{
	"ENV PATH=/usr/local/bin:/usr/bin:/bin",
}

// hostGoroot is the GOROOT of the go command in PATH.
func hostGoroot() (string, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT: %w", err)
	}
	root := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(root, "bin", "go")); err != nil {
		return "", fmt.Errorf("no Go toolchain at %s: %w", root, err)
	}
	return root, nil
}

// keepGorootPath says whether the Go base image takes the GOROOT path rel
// (slash-separated): everything a `go build` of a module reads, not the
// tests, test data, docs or the toolchain's own sources (its binaries in
// pkg/tool are kept).
func keepGorootPath(rel string, dir bool) bool {
	top, _, _ := strings.Cut(rel, "/")
	switch top {
	case "api", "doc", "misc", "test":
		return false
	}
	if rel == "src/cmd" || path.Base(rel) == "testdata" {
		return false
	}
	return dir || !strings.HasSuffix(rel, "_test.go")
}

// writeGoRootfs writes the Go base image's root filesystem as a tar to w.
func writeGoRootfs(w io.Writer) error {
	goroot, err := hostGoroot()
	if err != nil {
		return err
	}
	tw := newRootfsWriter(w)
	tw.dir("go/bin", 0o755)
	tw.dir("go/pkg/mod", 0o755)
	tw.shell()
	tw.users()
	tw.hostTree("usr/local/go", goroot, keepGorootPath)
	return tw.close()
}

// writeRuntimeRootfs writes the runtime base image's root filesystem: no
// shell, no libraries, only users and /tmp.
func writeRuntimeRootfs(w io.Writer) error {
	tw := newRootfsWriter(w)
	tw.users()
	return tw.close()
}
