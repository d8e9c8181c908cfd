package archtest

import (
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

// module is the import path of the root package.
const module = "github.com/slipway-ci/slipway"

// A role says which of the module's packages a package may import.
type role int

const (
	// domain is the root package: domain types and the contracts between
	// the parts. It imports no project package.
	domain role = iota
	// contract is package builder, the contract between the control plane
	// and its builders: it imports only the root package and dockerfile.
	contract
	// shared packages are small libraries of no part in particular that
	// any package may import; they import at most the root package.
	shared
	// adapter packages are the parts (one technology or one service
	// each): they import the root package, the contract and shared
	// packages, and other adapters only along allowedEdges.
	adapter
	// wiring packages put the parts together (commands, the server,
	// benchmarks, end-to-end tests): they import any package but test
	// support.
	wiring
	// testSupport packages help tests: they import any package, and only
	// tests and other test support import them.
	testSupport
)

var roleNames = map[role]string{
	domain: "the domain package", contract: "the contract", shared: "a shared package",
	adapter: "an adapter", wiring: "a wiring package", testSupport: "a test-support package",
}

// A side says where a package runs: the agent (and slipway-agent) may
// link only packages of agentSide and bothSides.
type side int

const (
	bothSides  side = iota // linked by the agent and the control plane
	agentSide              // runs on a builder machine only
	serverSide             // the control plane and its clients
	notShipped             // benchmarks and tests
)

// packages classifies every package of the module, by import path
// relative to the module ("" is the root package). A new package fails
// TestEveryPackageIsClassified until it is added here.
var packages = map[string]struct {
	role role
	side side
}{
	"":                      {domain, bothSides},
	"builder":               {contract, bothSides},
	"dockerfile":            {shared, bothSides},
	"redact":                {shared, bothSides},
	"internal/atomicfile":   {shared, bothSides},
	"credential":            {shared, serverSide},
	"internal/leakcheck":    {shared, bothSides},
	"agent":                 {adapter, agentSide},
	"applog":                {adapter, serverSide},
	"apps":                  {adapter, serverSide},
	"buildah":               {adapter, bothSides},
	"buildah/baseimage":     {adapter, serverSide},
	"buildsecrets":          {adapter, bothSides},
	"client":                {adapter, serverSide},
	"deploy":                {adapter, serverSide},
	"events":                {adapter, bothSides},
	"gateway":               {adapter, serverSide},
	"github":                {adapter, serverSide},
	"gitmirror":             {adapter, agentSide},
	"graphql":               {adapter, serverSide},
	"graphql/internal/gen":  {adapter, serverSide},
	"machine/process":       {adapter, serverSide},
	"natslog":               {adapter, bothSides},
	"natslog/archive":       {adapter, serverSide},
	"natslog/publish":       {adapter, agentSide},
	"natsserver":            {adapter, serverSide},
	"payloadcodec":          {adapter, bothSides},
	"podman":                {adapter, agentSide},
	"registry":              {adapter, serverSide},
	"sqlite":                {adapter, serverSide},
	"temporalserver":        {adapter, serverSide},
	"web":                   {adapter, serverSide},
	"cmd/internal/agentcmd": {wiring, agentSide},
	"cmd/slipway-agent":     {wiring, agentSide},
	"cmd/slipway-runc":      {wiring, agentSide},
	"cmd/slipway":           {wiring, serverSide},
	"server":                {wiring, serverSide},
	"bench/cmd/bench":       {wiring, notShipped},
	"bench/cmd/benchlogs":   {wiring, notShipped},
	"e2e":                   {wiring, notShipped},
	"e2e/attacker":          {wiring, notShipped},
	"e2e/appecho":           {wiring, notShipped},
	"internal/archtest":     {testSupport, notShipped},
	"internal/logtest":      {testSupport, notShipped},
	"internal/testenv":      {testSupport, notShipped},
	"sqlite/sqlitetest":     {testSupport, notShipped},
	"web/webtest":           {testSupport, notShipped},

	// make bench-runtime (issue 17, item 3)
	"bench/cmd/benchruntime": {wiring, notShipped},
}

// allowedEdges are the adapters' sideways imports (adapter → adapter),
// "from → to" by path relative to the module, each with its reason. A new
// one fails TestImportsFollowTheLayers until it is listed here, with a
// reason, or goes through the root package's interfaces instead.
var allowedEdges = map[string]string{
	"applog → apps":                  "the app log collector follows the log files of the app runtime's containers",
	"applog → natslog":               "app lines are cut and named as build log lines are",
	"agent → buildah":                "the agent builds with buildah on its machine's volume",
	"agent → buildsecrets":           "the agent asks the control plane for a build's secrets",
	"agent → events":                 "the agent announces that a building deployment made progress",
	"agent → gitmirror":              "the agent fetches and checks out commits into its mirror",
	"agent → natslog/publish":        "the agent publishes the build log",
	"agent → payloadcodec":           "the agent's Temporal client encrypts the payloads it writes into histories",
	"buildah/baseimage → buildah":    "base images are made with the builder they are for",
	"podman → buildah":               "podman is driven through package buildah, as its EnginePodman",
	"machine/process → buildah":      "the process provider probes whether buildah runs rootless for a machine's builder user, and checks the builder's tools",
	"events → natslog":               "event subjects follow the log subjects' rule for valid project and deployment names",
	"natslog/archive → natslog":      "the archiver reads the log's wire format",
	"natslog/archive → events":       "the Watcher follows a deployment's events to know when its log may have ended",
	"natslog/publish → natslog":      "the publisher writes the log's wire format",
	"natsserver → natslog":           "the embedded server creates the log stream, with its name and limits, and lets an agent publish only its project's log subjects",
	"natsserver → events":            "the embedded server lets an agent announce only its own project's deployments (events.Subject)",
	"natsserver → buildsecrets":      "the embedded server lets an agent ask only for its own project's build secrets (buildsecrets.Subject)",
	"graphql → graphql/internal/gen": "the code gqlgen generates for package graphql",
	"graphql → deploy":               "the API changes projects through the project service (deploy.Projects), which owns their rules, as the demo does; a default one when the server passes none",
}

// agentRoots are the packages whose links
// TestAgentImportsNoServerPackage checks.
var agentRoots = []string{"agent", "cmd/slipway-agent"}

// notInTheAgent are the packages of other modules the agent must not link,
// by import path prefix, with why. The agent is started on every wake of a
// builder machine: what it links costs start time and size, and the
// control plane's parts have no business on a builder.
var notInTheAgent = []struct{ prefix, why string }{
	{"github.com/nats-io/nats-server", "the NATS server (the agent is a NATS client: natslog, natslog/publish, events)"},
	{"go.temporal.io/server", "the Temporal server (the agent is a Temporal worker: go.temporal.io/sdk)"},
	{"github.com/99designs/gqlgen", "the GraphQL API"},
	{"modernc.org/sqlite", "the SQLite store"},
	{"github.com/distribution/distribution", "the registry"},
}

// graph is the import graph of the module's packages and everything they
// link (go list -deps, imports of non-test files): path → direct imports.
type graph map[string][]string

var (
	loadOnce  sync.Once
	loaded    graph
	loadError error
)

// load runs go list once for all the tests of this file.
func load(t *testing.T) graph {
	t.Helper()
	loadOnce.Do(func() {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"/...")
		out, err := cmd.Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				err = fmt.Errorf("%w\n%s", err, ee.Stderr)
			}
			loadError = fmt.Errorf("go list -deps: %w", err)
			return
		}
		loaded = graph{}
		for line := range strings.Lines(string(out)) {
			if f := strings.Fields(line); len(f) > 0 {
				loaded[f[0]] = f[1:]
			}
		}
	})
	if loadError != nil {
		t.Fatal(loadError)
	}
	return loaded
}

