package e2e

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-ci/slipway/internal/testenv"
)

// remoteImage reads the image ref from the registry.
func remoteImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pass := testenv.RegistryToken
	if p, ok := registryLogins.Load(r.Context().RegistryStr()); ok {
		pass = p.(string)
	}
	img, err := remote.Image(r, remote.WithContext(t.Context()), remote.WithAuth(&authn.Basic{Username: "e2e", Password: pass}))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return img
}

// imageFile reads a file of the image ref from the registry.
func imageFile(t *testing.T, ref, path string) string {
	t.Helper()
	fs := mutate.Extract(remoteImage(t, ref))
	defer fs.Close()
	tr := tar.NewReader(fs)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s has no %s", ref, path)
		}
		if err != nil {
			t.Fatalf("read %s: %v", ref, err)
		}
		if strings.TrimPrefix(h.Name, "./") == strings.TrimPrefix(path, "/") {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

// registryConfig reads the config of the image ref from the registry.
func registryConfig(t *testing.T, ref string) *v1.ConfigFile {
	t.Helper()
	cf, err := remoteImage(t, ref).ConfigFile()
	if err != nil {
		t.Fatalf("config of %s: %v", ref, err)
	}
	return cf
}

// imageRef is the image (name@digest) deployment id of project pushed.
func (s *serverProc) imageRef(t *testing.T, project, id string) string {
	t.Helper()
	for _, dep := range s.deployments(t, project) {
		if dep.ID == id {
			return dep.Image + "@" + dep.Digest
		}
	}
	t.Fatalf("no deployment %s", id)
	return ""
}

// A rebuild starts each stage from the image of its longest prefix of
// unchanged steps (recorded at the earlier build), so podman checks no
// cache for them, and the image is the one a full build makes: a changed
// source reaches the image, a changed dependency re-runs its stage and
// reaches the image through COPY --from, and a recorded image that is gone
// makes the build run as written.
func TestStepsStartFromRecordedImages(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	p := testenv.Builder(t)
	base := testenv.BaseImage(t, p, s.Host)
	dockerfile := "FROM " + base + " AS deps\n" +
		"WORKDIR /app\n" +
		"COPY dep.txt ./\n" +
		"RUN echo \"deps-ran-$(cat dep.txt)\" && cat dep.txt > deps.out\n" +
		"\n" +
		"FROM " + base + " AS build\n" +
		"WORKDIR /src\n" +
		"COPY src ./src\n" +
		"RUN echo build-ran && cat src/*.txt > /build.out\n" +
		"\n" +
		"FROM " + base + "\n" +
		"WORKDIR /app\n" +
		"COPY --from=deps /app/deps.out /deps.out\n" +
		"COPY --from=build /build.out /build.out\n" +
		"COPY static.txt /static.txt\n" +
		"EXPOSE 8080\n" +
		"CMD [\"cat\", \"/build.out\"]\n"
	dir, sha := testenv.GitRepo(t, map[string]string{
		"Dockerfile": dockerfile, "dep.txt": "dep-1\n", "src/a.txt": "src-1\n", "static.txt": "static\n",
	})
	s.addProject(t, "steps", dir)
	logsOf := func(id string) string { l, _ := s.cli(t, "logs", id); return l }
	// ran says whether a RUN step printed line (not just a step header
	// naming it).
	ran := func(l, line string) bool {
		return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).MatchString(l)
	}
	image := func(d deploymentDetail) string { return s.imageRef(t, "steps", d.ID) }
	const summary = "unchanged step(s) of earlier builds, without the builder's cache checks"

	first := s.deployWait(t, "steps", sha)
	if l := logsOf(first.ID); strings.Contains(l, summary) || !ran(l, "deps-ran-dep-1") {
		t.Fatalf("first build:\n%s", l)
	}
	// The config-only last steps are applied in the registry, not built,
	// and still shown as the Dockerfile's last steps.
	checkConfig := func(d deploymentDetail) {
		t.Helper()
		cf := registryConfig(t, image(d))
		if _, ok := cf.Config.ExposedPorts["8080/tcp"]; !ok || !slices.Equal(cf.Config.Cmd, []string{"cat", "/build.out"}) || cf.Config.Labels["slipway.deployment"] != d.ID {
			t.Errorf("deployment %s's image config: ports %v, cmd %q, labels %v; want 8080/tcp, [cat /build.out], its labels", d.ID, cf.Config.ExposedPorts, cf.Config.Cmd, cf.Config.Labels)
		}
	}
	checkConfig(first)
	if l := logsOf(first.ID); !strings.Contains(l, "applied in the registry at push, not built") || strings.Contains(l, "STEP 6/7: EXPOSE") {
		t.Errorf("first build's log does not say the config-only steps are applied in the registry, or podman ran them:\n%s", l)
	}
	if n := len(first.Steps); n < 3 || first.Steps[n-2].Instruction != "[3/3] STEP 6/7: EXPOSE 8080" || first.Steps[n-1].Instruction != `[3/3] STEP 7/7: CMD ["cat", "/build.out"]` ||
		first.Steps[n-1].Cached || !first.Steps[n-2].InRegistry || !first.Steps[n-1].InRegistry || first.Steps[n-3].InRegistry {
		t.Errorf("first build's steps end %+v, want EXPOSE and CMD, not cached, applied in the registry (and the step before them not)", first.Steps[max(n-3, 0):])
	}
	if out, _ := s.cli(t, "deployment", first.ID); !strings.Contains(out, "2 applied in the registry") || !regexp.MustCompile(`(?m)^\d+ +0ms +registry +\[3/3\] STEP 7/7: CMD`).MatchString(out) {
		t.Errorf("slipway deployment does not show the steps applied in the registry:\n%s", out)
	}
	s.waitAsleep(t, "steps")

	// A source file changes: the deps stage and the last stage's prefix
	// start from recorded images; the build stage re-runs from its COPY.
	sha = testenv.Commit(t, dir, map[string]string{"src/a.txt": "src-2\n"})
	second := s.deployWait(t, "steps", sha)
	l := logsOf(second.ID)
	if !strings.Contains(l, summary) || !ran(l, "build-ran") || ran(l, "deps-ran-dep-1") {
		t.Fatalf("second build (one source file changed):\n%s", l)
	}
	// The log numbers the steps as the Dockerfile does.
	for _, want := range []string{"[2/3] STEP 2/4: WORKDIR /src (unchanged: image ", "[2/3] STEP 3/4: COPY src ./src", "[3/3] STEP 5/7: COPY static.txt /static.txt"} {
		if !strings.Contains(l, want) {
			t.Errorf("second build's log has no %q:\n%s", want, l)
		}
	}
	if regexp.MustCompile(`\[1/3\] STEP`).MatchString(l) {
		t.Errorf("podman ran the deps stage, whose steps were all recorded:\n%s", l)
	}
	// The steps shown are the Dockerfile's as written, not the rewritten
	// file's, with the deps stage's cached.
	stepsOf := func(d deploymentDetail) []string {
		var out []string
		for _, st := range d.Steps {
			out = append(out, st.Instruction)
			if strings.Contains(st.Instruction, "deps-ran") && d.ID == second.ID && !st.Cached {
				t.Errorf("step %q not shown cached", st.Instruction)
			}
		}
		slices.Sort(out)
		return out
	}
	if got, want := stepsOf(second), stepsOf(first); !slices.Equal(got, want) {
		t.Errorf("second build's steps:\n%s\nwant the Dockerfile's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	img := image(second)
	if got := imageFile(t, img, "/build.out"); got != "src-2\n" {
		t.Errorf("/build.out = %q, want the changed source", got)
	}
	if got := imageFile(t, img, "/deps.out"); got != "dep-1\n" {
		t.Errorf("/deps.out = %q, want dep-1", got)
	}
	checkConfig(second)
	s.waitAsleep(t, "steps")

	// The dependency changes: its stage runs again and the last stage
	// copies its new output.
	sha = testenv.Commit(t, dir, map[string]string{"dep.txt": "dep-2\n"})
	third := s.deployWait(t, "steps", sha)
	if l := logsOf(third.ID); !ran(l, "deps-ran-dep-2") || ran(l, "build-ran") {
		t.Fatalf("third build (dependency changed):\n%s", l)
	}
	img = image(third)
	if got := imageFile(t, img, "/deps.out"); got != "dep-2\n" {
		t.Errorf("/deps.out = %q, want dep-2", got)
	}
	if got := imageFile(t, img, "/build.out"); got != "src-2\n" {
		t.Errorf("/build.out = %q, want src-2", got)
	}
	s.waitAsleep(t, "steps")

	// The recorded images are gone (as if removed by hand): the build
	// notices, runs the Dockerfile as written, and succeeds.
	rec := filepath.Join(s.DataDir, "volumes", "steps", "steps.json")
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatalf("step records: %v", err)
	}
	gone := regexp.MustCompile(`"image":"[0-9a-f]+"`).ReplaceAll(b, []byte(`"image":"0123456789abcdef0123"`))
	if err := os.WriteFile(rec, gone, 0o644); err != nil {
		t.Fatal(err)
	}
	sha = testenv.Commit(t, dir, map[string]string{"static.txt": "static-2\n"})
	fourth := s.deployWait(t, "steps", sha)
	if l := logsOf(fourth.ID); !strings.Contains(l, "no longer in the build cache") {
		t.Errorf("fourth build (records name missing images) did not say it builds as written:\n%s", l)
	}
	if got := imageFile(t, image(fourth), "/static.txt"); got != "static-2\n" {
		t.Errorf("/static.txt = %q, want static-2", got)
	}
	checkConfig(fourth)
	s.waitAsleep(t, "steps")

	// A step after the reused ones fails: the deployment names it as the
	// Dockerfile numbers it.
	sha = testenv.Commit(t, dir, map[string]string{"src/a.txt": "src-3\n", "Dockerfile": strings.Replace(dockerfile, "echo build-ran", "exit 7", 1)})
	out, _ := s.cli(t, "deploy", "steps", "--commit", sha, "--wait")
	failed := s.deployments(t, "steps")[0]
	if failed.Status != "failed" || failed.FailedStep != "[2/3] STEP 4/4: RUN exit 7 && cat src/*.txt > /build.out" {
		t.Errorf("failing build: status %s, failed step %q; want failed at [2/3] STEP 4/4\n%s", failed.Status, failed.FailedStep, out)
	}
}

// The shapes Dockerfiles take beyond the bench app's: the base image from
// a global ARG (FROM ${BASE}), an ARG mid-stage that a RUN uses, a LABEL
// mid-stage, a HEALTHCHECK (kept: the image is built in Docker format) and
// a JSON CMD; a repository with a Containerfile and no Dockerfile. A
// one-file change still starts the stages from recorded images (the ARG
// declared again), the config-only tail is applied in the registry, and the
// image is the one a full build makes.
func TestStepsOfAnotherShape(t *testing.T) {
	s := startServer(t, t.TempDir(), "127.0.0.1:0")
	base := testenv.BaseImage(t, testenv.Builder(t), s.Host)
	containerfile := "ARG BASE=" + base + "\n" +
		"ARG GREETING=hello\n" +
		"FROM ${BASE} AS build\n" +
		"ARG GREETING\n" +
		"WORKDIR /src\n" +
		"COPY src ./src\n" +
		"label stage=build\n" +
		"RUN echo \"build-ran-$GREETING\" && cat src/*.txt > /build.out\n" +
		"\n" +
		"FROM ${BASE}\n" +
		"LABEL org.example.mid=yes\n" +
		"COPY --from=build /build.out /build.out\n" +
		"USER 65534\n" +
		"EXPOSE 8080\n" +
		"HEALTHCHECK --interval=30s --retries=2 CMD cat /build.out\n" +
		"CMD [\"cat\", \"/build.out\"]\n"
	dir, sha := testenv.GitRepo(t, map[string]string{"Containerfile": containerfile, "src/a.txt": "src-1\n"})
	s.addProject(t, "shape", dir)
	logsOf := func(id string) string { l, _ := s.cli(t, "logs", id); return l }
	image := func(d deploymentDetail) string { return s.imageRef(t, "shape", d.ID) }
	check := func(d deploymentDetail, src string) {
		t.Helper()
		img := image(d)
		if got := imageFile(t, img, "/build.out"); got != src {
			t.Errorf("/build.out = %q, want %q", got, src)
		}
		cf := registryConfig(t, img).Config
		if cf.Healthcheck == nil || !slices.Equal(cf.Healthcheck.Test, []string{"CMD-SHELL", "cat /build.out"}) || cf.Healthcheck.Retries != 2 {
			t.Errorf("healthcheck %+v, want CMD-SHELL cat /build.out, 2 retries", cf.Healthcheck)
		}
		if cf.User != "65534" || !slices.Equal(cf.Cmd, []string{"cat", "/build.out"}) || cf.Labels["org.example.mid"] != "yes" || cf.Labels["slipway.deployment"] != d.ID {
			t.Errorf("config: user %q cmd %q labels %v", cf.User, cf.Cmd, cf.Labels)
		}
		if _, ok := cf.ExposedPorts["8080/tcp"]; !ok {
			t.Errorf("ports %v, want 8080/tcp", cf.ExposedPorts)
		}
	}
	first := s.deployWait(t, "shape", sha)
	if l := logsOf(first.ID); !strings.Contains(l, "build-ran-hello") || !strings.Contains(l, "applied in the registry at push") {
		t.Fatalf("first build:\n%s", l)
	}
	check(first, "src-1\n")
	s.waitAsleep(t, "shape")

	sha = testenv.Commit(t, dir, map[string]string{"src/a.txt": "src-2\n"})
	second := s.deployWait(t, "shape", sha)
	l := logsOf(second.ID)
	for _, want := range []string{
		"without the builder's cache checks",
		"[1/2] STEP 3/6: WORKDIR /src (unchanged: image ",
		"(declared again for the steps after the reused image)",
		"build-ran-hello",
		"[2/2] STEP 2/7: LABEL org.example.mid=yes (unchanged: image ",
	} {
		if !strings.Contains(l, want) {
			t.Errorf("second build's log lacks %q:\n%s", want, l)
		}
	}
	check(second, "src-2\n")
	var inRegistry []string
	for _, st := range second.Steps {
		if st.InRegistry {
			inRegistry = append(inRegistry, st.Instruction)
		}
	}
	if want := []string{"[2/2] STEP 4/7: USER 65534", "[2/2] STEP 5/7: EXPOSE 8080", "[2/2] STEP 6/7: HEALTHCHECK --interval=30s --retries=2 CMD cat /build.out", `[2/2] STEP 7/7: CMD ["cat", "/build.out"]`}; !slices.Equal(inRegistry, want) {
		t.Errorf("steps applied in the registry %q, want %q", inRegistry, want)
	}
}
