package buildah_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// lines is a concurrency-safe io.Writer that records whole lines and can
// signal when a line containing a given text arrives.
type lines struct {
	mu      sync.Mutex
	all     []string
	waitFor string
	seen    chan struct{}
}

func newLines(waitFor string) *lines {
	return &lines{waitFor: waitFor, seen: make(chan struct{})}
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(p)
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		l.all = append(l.all, "NOT ONE LINE: "+s)
	}
	s = strings.TrimSuffix(s, "\n")
	l.all = append(l.all, s)
	if l.waitFor != "" && strings.Contains(s, l.waitFor) {
		l.waitFor = ""
		close(l.seen)
	}
	return len(p), nil
}

func (l *lines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestNewWritesContainersConf(t *testing.T) {
	t.Parallel()
	b := testenv.Builder(t)
	conf, err := os.ReadFile(b.ConfFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"default_ulimits = []", `runtime = "runc"`, `cgroup_manager = "cgroupfs"`, `tmp_dir = "` + b.Config().TmpDir + `"`,
		`default_rootless_network_cmd = "slirp4netns"`, `network_cmd_options = ["allow_host_loopback=false"]`} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("containers.conf lacks %q:\n%s", want, conf)
		}
	}
	// buildah reads it: the runtime and the storage root are ours.
	out, err := b.Command(t.Context(), "info").Output()
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Host  struct{ OCIRuntime string }
		Store struct{ GraphRoot, GraphDriverName string }
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%s %s %s", info.Host.OCIRuntime, info.Store.GraphRoot, info.Store.GraphDriverName), "runc "+b.Config().Root+" overlay"; got != want {
		t.Errorf("buildah info = %q, want %q", got, want)
	}
	if b.Config().Binary != buildah.DefaultBinary || b.Config().Runtime != buildah.DefaultRuntime {
		t.Errorf("binary %s, runtime %s; want %s, %s", b.Config().Binary, b.Config().Runtime, buildah.DefaultBinary, buildah.DefaultRuntime)
	}
	if got := b.String(); got != "buildah "+b.Version() || !strings.HasPrefix(b.Version(), "1.") {
		t.Errorf("String() = %q, Version() = %q", got, b.Version())
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	if _, err := buildah.New(t.Context(), buildah.Config{}); err == nil {
		t.Error("New with an empty Config succeeded")
	}
	cfg := buildah.ConfigAt(t.TempDir())
	cfg.Binary = "buildah-does-not-exist"
	_, err := buildah.New(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "scripts/setup") {
		t.Errorf("New with a missing binary = %v, want an error naming scripts/setup", err)
	}
	cfg = buildah.ConfigAt(t.TempDir())
	cfg.Engine = "docker"
	if _, err := buildah.New(t.Context(), cfg); err == nil {
		t.Error("New with an unknown engine succeeded")
	}
}

// New refuses a buildah older than MinVersion. The stand-in answers
// `version --json` the way Debian 12's buildah 1.28.2 does; the real
// builder is accepted.
func TestNewRefusesAnOldBuildah(t *testing.T) {
	t.Parallel()
	old := filepath.Join(t.TempDir(), "buildah")
	script := "#!/bin/sh\n[ \"$1 $2\" = \"version --json\" ] || exit 2\n" +
		"echo '{\"version\": \"1.28.2\", \"goVersion\": \"go1.19.8\", \"imageSpec\": \"1.0.2-dev\", \"runtimeSpec\": \"1.0.2-dev\", \"cniSpec\": \"1.0.0\", \"libcniVersion\": \"\", \"imageVersion\": \"5.23.1\", \"gitCommit\": \"\", \"built\": \"Thu Jan  1 00:00:00 1970\", \"osArch\": \"linux/amd64\", \"buildPlatform\": \"linux/amd64\"}'\n"
	if err := os.WriteFile(old, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := buildah.ConfigAt(t.TempDir())
	cfg.Binary = old
	_, err := buildah.New(t.Context(), cfg)
	if err == nil {
		t.Fatal("New accepted buildah 1.28.2")
	}
	for _, want := range []string{"1.28.2", buildah.MinVersion, "CVE-2024-1753", "scripts/setup"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New with buildah 1.28.2 = %v, want it to name %q", err, want)
		}
	}
	b, err := buildah.New(t.Context(), buildah.ConfigAt(t.TempDir()))
	if err != nil {
		t.Fatalf("New with %s: %v", buildah.DefaultBinary, err)
	}
	t.Logf("builder: %s", b)
}

