package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	docker "github.com/fsouza/go-dockerclient"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// TestLabelInRegistry pushes an image built with a label of its own, puts
// the deployment's labels on it in the registry, and reads it back: the
// tag points to the new manifest, the config has both sets of labels, the
// layers are the pushed ones.
func TestLabelInRegistry(t *testing.T) {
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	base := testenv.BaseImage(t, b, host)
	dir := t.TempDir()
	df := "FROM " + base + "\nLABEL maintainer=\"someone\"\nRUN echo hi > /hi\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := host + "/app:0123456789abcdef"
	var out bytes.Buffer
	if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: dir, Tag: ref, Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	pushed, err := b.Push(t.Context(), ref, false, &out)
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out.String())
	}
	labels := map[string]string{"slipway.project": "app", "slipway.deployment": "d-1", "slipway.commit": "0123456789abcdef"}
	got, err := configureInRegistry(t.Context(), ref, labels, nil, testRegistry())
	if err != nil {
		t.Fatalf("configureInRegistry: %v", err)
	}
	if got == pushed {
		t.Fatalf("configureInRegistry returned the pushed digest %s: nothing changed", got)
	}
	if d, err := registryDigest(t.Context(), ref, testRegistry()); err != nil || d != got {
		t.Fatalf("the tag points to %s (err %v), want the labelled manifest %s", d, err, got)
	}

	img := remoteImage(t, ref)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	labels["maintainer"] = "someone"
	for k, want := range labels {
		if v := cf.Config.Labels[k]; v != want {
			t.Errorf("label %s = %q, want %q (labels %v)", k, v, want, cf.Config.Labels)
		}
	}
	orig := remoteImage(t, host+"/app@"+pushed) // the unlabelled manifest
	l0, _ := orig.Layers()
	l1, _ := img.Layers()
	if len(l0) == 0 || len(l0) != len(l1) {
		t.Fatalf("layers: %d pushed, %d after labelling", len(l0), len(l1))
	}
	for i := range l0 {
		d0, _ := l0[i].Digest()
		d1, _ := l1[i].Digest()
		if d0 != d1 {
			t.Errorf("layer %d: %s pushed, %s after labelling", i, d0, d1)
		}
	}

	// An unknown image is an error that names it, not a panic.
	if _, err := configureInRegistry(t.Context(), host+"/nothing:here", labels, nil, testRegistry()); err == nil {
		t.Error("configureInRegistry of an image the registry lacks succeeded")
	}
}

// TestConfigStepsMatchTheBuilder builds Dockerfiles that end with config-only
// steps twice: as written, by the builder; and without those steps, which
// are then applied in the registry (configTail, configureInRegistry). The
// two images' configs must be the same, and so must their history's last
// entries.
func TestConfigStepsMatchTheBuilder(t *testing.T) {
	host := testenv.Registry(t)
	b := testenv.Builder(t)
	base := testenv.BaseImage(t, b, host)
	cases := []struct {
		name, body string
		tail       int
	}{
		{"everything", `ENV A=1 B="two words"
CMD ["sh"]
RUN echo hi > /hi
ENV A=3 C=4
EXPOSE 8080 53/udp 9000/tcp
USER nobody
LABEL org.example.a="x y" b=c "q"="r"
STOPSIGNAL SIGTERM
CMD echo hello
ENTRYPOINT ["/bin/sh", "-c"]
`, 7},
		{"entrypoint clears the base image's command", `RUN echo hi > /hi
ENTRYPOINT ["/bin/echo"]
`, 1},
		{"entrypoint after a command of the stage", `CMD ["x"]
RUN echo hi > /hi
ENTRYPOINT echo from the shell
USER 65534:65534
`, 2},
		{"variables", `ARG APP_UID=1234
ARG PORT=3000
ENV HOME_DIR=/srv
RUN echo hi > /hi
ENV PATH="/app/bin:${PATH}" LEGACY_SET=1
env LOWER=case
EXPOSE $PORT
USER $APP_UID
LABEL home="$HOME_DIR" "multi word"='single quoted' escaped="a \"b\""
ENV \
    CONTINUED=yes \
    TWO=2
CMD exec server --port $PORT
`, 7},
		{"healthcheck in docker format", `RUN echo hi > /hi
HEALTHCHECK --interval=30s --timeout=3s --start-period=1m --retries=2 CMD wget -q -O- http://localhost:8080/ || exit 1
STOPSIGNAL SIGINT
CMD ["serve"]
`, 3},
		{"not config-only", `RUN echo hi > /hi
ENV P=$PATH
WORKDIR /tmp
EXPOSE 80
`, 1},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			df := "FROM " + base + "\n" + c.body
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
				t.Fatal(err)
			}
			images := newImageResolver(t.Context(), func(ctx context.Context, ref string) (string, *docker.Config, error) {
				return registryImage(ctx, ref, testRegistry())
			})
			bf, err := readBuildFile(dir, "", "Dockerfile", nil, images)
			if err != nil {
				t.Fatal(err)
			}
			n := bf.configTail()
			if n != c.tail {
				t.Fatalf("configTail = %d, want %d", n, c.tail)
			}
			tail, _ := bf.tailSteps(n)
			plan := &stepPlan{bf: bf, tail: n, cut: make([]int, len(bf.Stages)), images: make([]string, len(bf.Stages)), restored: make([][]string, len(bf.Stages))}
			var stripped bytes.Buffer
			plan.rewrite(&stripped, nil)
			build := func(name, dockerfile string) string {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
					t.Fatal(err)
				}
				ref := fmt.Sprintf("%s/cfg%d-%s:1", host, i, name)
				var out bytes.Buffer
				if _, err := b.Build(t.Context(), buildah.BuildOptions{ContextDir: dir, Tag: ref, Format: bf.format, Stdout: &out, Stderr: &out}); err != nil {
					t.Fatalf("build: %v\n%s", err, out.String())
				}
				if _, err := b.Push(t.Context(), ref, false, &out); err != nil {
					t.Fatalf("push: %v\n%s", err, out.String())
				}
				return ref
			}
			written := build("builder", df)
			applied := build("registry", stripped.String())
			if _, err := configureInRegistry(t.Context(), applied, nil, tail, testRegistry()); err != nil {
				t.Fatal(err)
			}
			want, got := configOf(t, written), configOf(t, applied)
			// Compared as written (empty and missing lists are the same).
			wj, _ := json.MarshalIndent(want.Config, "", " ")
			gj, _ := json.MarshalIndent(got.Config, "", " ")
			if !bytes.Equal(wj, gj) {
				t.Errorf("config applied in the registry:\n%s\nthe builder's:\n%s", gj, wj)
			}
			if len(want.History) != len(got.History) {
				t.Fatalf("history: %d entries, the builder's %d", len(got.History), len(want.History))
			}
			for k := len(want.History) - n; k < len(want.History); k++ {
				w, g := want.History[k], got.History[k]
				if w.CreatedBy != g.CreatedBy || w.EmptyLayer != g.EmptyLayer {
					t.Errorf("history %d: %q (empty layer %v), the builder's %q (%v)", k, g.CreatedBy, g.EmptyLayer, w.CreatedBy, w.EmptyLayer)
				}
			}
		})
	}
}

func remoteImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	r, ropts, closeIdle, err := registryRef(ref, testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeIdle)
	img, err := remote.Image(r, ropts...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func configOf(t *testing.T, ref string) *v1.ConfigFile {
	t.Helper()
	cf, err := remoteImage(t, ref).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// testRegistry reaches testenv's registries, with their credential.
func testRegistry() registryAccess {
	return registryAccess{authFile: testenv.RegistryAuthFile()}
}
