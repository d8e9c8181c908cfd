package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/podman"
)

// TestLabelInRegistry pushes an image built with a label of its own, puts
// the deployment's labels on it in the registry, and reads it back: the
// tag points to the new manifest, the config has both sets of labels, the
// layers are the pushed ones.
func TestLabelInRegistry(t *testing.T) {
	host := testenv.Registry(t)
	p := testenv.Podman(t)
	base := testenv.BaseImage(t, p, host)
	dir := t.TempDir()
	df := "FROM " + base + "\nLABEL maintainer=\"someone\"\nRUN echo hi > /hi\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := host + "/app:0123456789abcdef"
	var out bytes.Buffer
	if _, err := p.Build(t.Context(), podman.BuildOptions{ContextDir: dir, Tag: ref, Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	pushed, err := p.Push(t.Context(), ref, false, &out)
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out.String())
	}
	labels := map[string]string{"slipway.project": "app", "slipway.deployment": "d-1", "slipway.commit": "0123456789abcdef"}
	got, err := labelInRegistry(t.Context(), ref, labels, false)
	if err != nil {
		t.Fatalf("labelInRegistry: %v", err)
	}
	if got == pushed {
		t.Fatalf("labelInRegistry returned the pushed digest %s: nothing changed", got)
	}
	if d, err := registryDigest(t.Context(), ref, false); err != nil || d != got {
		t.Fatalf("the tag points to %s (err %v), want the labelled manifest %s", d, err, got)
	}

	r, ropts, err := registryRef(ref, false)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, ropts...)
	if err != nil {
		t.Fatal(err)
	}
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
	r0, _, _ := registryRef(host+"/app@"+pushed, false)
	orig, err := remote.Image(r0, ropts...)
	if err != nil {
		t.Fatalf("the unlabelled manifest %s: %v", pushed, err)
	}
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
	if _, err := labelInRegistry(t.Context(), host+"/nothing:here", labels, false); err == nil {
		t.Error("labelInRegistry of an image the registry lacks succeeded")
	}
}