func TestBuildPushRebuild(t *testing.T) {
	// Not parallel: it measures build and push times.
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	base := testenv.BaseImage(t, b, host)

	ctxDir := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + base + "\n" +
			"ARG GREETING=hi\n" +
			"RUN echo \"$GREETING from run\" && echo to-stderr >&2 && mkdir /app\n" +
			"COPY app.txt /app/app.txt\n" +
			"RUN cat /app/app.txt\n",
		"app.txt": "version 1\n",
	})
	ref := host + "/demo:0123456789abcdef"
	stdout, stderr := newLines(""), newLines("")
	opts := buildah.BuildOptions{
		ContextDir: ctxDir,
		Tag:        ref,
		Labels:     map[string]string{"slipway.project": "demo", "slipway.commit": "0123456789abcdef"},
		BuildArgs:  map[string]string{"GREETING": "hello"},
		Stdout:     stdout,
		Stderr:     stderr,
	}
	start := time.Now()
	res, err := b.Build(t.Context(), opts)
	if err != nil {
		t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.text(), stderr.text())
	}
	t.Logf("cold build: %v (buildah %v)", time.Since(start), res.Duration)
	for _, s := range res.Steps {
		t.Logf("  %-60.60s %v", s, s.Duration.Round(time.Millisecond))
	}
	if !strings.HasPrefix(res.ImageID, "sha256:") {
		t.Errorf("ImageID = %q", res.ImageID)
	}
	// FROM, ARG, RUN, COPY, RUN, and the builder's LABEL step.
	if len(res.Steps) < 5 {
		t.Fatalf("steps = %+v, want at least 5", res.Steps)
	}
	if got, want := res.Steps[2].String(), "STEP 3/"; !strings.HasPrefix(got, want) || !strings.Contains(got, "RUN echo") {
		t.Errorf("step 3 = %q", got)
	}
	for _, s := range res.Steps {
		if s.Cached {
			t.Errorf("cold build: step %q cached", s)
		}
		// The step records (agent/steps.go) start stages from these.
		if s.Image == "" && !strings.HasPrefix(s.Instruction, "FROM ") {
			t.Errorf("cold build: step %q has no image id", s)
		}
	}
	if last := res.Steps[len(res.Steps)-1].Image; last == "" || !strings.HasPrefix(res.ImageID, "sha256:"+last) {
		t.Errorf("last step's image %s, the build's %s", last, res.ImageID)
	}
	if o := stdout.text(); !strings.Contains(o, "hello from run") || !strings.Contains(o, "version 1") || strings.Contains(o, "NOT ONE LINE") {
		t.Errorf("stdout:\n%s", o)
	}
	if e := stderr.text(); !strings.Contains(e, "to-stderr") {
		t.Errorf("stderr lacks the RUN step's stderr:\n%s", e)
	}

	// Labels are on the image.
	out, err := b.Command(t.Context(), "inspect", "--type", "image", "--format", "{{json .OCIv1.Config.Labels}}", ref).Output()
	if err != nil {
		t.Fatal(err)
	}
	var labels map[string]string
	if err := json.Unmarshal(out, &labels); err != nil {
		t.Fatal(err)
	}
	if labels["slipway.project"] != "demo" || labels["slipway.commit"] != "0123456789abcdef" {
		t.Errorf("labels = %v", labels)
	}

	start = time.Now()
	digest, err := b.Push(t.Context(), ref, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("push of a new image: %v", time.Since(start))
	assertManifest(t, host, "demo", "0123456789abcdef", digest)

	// No change: every step but FROM comes from the cache.
	start = time.Now()
	res2, err := b.Build(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("no-change rebuild: %v", time.Since(start))
	if res2.ImageID != res.ImageID {
		t.Errorf("no-change rebuild: image %s, want %s", res2.ImageID, res.ImageID)
	}
	for _, s := range res2.Steps[1:] {
		if !s.Cached {
			t.Errorf("no-change rebuild: step %q not cached", s)
		}
	}

	// One file changed: the steps before COPY stay cached.
	if err := os.WriteFile(filepath.Join(ctxDir, "app.txt"), []byte("version 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref2 := host + "/demo:fedcba9876543210"
	opts.Tag = ref2
	start = time.Now()
	res3, err := b.Build(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one-file rebuild: %v", time.Since(start))
	var cached []bool
	for _, s := range res3.Steps {
		cached = append(cached, s.Cached)
	}
	if !res3.Steps[2].Cached || res3.Steps[3].Cached || res3.Steps[4].Cached {
		t.Errorf("one-file rebuild: cached = %v, want RUN echo cached and COPY onwards not", cached)
	}
	start = time.Now()
	digest2, err := b.Push(t.Context(), ref2, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("push after a one-file change: %v", time.Since(start))
	if digest2 == digest {
		t.Error("changed image pushed with the same digest")
	}
	assertManifest(t, host, "demo", "fedcba9876543210", digest2)
}

func assertManifest(t *testing.T, host, repo, tag, digest string) {
	t.Helper()
	req, _ := http.NewRequest("HEAD", "http://"+host+"/v2/"+repo+"/manifests/"+tag, nil)
	req.SetBasicAuth("test", testenv.RegistryToken)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != digest {
		t.Errorf("HEAD %s:%s = %s digest %q, want 200 and %q", repo, tag, resp.Status, resp.Header.Get("Docker-Content-Digest"), digest)
	}
}

func TestBuildFailureNamesStep(t *testing.T) {
	t.Parallel()
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	base := testenv.BaseImage(t, b, host)
	ctxDir := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo fine\nRUN echo about to fail && exit 3\nRUN echo never\n",
	})
	stdout := newLines("")
	_, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir, Tag: host + "/fail:1", Stdout: stdout, Stderr: stdout})
	var be *buildah.BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v (%T), want *BuildError", err, err)
	}
	if be.Step != "STEP 3/4: RUN echo about to fail && exit 3" {
		t.Errorf("Step = %q", be.Step)
	}
	if be.ExitCode != 3 {
		t.Errorf("ExitCode = %d, want 3", be.ExitCode)
	}
	if tail := strings.Join(be.Tail, "\n"); !strings.Contains(tail, "about to fail") || !strings.Contains(tail, "Error:") {
		t.Errorf("Tail = %q", be.Tail)
	}
	if strings.Contains(stdout.text(), "never") {
		t.Error("the step after the failure ran")
	}
	t.Logf("error: %v", err)

	// An unknown instruction is a failing step too.
	ctxDir = writeContext(t, map[string]string{"Dockerfile": "FROM " + base + "\nBOGUS instruction\n"})
	_, err = b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir})
	if !errors.As(err, &be) || be.Step != "STEP 2/2: BOGUS instruction" {
		t.Errorf("unknown instruction: err = %v, want a BuildError at STEP 2/2", err)
	}

	// Without a Dockerfile the builder fails before any step.
	_, err = b.Build(t.Context(), buildah.BuildOptions{ContextDir: t.TempDir()})
	if !errors.As(err, &be) || be.Step != "" || be.Message == "" {
		t.Errorf("no Dockerfile: err = %v, want a BuildError without a step and with the builder's message", err)
	}

	// A failed build leaves no working container behind.
	if out, err := b.Command(t.Context(), "containers", "--quiet").Output(); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("working containers after failed builds: %q (%v), want none", out, err)
	}
}