// rel returns path relative to the module, and whether it is one of the
// module's packages.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// name is how messages name a package: relative to the module, or "the
// root package".
func name(r string) string {
	if r == "" {
		return "the root package"
	}
	return r
}

// ownImports returns the module's packages that pkg (relative) imports
// directly, relative to the module.
func (g graph) ownImports(pkg string) []string {
	var own []string
	for _, imp := range g[join(pkg)] {
		if r, ok := rel(imp); ok {
			own = append(own, r)
		}
	}
	return own
}

// join is the inverse of rel.
func join(r string) string {
	if r == "" {
		return module
	}
	return module + "/" + r
}

// chains returns, for every package reachable from root, the shortest
// chain of imports from root to it.
func (g graph) chains(root string) map[string][]string {
	chains := map[string][]string{root: {root}}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range g[p] {
			if _, seen := chains[q]; seen {
				continue
			}
			chains[q] = append(append([]string(nil), chains[p]...), q)
			queue = append(queue, q)
		}
	}
	return chains
}

func TestEveryPackageIsClassified(t *testing.T) {
	g := load(t)
	found := map[string]bool{}
	for path := range g {
		r, ok := rel(path)
		if !ok {
			continue
		}
		found[r] = true
		if _, ok := packages[r]; !ok {
			t.Errorf("package %s is not classified: add it to packages in layering_test.go with its role and side", name(r))
		}
	}
	for r := range packages {
		if !found[r] {
			t.Errorf("package %s is classified but no longer exists: remove it from packages", name(r))
		}
	}
}

