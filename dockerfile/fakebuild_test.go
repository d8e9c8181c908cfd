package dockerfile_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/distribution/reference"
	docker "github.com/fsouza/go-dockerclient"
	"golang.org/x/sys/unix"

	"github.com/slipway-ci/slipway/dockerfile"
)

// This file runs the real buildah on a Dockerfile whose base images cannot
// be pulled: each build gets a throwaway storage holding a fake image under
// every base name it uses, and a context holding every path it copies.

// buildah is the builder binary and the configuration every build here
// shares.
type buildah struct {
	bin   string
	dir   string   // containers.conf, registries.conf, policy.json
	env   []string // the environment of every buildah command
	exit0 string   // a static program that exits 0 whatever its arguments
	// ulimits are the --ulimit flags: the test's own limits, since these
	// machines cannot raise them (no CAP_SYS_RESOURCE) and buildah's
	// defaults ask for more.
	ulimits []string
}

// newBuildah finds buildah 1.42.1 (SLIPWAY_BUILDAH, else where
// scripts/setup installs it) and writes its configuration. It fails the
// test, never skips it, when buildah is missing.
func newBuildah(t *testing.T) *buildah {
	t.Helper()
	bin := os.Getenv("SLIPWAY_BUILDAH")
	if bin == "" {
		bin = "/usr/local/libexec/slipway/buildah"
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("buildah %s is needed to check the parse against the builder: run scripts/setup (it builds tools/buildah into %s) or set SLIPWAY_BUILDAH: %v", buildahVersion, bin, err)
		}
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "version "+buildahVersion+" ") {
		t.Fatalf("%s --version: %q, %v; want buildah %s (scripts/setup builds it)", bin, out, err, buildahVersion)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("building with buildah needs root (as on the CI machine)")
	}
	dir := t.TempDir()
	files := map[string]string{
		// runc, since crun fails on these machines; no default ulimits,
		// which runc cannot set without CAP_SYS_RESOURCE.
		"containers.conf": "[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n",
		// Short names are Docker Hub's, as in a Dockerfile; the fake
		// images are stored under the fully qualified names.
		"registries.conf": "unqualified-search-registries = [\"docker.io\"]\nshort-name-mode = \"permissive\"\n",
		"policy.json":     `{"default": [{"type": "insecureAcceptAnything"}]}`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bh := &buildah{bin: bin, dir: dir}
	proxy := downloadProxy(t)
	bh.env = append(os.Environ(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
		"HTTPS_PROXY="+proxy, "https_proxy="+proxy, "NO_PROXY=", "no_proxy=",
	)
	for _, l := range []struct {
		name     string
		resource int
	}{{"nofile", unix.RLIMIT_NOFILE}, {"nproc", unix.RLIMIT_NPROC}} {
		var lim unix.Rlimit
		if err := unix.Getrlimit(l.resource, &lim); err != nil {
			t.Fatal(err)
		}
		bh.ulimits = append(bh.ulimits, fmt.Sprintf("--ulimit=%s=%d:%d", l.name, lim.Cur, lim.Max))
	}
	bh.exit0 = buildExit0(t)
	return bh
}

// downloadProxy stands for the web for an ADD of a remote file: buildah
// fetches an https URL through HTTPS_PROXY, and this proxy tunnels every
// CONNECT to one local TLS server, which answers every request with a small
// file. Builds run with --tls-verify=false, which ADD honours, since that
// server's certificate names no real host. It returns the proxy's URL.
func downloadProxy(t *testing.T) string {
	t.Helper()
	web := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "downloaded from %s\n", r.URL.Path)
	}))
	t.Cleanup(web.Close)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "this proxy only tunnels (CONNECT)", http.StatusMethodNotAllowed)
			return
		}
		upstream, err := net.Dial("tcp", web.Listener.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer upstream.Close()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(upstream, conn)
			upstream.Close()
		}()
		io.Copy(conn, upstream)
		conn.Close()
		<-done
	}))
	t.Cleanup(proxy.Close)
	return proxy.URL
}

// buildExit0 compiles a static program that exits 0 whatever its
// arguments: the fake images' shell and every other program they hold.
func buildExit0(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"go.mod":  "module exit0\n",
		"main.go": "package main\n\nfunc main() {}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "exit0")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the fake programs: %v\n%s", err, out)
	}
	return bin
}

// storage is one build's throwaway image storage.
type storage struct {
	*buildah
	root, runroot, tmp string
}