func TestBuildRefusesLatest(t *testing.T) {
	t.Parallel()
	b := testenv.Builder(t)
	for _, tag := range []string{"127.0.0.1:1/app", "127.0.0.1:1/app:latest"} {
		_, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: t.TempDir(), Tag: tag})
		if err == nil || !strings.Contains(err.Error(), "latest") {
			t.Errorf("Build(Tag %q) = %v, want a refusal mentioning latest", tag, err)
		}
	}
}

func TestBuildCancel(t *testing.T) {
	t.Parallel()
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	base := testenv.BaseImage(t, b, host)
	ctxDir := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo cached-step > /c\nRUN echo sleeping && sleep 300\n",
	})
	stdout := newLines("sleeping")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := b.Build(ctx, buildah.BuildOptions{ContextDir: ctxDir, Tag: host + "/cancel:1", Stdout: stdout, Stderr: stdout})
		done <- err
	}()
	select {
	case <-stdout.seen:
	case err := <-done:
		t.Fatalf("build ended before the sleep: %v\n%s", err, stdout.text())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the RUN step did not start:\n%s", stdout.text())
	}
	cancel()
	cancelled := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled build returned %v, want context.Canceled", err)
		}
		t.Logf("build returned %v after cancel (started %v before)", time.Since(cancelled), cancelled.Sub(start))
	case <-time.After(30 * time.Second):
		t.Fatal("cancelled build did not return within 30s")
	}

	// Nothing keeps running or stays behind: no sleep 300 of ours, no
	// buildah working container.
	if out, _ := exec.Command("pgrep", "-f", "sleeping && sleep 300").Output(); len(out) > 0 {
		t.Errorf("RUN process still running: pids %s", out)
	}
	out, err := b.Command(t.Context(), "containers", "--quiet").Output()
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("working containers left behind: %s", s)
	}
	entries, _ := os.ReadDir(b.Config().TmpDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "build-") {
			t.Errorf("build scratch dir left behind: %s", e.Name())
		}
	}

	// The next build still reuses the step that finished before the cancel.
	ctxDir2 := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo cached-step > /c\nRUN echo done\n",
	})
	res, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir2, Tag: host + "/cancel:2"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Steps[1].Cached {
		t.Errorf("after a cancel: step %q not cached", res.Steps[1])
	}
}