// mayImport reports whether a package of role from may import one of role
// to without an entry in allowedEdges.
func mayImport(from, to role) bool {
	switch from {
	case domain:
		return false
	case contract:
		return false // TestImportsNeitherSide
	case shared:
		return to == domain
	case adapter:
		return to == domain || to == contract || to == shared
	case wiring:
		return to != testSupport
	}
	return true // testSupport
}

func TestImportsFollowTheLayers(t *testing.T) {
	g := load(t)
	used := map[string]bool{}
	for _, from := range slices.Sorted(maps.Keys(packages)) {
		p := packages[from]
		if p.role == contract {
			continue
		}
		for _, to := range g.ownImports(from) {
			q, ok := packages[to]
			if !ok || mayImport(p.role, q.role) {
				continue
			}
			edge := from + " → " + to
			if p.role == adapter && q.role == adapter {
				if _, ok := allowedEdges[edge]; ok {
					used[edge] = true
					continue
				}
				t.Errorf("new sideways import %s: add it to allowedEdges with its reason, or depend on an interface of the root package instead", edge)
				continue
			}
			t.Errorf("%s (%s) imports %s (%s): %s", name(from), roleNames[p.role], name(to), roleNames[q.role], rule(p.role))
		}
	}
	for edge := range allowedEdges {
		if !used[edge] {
			t.Errorf("allowed edge %s is no longer an import: remove it from allowedEdges", edge)
		}
	}
}

// rule says what a package of role r may import.
func rule(r role) string {
	switch r {
	case domain:
		return "the root package imports no project package"
	case shared:
		return "a shared package imports at most the root package"
	case adapter:
		return "an adapter imports the root package, the contract, shared packages and the adapters of allowedEdges"
	case wiring:
		return "only tests and test support import test support"
	}
	return ""
}

// The contract imports neither side: of this module, only the domain
// types (the root package) and the Dockerfile reader, whose evaluated
// steps travel in ConfigTail.
func TestImportsNeitherSide(t *testing.T) {
	g := load(t)
	allowed := []string{"", "builder", "dockerfile"}
	for dep, chain := range g.chains(join("builder")) {
		if r, ok := rel(dep); ok && !slices.Contains(allowed, r) {
			t.Errorf("package builder links %s, the contract may import only the root package and dockerfile:\n\t%s",
				name(r), strings.Join(chain, "\n\t→ "))
		}
	}
}

// TestAgentImportsNoServerPackage fails when the dependencies of the agent
// or of slipway-agent (go list -deps) include a package of the module that
// is not of the agent's side, or one of notInTheAgent, and names the chain
// of imports that drags it in.
func TestAgentImportsNoServerPackage(t *testing.T) {
	g := load(t)
	for _, root := range agentRoots {
		chains := g.chains(join(root))
		for dep, chain := range chains {
			r, ok := rel(dep)
			if !ok {
				continue
			}
			if s := packages[r].side; s == serverSide || s == notShipped {
				t.Errorf("%s links %s, a package of the control plane or of the tests: share it through package builder instead:\n\t%s",
					root, name(r), strings.Join(chain, "\n\t→ "))
			}
		}
		for _, n := range notInTheAgent {
			// Report the package of n nearest to root, and how many more.
			var first string
			count := 0
			for dep := range chains {
				if dep != n.prefix && !strings.HasPrefix(dep, n.prefix+"/") {
					continue
				}
				count++
				if first == "" || len(chains[dep]) < len(chains[first]) || len(chains[dep]) == len(chains[first]) && dep < first {
					first = dep
				}
			}
			if count > 0 {
				t.Errorf("%s links %s (%d packages under %s), %s:\n\t%s",
					root, first, count, n.prefix, n.why, strings.Join(chains[first], "\n\t→ "))
			}
		}
	}
}
