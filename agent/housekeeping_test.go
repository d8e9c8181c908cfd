package agent

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/podman"
)

func testActivities(t *testing.T, b *buildah.Builder, cfg Config) (*Activities, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	cfg.Stdout = &out
	cfg.Logger = slog.New(slog.NewTextHandler(&out, nil))
	layout := builder.VolumeLayout(t.TempDir())
	if err := os.MkdirAll(layout.Work, 0o755); err != nil {
		t.Fatal(err)
	}
	return &Activities{cfg: cfg, layout: layout, builder: b, tracker: newIdleTracker(testNow)}, &out
}

// buildTagged builds an image tagged ref, as the agent does: without
// labels (they are put on in the registry).
func buildTagged(t *testing.T, b *buildah.Builder, base, ref string) {
	t.Helper()
	dir := t.TempDir()
	df := "FROM " + base + "\nRUN echo " + ref + " > /id\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: dir, Tag: ref, Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("build %s: %v\n%s", ref, err, out.String())
	}
}

// imageNames lists the storage's image names in repository repo.
func imageNames(t *testing.T, b *buildah.Builder, repo string) []string {
	t.Helper()
	imgs, err := b.Images(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range imgs {
		for _, n := range img.Names {
			if repository(n) == repo {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names
}

func TestHousekeepingKeepsPinnedImages(t *testing.T) {
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	base := testenv.BaseImage(t, b, host)
	a, _ := testActivities(t, b, Config{AgentConfig: builder.AgentConfig{KeepImages: 2, ResetThreshold: 1}})
	j := &job{out: a.cfg.Stdout}

	// Another project's image and the base image on the same storage are
	// never touched.
	other := host + "/other:1"
	buildTagged(t, b, base, other)
	var refs []string
	for i := 1; i <= 4; i++ {
		ref := fmt.Sprintf("%s/app:%d", host, i)
		refs = append(refs, ref)
		buildTagged(t, b, base, ref)
		a.housekeep(t.Context(), j, "app", ref)
		a.waitAfterJob() // the removal runs after the activity
	}
	if got, want := imageNames(t, b, host+"/app"), refs[2:]; !slices.Equal(got, want) {
		t.Errorf("after 4 builds with KeepImages 2, images = %v, want %v", got, want)
	}
	if got := imageNames(t, b, host+"/other"); !slices.Equal(got, []string{other}) {
		t.Errorf("another project's images = %v, want %v untouched", got, other)
	}
	if !b.ImageExists(t.Context(), base) {
		t.Errorf("housekeeping removed the base image %s", base)
	}
	// A failed build (nothing pushed) keeps the pins.
	a.housekeep(t.Context(), j, "app", "")
	a.waitAfterJob() // the removal runs after the activity
	if got := imageNames(t, b, host+"/app"); len(got) != 2 {
		t.Errorf("housekeeping after a failed build left %v, want the 2 pinned images", got)
	}
}

func TestHousekeepingResetsPastThreshold(t *testing.T) {
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	base := testenv.BaseImage(t, b, host)
	// Any volume is fuller than 0.1%: the reset runs.
	a, out := testActivities(t, b, Config{AgentConfig: builder.AgentConfig{KeepImages: 5, ResetThreshold: 0.001}})
	j := &job{out: a.cfg.Stdout}
	ref := host + "/app:1"
	buildTagged(t, b, base, ref)
	stale := filepath.Join(a.layout.Work, "d-old")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	a.housekeep(t.Context(), j, "app", ref)
	a.waitAfterJob() // the removal runs after the activity
	if !bytes.Contains(out.Bytes(), []byte("resetting the build cache")) {
		t.Fatalf("no reset past the threshold; output:\n%s", out)
	}
	if b.ImageExists(t.Context(), ref) {
		t.Errorf("image %s survived the storage reset", ref)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("work directory %s survived the reset", stale)
	}
	// The next build on the reset storage works (cold).
	testenv.BaseImage(t, b, host)
	buildTagged(t, b, base, host+"/app:2")
}

func TestRepository(t *testing.T) {
	for ref, want := range map[string]string{
		"127.0.0.1:5000/app:abc":         "127.0.0.1:5000/app",
		"127.0.0.1:5000/app":             "127.0.0.1:5000/app",
		"127.0.0.1:5000/app@sha256:1234": "127.0.0.1:5000/app",
		"registry.example.com/a/b:v1":    "registry.example.com/a/b",
		"localhost/base/node:20":         "localhost/base/node",
	} {
		if got := repository(ref); got != want {
			t.Errorf("repository(%q) = %q, want %q", ref, got, want)
		}
	}
}

var testNow = time.Unix(0, 0)

// Work left after an activity keeps the agent busy (it does not exit idle)
// and holds back the next activity until it is done.
func TestAfterJobKeepsTheAgentBusy(t *testing.T) {
	a := &Activities{tracker: newIdleTracker(testNow)}
	release := make(chan struct{})
	a.afterJob(func(context.Context) { <-release })
	if a.tracker.idle(testNow.Add(time.Hour), time.Second, time.Second) {
		t.Fatal("the agent counts as idle while housekeeping runs")
	}
	waited := make(chan struct{})
	go func() {
		a.waitAfterJob()
		close(waited)
	}()
	select {
	case <-waited:
		t.Fatal("the next activity did not wait for the housekeeping")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the next activity still waits after the housekeeping ended")
	}
	if !a.tracker.idle(time.Now().Add(time.Hour), time.Second, time.Second) {
		t.Error("the agent is not idle after the housekeeping ended")
	}
}

// A volume an older agent built on with podman 4.3: the agent forgets the
// records naming podman's images and removes podman's storage (with what
// it left mounted) in the background; buildah's storage is its own.
func TestMigrateVolumeFromPodman(t *testing.T) {
	host := testenv.Registry(t)
	vol := t.TempDir()
	layout := builder.VolumeLayout(vol)
	ocfg := podman.ConfigAt(filepath.Join(vol, "podman"))
	ocfg.AuthFile = testenv.RegistryAuthFile()
	old, err := podman.New(ocfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.BaseImage(t, old, host)
	for name, body := range map[string]string{"pinned-images.json": `["` + host + `/app:1"]`, "steps.json": "{}", "inputs/key": host + "/app:1\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(vol, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vol, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bcfg := buildah.ConfigAt(layout.Builder)
	bcfg.AuthFile = testenv.RegistryAuthFile()
	b, err := buildah.New(t.Context(), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Reset(context.Background()) })
	var out bytes.Buffer
	a := &Activities{cfg: Config{Logger: slog.New(slog.NewTextHandler(&out, nil))}, layout: layout, builder: b, tracker: newIdleTracker(testNow)}
	a.migrateVolume(t.Context())
	a.migrating.Wait()
	for _, name := range []string{"podman", ".podman-removing", "pinned-images.json", "steps.json", "inputs"} {
		if _, err := os.Lstat(filepath.Join(vol, name)); !os.IsNotExist(err) {
			t.Errorf("%s is still on the volume after the move to buildah (%v)\n%s", name, err, out.String())
		}
	}
	if !strings.Contains(out.String(), "removed podman's storage") {
		t.Errorf("the agent's log does not say podman's storage was removed:\n%s", out.String())
	}
	// buildah builds on the volume, and a second start has nothing to do.
	base := testenv.BaseImage(t, b, host)
	buildTagged(t, b, base, host+"/app:2")
	out.Reset()
	a.migrateVolume(t.Context())
	a.migrating.Wait()
	if out.Len() != 0 || !b.ImageExists(t.Context(), host+"/app:2") {
		t.Errorf("a second start logged %q, or lost buildah's image", out.String())
	}
}

// Housekeeping still running when the agent stops is canceled with it, so
// that Run, which waits for it, returns at once.
func TestAfterJobEndsWithTheAgent(t *testing.T) {
	ctx, stop := context.WithCancel(t.Context())
	a := &Activities{tracker: newIdleTracker(testNow), background: ctx}
	a.afterJob(func(ctx context.Context) { <-ctx.Done() })
	waited := make(chan struct{})
	go func() {
		a.waitAfterJob()
		close(waited)
	}()
	stop()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("housekeeping went on after the agent's context ended")
	}
}