func TestImportRun(t *testing.T) {
	t.Parallel()
	b := testenv.Builder(t)
	tarPath := testenv.BusyboxRootfsTar(t)
	if err := b.Import(t.Context(), tarPath, "localhost/bb:1", `CMD ["/bin/sh"]`); err != nil {
		t.Fatal(err)
	}
	if err := b.Import(t.Context(), tarPath, "localhost/bb"); err == nil {
		t.Error("Import without a tag succeeded (it would be tagged latest)")
	}
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM localhost/bb:1\nRUN echo $((6*7)) $(ls /bin | grep -c .)\n"})
	out := newLines("")
	if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir, Stdout: out, Stderr: out}); err != nil {
		t.Fatalf("build FROM the imported image: %v\n%s", err, out.text())
	}
	if !regexp.MustCompile(`(?m)^42 [1-9][0-9]+$`).MatchString(out.text()) {
		t.Errorf("RUN in the imported image printed:\n%s\nwant 42 and an applet count", out.text())
	}
	cmd, err := b.Command(t.Context(), "inspect", "--type", "image", "--format", "{{json .OCIv1.Config.Cmd}}", "localhost/bb:1").Output()
	if err != nil || strings.TrimSpace(string(cmd)) != `["/bin/sh"]` {
		t.Errorf("the imported image's command = %s (%v), want [\"/bin/sh\"]", cmd, err)
	}
}

func TestResetKeepsBuilderUsable(t *testing.T) {
	t.Parallel()
	b := testenv.Builder(t)
	if err := b.Import(t.Context(), testenv.BusyboxRootfsTar(t), "localhost/bb:1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Reset(t.Context()); err != nil {
		t.Fatal(err)
	}
	if imgs, err := b.Images(t.Context()); err != nil || len(imgs) != 0 {
		t.Fatalf("images after reset = %v, %v; want none", imgs, err)
	}
	if err := b.Import(t.Context(), testenv.BusyboxRootfsTar(t), "localhost/bb:2"); err != nil {
		t.Fatalf("import after reset: %v", err)
	}
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM localhost/bb:2\nRUN true\n"})
	if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir, Tag: "localhost/after-reset:1"}); err != nil {
		t.Fatalf("build after reset: %v", err)
	}
}

