package podman_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/internal/testenv"
)

// The old builder still builds, pushes, lists and resets through the
// buildah package's API, with podman 4.3 doing the work: the benchmark
// measures it beside buildah.
func TestOldBuilder(t *testing.T) {
	host := testenv.Registry(t)
	p := testenv.Podman(t)
	if p.Config().Engine != buildah.EnginePodman || !strings.HasPrefix(p.String(), "podman 4.") {
		t.Fatalf("podman.New gave %s (engine %s), want podman 4.x", p, p.Config().Engine)
	}
	base := testenv.BaseImage(t, p, host)
	dir := t.TempDir()
	df := "FROM " + base + "\nRUN echo built by the old builder\nRUN --mount=type=cache,target=/c echo cached >> /c/n\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := host + "/old:1"
	var out bytes.Buffer
	res, err := p.Build(t.Context(), buildah.BuildOptions{ContextDir: dir, Tag: ref, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if len(res.Steps) != 3 || !strings.Contains(out.String(), "built by the old builder") {
		t.Errorf("steps %+v, output:\n%s", res.Steps, out.String())
	}
	if _, err := p.Push(t.Context(), ref, false, nil); err != nil {
		t.Fatal(err)
	}
	imgs, err := p.Images(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, img := range imgs {
		found = found || (len(img.ID) == 64 && strings.HasPrefix(res.ImageID, "sha256:"+img.ID) && len(img.Names) == 1 && img.Names[0] == ref)
	}
	if !found {
		t.Errorf("Images = %+v, want %s (%s)", imgs, ref, res.ImageID)
	}
	if !p.ImageExists(t.Context(), ref) {
		t.Errorf("ImageExists(%s) = false", ref)
	}
	if err := p.Reset(t.Context()); err != nil {
		t.Fatal(err)
	}
	if p.ImageExists(t.Context(), ref) {
		t.Errorf("%s survived the reset", ref)
	}
}
