package agent

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	docker "github.com/fsouza/go-dockerclient"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of TestCorpus")

// corpusDir holds real-world Dockerfiles from public repositories (see its
// SOURCES.md), none written here.
const corpusDir = "../dockerfile/testdata/corpus"

// corpusBuildArgs are the build arguments a corpus Dockerfile needs to
// name its base image (as its project would set them).
var corpusBuildArgs = map[string]map[string]string{
	"10-home-assistant-core-uv-pip.Dockerfile": {"BUILD_FROM": "ghcr.io/home-assistant/amd64-homeassistant-base:2025.1.0"},
}

// TestCorpus reads every Dockerfile of the corpus as Build does and
// compares, for each, what Slipway takes from it with a golden file
// (testdata/corpus/NAME.golden; go test -run TestCorpus -update rewrites
// them): the stages and steps as the builder evaluates them (expanded
// arguments, flags, COPY sources, RUN mounts and network), which steps
// have a step key and why not, the config-only tail, the image format and
// the policy's verdict. It also checks that for every stage and every
// step a stage could start from, the rewritten Dockerfile reads back as
// planned. Every image resolves (to a digest made from its name), the
// context is empty.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.Dockerfile"))
	if err != nil || len(files) < 25 {
		t.Fatalf("corpus: %d files (%v)", len(files), err)
	}
	resolveAll := func(_ context.Context, ref string) (string, *docker.Config, error) {
		return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(ref))), nil, nil
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), src, 0o644); err != nil {
				t.Fatal(err)
			}
			args := corpusBuildArgs[name]
			bf, err := readBuildFile(dir, "", "Dockerfile", args, newImageResolver(t.Context(), resolveAll))
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			in := bf.readInputs(args, nil)
			if !in.read {
				t.Fatalf("inputs: %s", in.why)
			}
			keys := bf.stepKeys(in.entries, nil)
			got := describeBuild(bf, keys)
			if in.key == "" {
				got += "\ninputs key: none (" + in.why + ")\n"
			}
			golden := filepath.Join("testdata", "corpus", strings.TrimSuffix(name, ".Dockerfile")+".golden")
			if *updateGolden {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test ./agent -run TestCorpus -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("reading differs from %s:\n%s", golden, lineDiff(string(want), got))
			}
			checkEveryCut(t, bf, keys, args)
		})
	}
}

// describeBuild is what TestCorpus compares.
func describeBuild(bf *buildFile, keys stepKeys) string {
	var b strings.Builder
	fmt.Fprintf(&b, "format %s\n", bf.format)
	if err := checkPolicy(bf); err != nil {
		fmt.Fprintf(&b, "policy: %v\n", err)
	} else {
		fmt.Fprintf(&b, "policy: allowed\n")
	}
	n := 0
	for s, st := range bf.Stages {
		from := "image"
		if st.BaseStage >= 0 {
			from = fmt.Sprintf("stage %d", st.BaseStage+1)
		} else if st.IsScratch() {
			from = "scratch"
		}
		fmt.Fprintf(&b, "\nstage %d %q: %s (%s)\n", s+1, st.Name, st.Base, from)
		for i, step := range st.Steps {
			n++
			mark := "key"
			if keys.keys[s][i] == "" {
				mark = "no key"
			}
			where := fmt.Sprintf("line %d", step.StartLine)
			if step.Trigger {
				where = "trigger"
			}
			fmt.Fprintf(&b, "  %d. %s [%s, %s]\n", i+1, step.Header(), where, mark)
			if len(step.Args) > 0 && step.Command != "from" {
				fmt.Fprintf(&b, "     args %q\n", step.Args)
			}
			for _, c := range step.Copies {
				fmt.Fprintf(&b, "     copy from=%q src=%q dest=%q chown=%q chmod=%q link=%v\n", c.From, c.Src, c.Dest, c.Chown, c.Chmod, c.Link)
			}
			for _, r := range step.Runs {
				if len(r.Mounts) > 0 || r.Network != "" {
					fmt.Fprintf(&b, "     mounts %q network %q\n", r.Mounts, r.Network)
				}
			}
			if w := keys.why[s][i]; w != "" && !strings.HasPrefix(w, "follows") {
				fmt.Fprintf(&b, "     why: %s\n", w)
			}
		}
	}
	if tail := bf.configTail(); tail > 0 {
		_, texts := bf.tailSteps(tail)
		fmt.Fprintf(&b, "\nconfig tail: %q\n", texts)
	}
	return b.String()
}

// checkEveryCut rewrites the Dockerfile for a cut at every step of every
// stage that has a key and checks it reads back as planned.
func checkEveryCut(t *testing.T, bf *buildFile, keys stepKeys, args map[string]string) {
	t.Helper()
	tail := bf.configTail()
	for s, st := range bf.Stages {
		for c := 1; c < len(st.Steps); c++ {
			if keys.keys[s][c] == "" || !validCut(st, c) || (s == len(bf.Stages)-1 && c >= len(st.Steps)-tail) {
				continue
			}
			p := &stepPlan{bf: bf, keys: keys, tail: tail, cut: make([]int, len(bf.Stages)), images: make([]string, len(bf.Stages)), restored: make([][]string, len(bf.Stages))}
			p.cut[s], p.images[s] = c, "0123456789ab"
			var out strings.Builder
			p.rewrite(&out, args)
			if err := p.check([]byte(out.String()), args); err != nil {
				t.Errorf("stage %d cut after step %d: %v\n%s", s+1, c+1, err, out.String())
			}
		}
	}
}

// lineDiff shows the lines where want and got first differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, wl, gl)
		}
	}
	return ""
}