// A RUN --mount=type=cache directory keeps its contents from one build to
// the next on the same storage.
func TestCacheMountPersists(t *testing.T) {
	t.Parallel()
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	base := testenv.BaseImage(t, b, host)
	dockerfile := "FROM " + base + "\n" +
		"COPY stamp.txt /stamp.txt\n" +
		"RUN --mount=type=cache,target=/cache cat /stamp.txt >> /cache/seen && echo \"cache holds $(wc -l < /cache/seen) builds\"\n"
	for i, want := range []string{"cache holds 1 builds", "cache holds 2 builds"} {
		ctxDir := writeContext(t, map[string]string{"Dockerfile": dockerfile, "stamp.txt": fmt.Sprintf("build %d\n", i)})
		out := newLines("")
		if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir, Tag: fmt.Sprintf("%s/cache:%d", host, i), Stdout: out, Stderr: out}); err != nil {
			t.Fatalf("build %d: %v\n%s", i, err, out.text())
		}
		if !strings.Contains(out.text(), want) {
			t.Fatalf("build %d output lacks %q: the cache mount did not persist\n%s", i, want, out.text())
		}
	}
}

// A build secret is readable by the RUN step that mounts it and stays out
// of the image.
func TestBuildSecret(t *testing.T) {
	t.Parallel()
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	base := testenv.BaseImage(t, b, host)
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte("s3cr3t-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + base + "\n" +
		"RUN --mount=type=secret,id=token test \"$(md5sum < /run/secrets/token | cut -c1-32)\" = e74a7345b906b2dd50c8e026a10bc02f && echo secret-ok && ls /run/secrets > /listing\n"})
	ref := host + "/secret:1"
	out := newLines("")
	if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir, Tag: ref, Secrets: map[string]string{"token": secretFile}, Stdout: out, Stderr: out}); err != nil {
		t.Fatalf("build with a secret: %v\n%s", err, out.text())
	}
	if !strings.Contains(out.text(), "secret-ok") {
		t.Fatalf("the RUN step did not read the secret:\n%s", out.text())
	}
	save := filepath.Join(t.TempDir(), "image.tar")
	if out, err := b.Command(t.Context(), "push", "--quiet", ref, "docker-archive:"+save).CombinedOutput(); err != nil {
		t.Fatalf("buildah push to a docker-archive: %v %s", err, out)
	}
	// Layers are uncompressed tar inside the docker-archive: a plain search
	// finds the value if any layer holds it.
	if data, err := os.ReadFile(save); err != nil || bytes.Contains(data, []byte("s3cr3t-value")) || !bytes.Contains(data, []byte("listing")) {
		t.Errorf("the saved image holds the secret's value, or not the step's layer (err %v)", err)
	}
	if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir, Tag: ref, Secrets: map[string]string{"a,b": secretFile}}); err == nil {
		t.Errorf("a secret id with a comma was accepted")
	}
}

