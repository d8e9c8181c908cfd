package builder_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/slipway-ci/slipway"

// deps lists the packages pkgs link, from go list.
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	out, err := exec.Command(goTool, append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, pkgs...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}

// under reports whether pkg is prefix or a package below it.
func under(pkg, prefix string) bool {
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

// The contract imports neither side: of this module, only the domain
// types (the root package) and the Dockerfile reader, whose evaluated
// steps travel in ConfigTail.
func TestImportsNeitherSide(t *testing.T) {
	allowed := []string{module, module + "/builder", module + "/dockerfile"}
	for _, d := range deps(t, module+"/builder") {
		if under(d, module) && !slices.Contains(allowed, d) {
			t.Errorf("package builder links %s: the contract may import only %v", d, allowed)
		}
	}
}

// The agent (and the slipway-agent binary) imports no server-side
// package, and links no server: what it shares with the control plane is
// package builder's.
func TestAgentImportsNoServerPackage(t *testing.T) {
	forbidden := []string{
		module + "/deploy", module + "/server", module + "/graphql", module + "/sqlite", module + "/github",
		module + "/temporalserver", module + "/registry", module + "/machine", module + "/client", module + "/web",
		module + "/cmd/slipway",
		"go.temporal.io/server", "github.com/99designs/gqlgen", "modernc.org/sqlite",
		"github.com/distribution/distribution", "github.com/nats-io/nats-server",
	}
	linked := map[string]bool{}
	for _, d := range deps(t, module+"/agent", module+"/cmd/slipway-agent") {
		for _, f := range forbidden {
			if !under(d, f) || linked[f] {
				continue
			}
			linked[f] = true
			t.Errorf("the agent links %s (%s), a server-side package: share it through package builder instead", d, f)
		}
	}
}
