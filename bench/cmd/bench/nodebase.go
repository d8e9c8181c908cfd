package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// The Node base image (base/node): the host's node binary and the shared
// libraries it links, the host's npm, busybox for /bin/sh (RUN steps), the
// CA bundle (npm ci inside a build talks to the npm registry over TLS)
// and a minimal /etc.

// nodeBaseChanges are applied to the imported image's configuration.
var nodeBaseChanges = []string{
	"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
	`CMD ["node"]`,
}

// nodePaths says where the Node base image's node and npm come from.
type nodePaths struct {
	Node   string // the node executable
	NPMDir string // npm's package directory (…/node_modules/npm)
}

// findNodePaths locates node and npm on the host.
func findNodePaths() (nodePaths, error) {
	var h nodePaths
	node, err := exec.LookPath("node")
	if err != nil {
		return h, fmt.Errorf("node not found: %w", err)
	}
	if h.Node, err = filepath.EvalSymlinks(node); err != nil {
		return h, err
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return h, fmt.Errorf("npm not found: %w", err)
	}
	cli, err := filepath.EvalSymlinks(npm) // …/node_modules/npm/bin/npm-cli.js
	if err != nil {
		return h, err
	}
	h.NPMDir = filepath.Dir(filepath.Dir(cli))
	if _, err := os.Stat(filepath.Join(h.NPMDir, "package.json")); err != nil {
		return h, fmt.Errorf("npm resolves to %s, not inside an npm package directory", cli)
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

// writeNodeRootfs writes the Node base image's root filesystem as a tar
// to w.
func writeNodeRootfs(w io.Writer) error {
	h, err := findNodePaths()
	if err != nil {
		return err
	}
	libs, err := sharedLibs(h.Node)
	if err != nil {
		return err
	}
	tw := newRootfsWriter(w)
	tw.dir("usr/etc", 0o755)
	tw.dir("app", 0o755)
	tw.shell()
	tw.users()
	tw.hostFile("usr/bin/node", h.Node, 0o755)
	for _, lib := range libs {
		tw.hostFile(strings.TrimPrefix(lib, "/"), lib, 0o755)
	}
	tw.hostTree("usr/lib/node_modules/npm", h.NPMDir, nil)
	tw.symlink("usr/bin/npm", "../lib/node_modules/npm/bin/npm-cli.js")
	tw.symlink("usr/bin/npx", "../lib/node_modules/npm/bin/npx-cli.js")
	// npm's global config ($PREFIX/etc/npmrc, PREFIX=/usr).
	tw.file("usr/etc/npmrc", 0o644, "cafile=/etc/ssl/certs/ca-certificates.crt\nupdate-notifier=false\nfund=false\naudit=false\n")
	return tw.close()
}