// RUN steps cannot reach a service on the host's loopback: not on their
// own network, and not by asking for the host's (RUN --network=host, which
// buildah honours and the runtime guard cmd/slipway-runc refuses), also
// when a build argument spells it.
func TestRunStepsCannotReachTheHostLoopback(t *testing.T) {
	t.Parallel()
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	base := testenv.BaseImage(t, b, host)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var reached atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			fmt.Fprintf(c, "HTTP/1.0 200 OK\r\n\r\nreached-%d\n", 40+2)
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	probe := "(echo | nc -w 3 127.0.0.1 " + port + " | grep reached || echo unreachable)"

	out := newLines("")
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN " + probe + "\nRUN --network=none echo no-network-is-fine\n"})
	if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir, Stdout: out, Stderr: out}); err != nil {
		t.Fatalf("build: %v\n%s", err, out.text())
	}
	if !strings.Contains(out.text(), "unreachable") || !strings.Contains(out.text(), "no-network-is-fine") {
		t.Errorf("a RUN step on its own network reached the host's loopback, or RUN --network=none failed:\n%s", out.text())
	}
	for name, df := range map[string]string{
		"literal":        "FROM " + base + "\nRUN --network=host " + probe + "\n",
		"build argument": "FROM " + base + "\nARG NET=host\nRUN --network=$NET " + probe + "\n",
	} {
		out := newLines("")
		ctxDir := writeContext(t, map[string]string{"Dockerfile": df})
		_, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir, Stdout: out, Stderr: out})
		var be *buildah.BuildError
		if !errors.As(err, &be) || !strings.Contains(out.text(), "slipway-runc: refused a container without a network namespace of its own") {
			t.Errorf("%s RUN --network=host: err %v, want the build refused by slipway-runc:\n%s", name, err, out.text())
		}
		t.Logf("%s RUN --network=host: %v", name, err)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("RUN steps reached the host's loopback %d times", n)
	}
}

func TestImagesTagRemove(t *testing.T) {
	t.Parallel()
	b := testenv.Builder(t)
	if err := b.Import(t.Context(), testenv.BusyboxRootfsTar(t), "localhost/bb:1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Tag(t.Context(), "localhost/bb:1", "localhost/other:2"); err != nil {
		t.Fatal(err)
	}
	if err := b.Tag(t.Context(), "localhost/bb:1", "localhost/other:latest"); err == nil {
		t.Error("Tag to latest succeeded")
	}
	if err := b.Tag(t.Context(), "localhost/missing:1", "localhost/other:3"); err == nil {
		t.Error("Tag of a missing image succeeded")
	}
	imgs, err := b.Images(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || len(imgs[0].ID) != 64 || !slices.Equal(slices.Sorted(slices.Values(imgs[0].Names)), []string{"localhost/bb:1", "localhost/other:2"}) ||
		time.Since(time.Unix(imgs[0].Created, 0)) > time.Hour {
		t.Fatalf("Images = %+v, want one image with a full id, both names and its creation time", imgs)
	}
	if !b.ImageExists(t.Context(), "localhost/other:2") || !b.ImageExists(t.Context(), imgs[0].ID) || b.ImageExists(t.Context(), "localhost/missing:1") {
		t.Error("ImageExists is wrong about localhost/other:2, the image's id or localhost/missing:1")
	}
	if err := b.RemoveImages(t.Context(), imgs[0].ID); err != nil {
		t.Fatal(err)
	}
	if imgs, err := b.Images(t.Context()); err != nil || len(imgs) != 0 {
		t.Errorf("Images after RemoveImages = %+v, %v; want none", imgs, err)
	}
}

// A base image whose tag moved in the registry is pulled again: the build
// runs on the image the tag points to now (Slipway keys the steps by that
// digest), not on the one left in the storage.
func TestMovedBaseTagIsPulled(t *testing.T) {
	t.Parallel()
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	publisher := testenv.Builder(t)
	base := host + "/moving/base:1"
	publish := func(version string) {
		t.Helper()
		ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + testenv.BaseImage(t, publisher, host) + "\nRUN echo " + version + " > /version\n"})
		if _, err := publisher.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir, Tag: base}); err != nil {
			t.Fatal(err)
		}
		if _, err := publisher.Push(t.Context(), base, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	build := func() string {
		t.Helper()
		ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN cat /version\n"})
		out := newLines("")
		if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: ctxDir, Stdout: out, Stderr: out}); err != nil {
			t.Fatalf("build: %v\n%s", err, out.text())
		}
		return out.text()
	}
	publish("base-one")
	if out := build(); !strings.Contains(out, "\nbase-one\n") {
		t.Fatalf("first build:\n%s", out)
	}
	publish("base-two")
	if out := build(); !strings.Contains(out, "\nbase-two\n") {
		t.Errorf("after the tag moved the build ran on the old base:\n%s", out)
	}
}
