package main

import (
	"os/exec"
	"strings"
	"testing"
)

// notInTheAgent are the packages slipway-agent must not link, by import
// path prefix, with why. The agent is started on every wake of a builder
// machine: what it links costs start time and size, and the control
// plane's parts have no business on a builder.
var notInTheAgent = []struct{ prefix, why string }{
	{"github.com/nats-io/nats-server", "the NATS server (the agent is a NATS client: natslog, natslog/publish, events)"},
	{"go.temporal.io/server", "the Temporal server (the agent is a Temporal worker: go.temporal.io/sdk)"},
	{"github.com/99designs/gqlgen", "the GraphQL API"},
	{"modernc.org/sqlite", "the SQLite store"},
	{"github.com/slipway-ci/slipway/natsserver", "the embedded NATS server"},
	{"github.com/slipway-ci/slipway/natslog/archive", "the server's side of the log"},
	{"github.com/slipway-ci/slipway/temporalserver", "the embedded Temporal server"},
	{"github.com/slipway-ci/slipway/sqlite", "the SQLite store"},
	{"github.com/slipway-ci/slipway/graphql", "the GraphQL API"},
	{"github.com/slipway-ci/slipway/server", "the control plane"},
}

// knownExceptions are packages matched by notInTheAgent that the agent
// still links, each with the reason; none today.
var knownExceptions = map[string]string{}

// TestAgentLinksNoServer fails when slipway-agent's dependencies (go list
// -deps) include a package of notInTheAgent, and names the chain of
// imports that drags it in.
func TestAgentLinksNoServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	imports := map[string][]string{}
	var main string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		imports[f[0]] = f[1:]
		main = f[0] // go list -deps lists the package itself last
	}
	if main != "github.com/slipway-ci/slipway/cmd/slipway-agent" {
		t.Fatalf("go list -deps ended with %q, want the agent's main package", main)
	}
	chains := importChains(main, imports)
	for _, n := range notInTheAgent {
		// Report the package of n nearest to main, and how many more.
		var first string
		count := 0
		for dep := range chains {
			if dep != n.prefix && !strings.HasPrefix(dep, n.prefix+"/") {
				continue
			}
			if why, ok := knownExceptions[dep]; ok {
				t.Logf("slipway-agent links %s (known exception: %s)", dep, why)
				continue
			}
			count++
			if first == "" || len(chains[dep]) < len(chains[first]) || len(chains[dep]) == len(chains[first]) && dep < first {
				first = dep
			}
		}
		if count > 0 {
			t.Errorf("slipway-agent links %s (%d packages under %s), %s:\n\t%s",
				first, count, n.prefix, n.why, strings.Join(chains[first], "\n\t→ "))
		}
	}
	for dep := range knownExceptions {
		if _, ok := chains[dep]; !ok {
			t.Errorf("known exception %s is no longer linked: remove it from knownExceptions", dep)
		}
	}
}

// importChains returns, for every package reachable from root, the
// shortest chain of imports from root to it.
func importChains(root string, imports map[string][]string) map[string][]string {
	chains := map[string][]string{root: {root}}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range imports[p] {
			if _, seen := chains[q]; seen {
				continue
			}
			chains[q] = append(append([]string(nil), chains[p]...), q)
			queue = append(queue, q)
		}
	}
	return chains
}
