package dockerfile

import (
	"os"
	"regexp"
	"testing"
)

// TestSameCodeAsTheBuilder: the parser and evaluator this package links
// are the versions the builder (tools/buildah, which scripts/setup builds)
// links, so that the reading is the builder's own.
func TestSameCodeAsTheBuilder(t *testing.T) {
	ours, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	builders, err := os.ReadFile("../tools/buildah/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range []string{"github.com/openshift/imagebuilder", "github.com/moby/buildkit"} {
		re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(mod) + ` (v\S+)`)
		a, b := re.FindSubmatch(ours), re.FindSubmatch(builders)
		if a == nil || b == nil {
			t.Fatalf("%s: go.mod %q, tools/buildah/go.mod %q", mod, a, b)
		}
		if string(a[1]) != string(b[1]) {
			t.Errorf("%s: Slipway reads Dockerfiles with %s, the builder with %s: pin the same version in go.mod", mod, a[1], b[1])
		}
	}
}