func (bh *buildah) newStorage(t *testing.T) *storage {
	t.Helper()
	dir := t.TempDir()
	s := &storage{buildah: bh, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run"), tmp: filepath.Join(dir, "tmp")}
	if err := os.Mkdir(s.tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	return s
}

// command is a buildah command on the storage. It runs in a mount
// namespace of its own, so that the mounts it leaves (those of a failed
// build's working containers) go when it ends.
func (s *storage) command(t *testing.T, args ...string) *exec.Cmd {
	global := []string{"--root", s.root, "--runroot", s.runroot, "--storage-driver", "overlay"}
	cmd := exec.CommandContext(t.Context(), s.bin, append(global, args...)...)
	cmd.Env = append(slices.Clone(s.env), "TMPDIR="+s.tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	return cmd
}

func (s *storage) run(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := s.command(t, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("buildah %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// build runs buildah bud on the Dockerfile as Slipway's builder would,
// plus debug logging, and returns its stdout and stderr as one stream.
// With no target it builds every stage (by default buildah skips those
// the last one does not need), else the target stage and those it needs.
func (s *storage) build(t *testing.T, file, contextDir string, buildArgs map[string]string, target string) ([]byte, error) {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--log-level=debug", "bud",
		"--layers", "--pull=never",
		"--runtime=runc", "--network=none",
		// Remote ADDs come from downloadProxy; RUNs get no proxy.
		"--tls-verify=false", "--http-proxy=false",
		"--signature-policy", filepath.Join(s.dir, "policy.json"),
		"-f", abs}
	args = append(args, s.ulimits...)
	if target == "" {
		args = append(args, "--skip-unused-stages=false")
	} else {
		args = append(args, "--target", target)
	}
	for _, k := range slices.Sorted(maps.Keys(buildArgs)) {
		args = append(args, "--build-arg", k+"="+buildArgs[k])
	}
	return s.command(t, append(args, contextDir)...).CombinedOutput()
}

// needs are what a Dockerfile's build takes from outside: base images,
// files in the context and in images, programs and users.
type needs struct {
	images       []string // external images: stage bases, COPY --from and RUN --mount from=
	contextPaths []string // COPY/ADD sources and bind mount sources in the context
	imagePaths   []string // COPY --from and mount from= sources, in a stage or an image; WORKDIRs
	programs     []string // what exec-form RUNs and SHELL run
	users        []string // user and group names USER and --chown use
}

// needsOf lists what the parsed Dockerfile needs.
func needsOf(f *dockerfile.File) needs {
	var n needs
	external := func(stage int, ref string) bool {
		return f.StageIndex(ref, stage) < 0 && !strings.EqualFold(ref, "scratch")
	}
	owner := func(spec string) {
		for _, name := range strings.SplitN(spec, ":", 2) {
			if _, err := strconv.Atoi(name); err != nil && name != "" {
				n.users = append(n.users, name)
			}
		}
	}
	for i, st := range f.Stages {
		if st.BaseStage < 0 && !st.IsScratch() {
			n.images = append(n.images, st.Base)
		}
		for _, s := range st.Steps {
			// A WORKDIR must not be a file an image path made.
			if wd := s.Config.WorkingDir; wd != "" {
				n.imagePaths = append(n.imagePaths, wd+"/")
			}
			switch s.Command {
			case "user":
				if len(s.Args) > 0 {
					owner(s.Args[0])
				}
			case "shell":
				n.programs = append(n.programs, s.Args[0])
			}
			for _, c := range s.Copies {
				owner(c.Chown)
				if c.From != "" {
					if external(i, c.From) {
						n.images = append(n.images, c.From)
					}
					n.imagePaths = append(n.imagePaths, c.Src...)
					continue
				}
				for j, src := range c.Src {
					if j < len(c.Files) || strings.HasPrefix(src, "<<") || c.Download && strings.Contains(src, "://") {
						continue
					}
					n.contextPaths = append(n.contextPaths, src)
				}
			}
			for _, r := range s.Runs {
				if !r.Shell && len(r.Args) > 0 {
					n.programs = append(n.programs, r.Args[0])
				}
				for _, m := range r.Mounts {
					opts := mountOptions(m)
					if typ := opts["type"]; typ != "" && typ != "bind" && typ != "cache" {
						continue
					}
					src := opts["source"]
					if src == "" {
						src = opts["src"]
					}
					if t := opts["target"]; t == "." || strings.HasSuffix(t, "/") {
						// Mounted on a directory: a directory.
						src += "/"
					}
					switch from := opts["from"]; {
					case from != "":
						if external(i, from) {
							n.images = append(n.images, from)
						}
						n.imagePaths = append(n.imagePaths, src)
					case opts["type"] != "cache":
						n.contextPaths = append(n.contextPaths, src)
					}
				}
			}
		}
	}
	for _, l := range []*[]string{&n.images, &n.contextPaths, &n.imagePaths, &n.programs, &n.users} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return n
}

// mountOptions splits a RUN --mount value into its options ("type=bind,
// source=x,readwrite": type, source, readwrite).
func mountOptions(m string) map[string]string {
	opts := map[string]string{}
	for _, kv := range strings.Split(m, ",") {
		k, v, _ := strings.Cut(kv, "=")
		opts[strings.ToLower(strings.TrimSpace(k))] = v
	}
	return opts
}

// newContext makes a build context that holds every context path the
// Dockerfile needs.
func newContext(t *testing.T, n needs) string {
	t.Helper()
	dir := t.TempDir()
	if err := materialize(dir, n.contextPaths); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fakeBase builds the image that stands for every external image the
// Dockerfile names, stores it under each of their names and returns its
// config. Its programs (/bin/sh, the exec-form RUN and SHELL programs) all
// exit 0, so every RUN succeeds at once; it has an /etc/passwd and
// /etc/group with the users the Dockerfile names, and every path a COPY
// --from or a mount from= reads from a stage or an image (a stage built on
// it has them too). env is set on it besides PATH.
func (s *storage) fakeBase(t *testing.T, n needs, env []string) docker.Config {
	t.Helper()
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	sh := filepath.Join(rootfs, "bin", "sh")
	if err := os.MkdirAll(filepath.Dir(sh), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(s.exit0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sh, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range n.programs {
		// A name without a slash is found through PATH.
		if !strings.Contains(p, "/") {
			p = "/usr/bin/" + p
		}
		p = filepath.Join(rootfs, filepath.Clean("/"+p))
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/bin/sh", p); err != nil {
			t.Fatal(err)
		}
	}
	passwd, group := "root:x:0:0:root:/root:/bin/sh\n", "root:x:0:\n"
	for i, u := range n.users {
		if u == "root" {
			continue
		}
		passwd += fmt.Sprintf("%s:x:%d:%d::/home/%s:/bin/sh\n", u, 1000+i, 1000+i, u)
		group += fmt.Sprintf("%s:x:%d:\n", u, 1000+i)
	}
	for name, content := range map[string]string{"passwd": passwd, "group": group} {
		p := filepath.Join(rootfs, "etc", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := materialize(rootfs, n.imagePaths); err != nil {
		t.Fatal(err)
	}
	containerfile := "FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
	for _, e := range env {
		containerfile += "ENV " + e + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(containerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	const fake = "localhost/slipway-fake-base:latest"
	s.run(t, "bud", "--pull=never", "--signature-policy", filepath.Join(s.dir, "policy.json"), "-t", fake, dir)
	var tags, digested []string
	for _, ref := range n.images {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			t.Fatalf("base image %q: %v", ref, err)
		}
		if d, ok := named.(reference.Digested); ok {
			// buildah looks an image up by name@digest, tag dropped.
			c, err := reference.WithDigest(reference.TrimNamed(named), d.Digest())
			if err != nil {
				t.Fatal(err)
			}
			digested = append(digested, c.String())
			continue
		}
		tags = append(tags, reference.TagNameOnly(named).String())
	}
	if len(tags) > 0 {
		s.run(t, append([]string{"tag", fake}, tags...)...)
	}
	out := strings.TrimSpace(string(s.run(t, "inspect", "--type=image", "--format={{.FromImageID}} {{json .Docker.Config}}", fake)))
	id, config, _ := strings.Cut(out, " ")
	if len(digested) > 0 {
		s.addImageNames(t, id, digested)
	}
	var cfg docker.Config
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		t.Fatalf("the fake base's config %q: %v", config, err)
	}
	return cfg
}

// addImageNames adds names that hold a digest to an image. buildah will not
// tag by digest, since an image's manifest digest cannot be chosen, but a
// name is only a string in the storage's image record, and buildah finds
// an image whose names hold the name@digest it looks for. So this edits
// the record, while no buildah runs on the storage.
func (s *storage) addImageNames(t *testing.T, id string, names []string) {
	t.Helper()
	file := filepath.Join(s.root, "overlay-images", "images.json")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var images []map[string]json.RawMessage
	if err := json.Unmarshal(data, &images); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	found := false
	for _, img := range images {
		var imgID string
		var have []string
		json.Unmarshal(img["id"], &imgID)
		if imgID != id {
			continue
		}
		found = true
		json.Unmarshal(img["names"], &have)
		img["names"], _ = json.Marshal(append(have, names...))
	}
	if !found {
		t.Fatalf("image %s is not in %s", id, file)
	}
	data, err = json.Marshal(images)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// materialize creates every path of paths under root (paths as a
// Dockerfile names them, relative or absolute, possibly with glob
// patterns): a directory for one that ends in "/" or that another lies
// under, an empty file otherwise, and a name matching the pattern for a
// glob. What exists already stays.
func materialize(root string, paths []string) error {
	isDir := map[string]bool{}
	var clean []string
	for _, p := range paths {
		c := path.Clean("/" + globExample(p))
		if c == "/" {
			continue
		}
		clean = append(clean, c)
		if strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") {
			isDir[c] = true
		}
		for d := path.Dir(c); d != "/"; d = path.Dir(d) {
			isDir[d] = true
		}
	}
	for _, c := range clean {
		p := filepath.Join(root, filepath.FromSlash(c))
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if isDir[c] {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// globExample is a name the glob pattern p matches: each "*" and "?" an
// "x", each "[...]" class its first character (a negated class is not
// handled).
func globExample(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*', '?':
			b.WriteByte('x')
		case '[':
			end := strings.IndexByte(p[i:], ']')
			if end < 0 {
				b.WriteByte(c)
				continue
			}
			class := strings.TrimLeft(p[i+1:i+end], "^!")
			if class != "" {
				b.WriteByte(class[0])
			}
			i += end
		case '\\':
			if i+1 < len(p) {
				i++
				b.WriteByte(p[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
