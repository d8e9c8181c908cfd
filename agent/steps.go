package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/builder"
	"github.com/slipway-ci/slipway/dockerfile"
	"github.com/slipway-ci/slipway/internal/atomicfile"
)

// Step reuse. The builder's layer cache checks every step again on every
// build: it mounts each cached layer, hashes the sources of every COPY (a
// COPY --from of a node_modules tree takes seconds) and compares. The agent
// keeps its own record instead: for each step of a successful build, the
// key of its inputs and the image the builder made (or reused) for it. A
// step's key covers the step as the builder evaluates it (package
// dockerfile: variables expanded, flags, heredocs), its parent step's key
// (down to the digest of the FROM image or the key of the stage it starts
// from), and what it reads: the context files a COPY or ADD matches (after
// the ignore file), the files a bind mount of the context shows, the stage
// or pinned image a --from names, the environment (build arguments
// included) a RUN sees, the secrets it mounts. The next build starts each
// stage from the image of its longest recorded prefix, in a rewritten
// Dockerfile, so the builder runs only the steps after it (its own cache
// still serves those that it can).
//
// A step has no key, and ends its stage's prefix, when its inputs cannot be
// pinned down (ADD of a URL without --checksum, a --from image whose
// digest cannot be resolved) or when a stage could not start from its image
// without changing the build (ONBUILD, VOLUME). This is the assumption the
// builder's own layer cache makes: a RUN with the same parent, text and
// environment is not run again.

// stepKeysVersion changes when keys are computed differently: records of
// another version are never matched.
const stepKeysVersion = "slipway-steps-v2"

// stepKeys are the keys of a build's steps: keys[s][i] of stage s's step i
// (0 is its FROM), "" when the step has none; why[s][i] then says why.
type stepKeys struct {
	keys [][]string
	why  [][]string
}

// keyer computes step keys.
type keyer struct {
	bf            *buildFile
	entries       []contextEntry // the context after the ignore file
	secretDigests map[string]string
	// bindCache holds the identity of context bind-mount sources.
	bindCache map[string]string
}

// stepKeys computes the keys of every step of the build.
func (bf *buildFile) stepKeys(entries []contextEntry, secretDigests map[string]string) stepKeys {
	k := &keyer{bf: bf, entries: entries, secretDigests: secretDigests, bindCache: map[string]string{}}
	g := sha256.New()
	fmt.Fprintf(g, "%s\nformat %s\n", stepKeysVersion, bf.format)
	global := hex.EncodeToString(g.Sum(nil))
	out := stepKeys{keys: make([][]string, len(bf.Stages)), why: make([][]string, len(bf.Stages))}
	for s, st := range bf.Stages {
		out.keys[s] = make([]string, len(st.Steps))
		out.why[s] = make([]string, len(st.Steps))
		parent := global
		for i, step := range st.Steps {
			if parent == "" {
				out.why[s][i] = fmt.Sprintf("follows step %d, which has no key", firstUnkeyed(out.keys[s])+1)
				continue
			}
			h := sha256.New()
			fmt.Fprintf(h, "%s\n%s\n", parent, step.Command)
			writeList(h, "arg", step.Args)
			writeList(h, "flag", step.Flags)
			fmt.Fprintf(h, "json %t\n", step.JSON)
			for _, d := range step.Heredocs {
				fmt.Fprintf(h, "heredoc %q %q %t %t\n", d.Name, d.Content, d.Expand, d.Chomp)
			}
			var why string
			switch step.Command {
			case "from":
				why = k.from(h, st, out.keys)
			case "copy", "add":
				why = k.copies(h, s, step, out.keys)
			case "run":
				why = k.run(h, s, step, out.keys)
			case "arg":
				writeList(h, "in scope", step.ArgsInScope)
			case "onbuild":
				why = "ONBUILD: a stage cannot start from an image that carries triggers"
			case "volume":
				why = "VOLUME: the steps after it treat the volume differently when a stage starts from an image"
			}
			if why != "" {
				out.why[s][i] = why
				parent = ""
				continue
			}
			parent = hex.EncodeToString(h.Sum(nil))
			out.keys[s][i] = parent
		}
	}
	return out
}

func firstUnkeyed(keys []string) int {
	return max(slices.Index(keys, ""), 0)
}

func writeList(h hash.Hash, what string, l []string) {
	for _, v := range l {
		fmt.Fprintf(h, "%s %q\n", what, v)
	}
}

// lastKey is the key of stage s's last step ("" when it has none).
func lastKey(keys [][]string, s int) string {
	if s < 0 || s >= len(keys) || len(keys[s]) == 0 {
		return ""
	}
	return keys[s][len(keys[s])-1]
}

// from identifies what a stage starts from.
func (k *keyer) from(h hash.Hash, st *dockerfile.Stage, keys [][]string) string {
	switch {
	case st.BaseStage >= 0:
		key := lastKey(keys, st.BaseStage)
		if key == "" {
			return fmt.Sprintf("FROM %s: that stage has steps without a key", st.Base)
		}
		fmt.Fprintf(h, "stage %s\n", key)
	case st.IsScratch():
		fmt.Fprintf(h, "scratch\n")
	default:
		d, err := k.bf.images.digest(st.Base)
		if err != nil {
			return fmt.Sprintf("FROM %s: the image's digest cannot be resolved (%v)", st.Base, err)
		}
		fmt.Fprintf(h, "image %s %s\n", st.Base, d)
	}
	return ""
}

// stageOrImage identifies what a --from or from= names: an earlier stage
// by its key, an image by its digest.
func (k *keyer) stageOrImage(stage int, ref string, keys [][]string, what string) (string, string) {
	if j := k.bf.StageIndex(ref, stage); j >= 0 {
		key := lastKey(keys, j)
		if key == "" {
			return "", fmt.Sprintf("%s: stage %q has steps without a key", what, ref)
		}
		return "stage " + key, ""
	}
	d, err := k.bf.images.digest(ref)
	if err != nil {
		return "", fmt.Sprintf("%s: the image's digest cannot be resolved (%v)", what, err)
	}
	return "image " + ref + " " + d, ""
}

// copies identifies what a COPY or ADD copies.
func (k *keyer) copies(h hash.Hash, stage int, step *dockerfile.Step, keys [][]string) string {
	for _, c := range step.Copies {
		fmt.Fprintf(h, "copy dest %q chown %q chmod %q link %t parents %t keepgit %t checksum %q\n", c.Dest, c.Chown, c.Chmod, c.Link, c.Parents, c.KeepGitDir, c.Checksum)
		writeList(h, "exclude", c.Excludes)
		for _, f := range c.Files {
			fmt.Fprintf(h, "file %q %q\n", f.Name, f.Data)
		}
		if remoteAdd(c) && c.Checksum == "" {
			return fmt.Sprintf("%s of a URL: what it downloads can change under the same text (pin it with --checksum)", strings.ToUpper(step.Command))
		}
		if c.From != "" {
			id, why := k.stageOrImage(stage, c.From, keys, strings.ToUpper(step.Command)+" --from="+c.From)
			if why != "" {
				return why
			}
			fmt.Fprintf(h, "from %s\n", id)
			writeList(h, "source", c.Src)
			continue
		}
		for _, src := range c.Src {
			fmt.Fprintf(h, "source %q\n", src)
			if isHeredocSource(src, c) || c.Download && isRemoteSource(src) {
				continue
			}
			k.matching(h, src)
		}
	}
	return ""
}

// matching writes the identities of the context entries a COPY source
// matches, and of everything under the matched directories. It may take
// more than the builder copies (a changed file it would not copy only
// costs a rebuild), never less.
func (k *keyer) matching(h hash.Hash, src string) {
	pattern := strings.Trim(path.Clean("/"+filepath.ToSlash(src)), "/")
	all := pattern == "" || strings.Contains(pattern, "**")
	depth := strings.Count(pattern, "/") + 1
	for _, e := range k.entries {
		if !all {
			parts := strings.SplitN(e.rel, "/", depth+1)
			if len(parts) < depth {
				continue
			}
			if ok, err := path.Match(pattern, strings.Join(parts[:depth], "/")); err == nil && !ok {
				continue
			}
		}
		io.WriteString(h, e.line)
	}
}

// run identifies what a RUN reads besides its parent: its environment, and
// what it mounts.
func (k *keyer) run(h hash.Hash, stage int, step *dockerfile.Step, keys [][]string) string {
	// The build arguments come first in the environment in no fixed
	// order (the evaluator's map): the set is what the step sees.
	writeList(h, "env", slices.Sorted(slices.Values(step.Env)))
	for _, r := range step.Runs {
		fmt.Fprintf(h, "run shell %t network %q\n", r.Shell, r.Network)
		writeList(h, "arg", r.Args)
		for _, f := range r.Files {
			fmt.Fprintf(h, "file %q %q\n", f.Name, f.Data)
		}
		for _, raw := range r.Mounts {
			fmt.Fprintf(h, "mount %q\n", raw)
			m, err := parseRunMount(raw)
			if err != nil {
				return fmt.Sprintf("RUN --mount=%s: %v", raw, err)
			}
			switch {
			case m.from != "" && (m.typ == "bind" || m.typ == "cache"):
				id, why := k.stageOrImage(stage, m.from, keys, "RUN --mount=..."+"from="+m.from)
				if why != "" {
					return why
				}
				fmt.Fprintf(h, "from %s\n", id)
			case m.typ == "bind":
				id, err := k.bindSource(m.source)
				if err != nil {
					return fmt.Sprintf("RUN --mount=%s: its source cannot be read (%v)", raw, err)
				}
				fmt.Fprintf(h, "source %s\n", id)
			case m.typ == "secret":
				for _, name := range slices.Sorted(maps.Keys(k.secretDigests)) {
					fmt.Fprintf(h, "secret %q %s\n", name, k.secretDigests[name])
				}
			}
		}
	}
	return ""
}

// bindSource identifies the files a bind mount of the context shows: all
// of them under source, the ignore file does not apply to mounts.
func (k *keyer) bindSource(source string) (string, error) {
	rel := strings.Trim(path.Clean("/"+filepath.ToSlash(source)), "/")
	if id, ok := k.bindCache[rel]; ok {
		return id, nil
	}
	entries, err := contextEntries(k.bf.contextDir, rel, nil)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, e := range entries {
		io.WriteString(h, e.line)
	}
	id := hex.EncodeToString(h.Sum(nil))
	k.bindCache[rel] = id
	return id, nil
}

// stepRecord is the image a step key produced.
type stepRecord struct {
	Image string    `json:"image"`
	Used  time.Time `json:"used"`
}

// maxStepRecords bounds the record; the least recently used go first.
const maxStepRecords = 2000

func (a *Activities) loadSteps() map[string]stepRecord {
	recs := map[string]stepRecord{}
	if b, err := os.ReadFile(a.layout.Steps); err == nil {
		_ = json.Unmarshal(b, &recs)
	}
	return recs
}

// rememberSteps adds to recs (the records as the build found them) the
// image of every step of a successful build whose key is known, and saves
// them. steps are numbered as in the Dockerfile as written
// (originalSteps).
func (a *Activities) rememberSteps(recs map[string]stepRecord, keys [][]string, steps []buildah.Step) {
	now := time.Now().UTC()
	for _, s := range steps {
		st := max(s.Stage-1, 0)
		i := s.N - 1
		if st >= len(keys) || s.Total != len(keys[st]) || i < 1 || i >= len(keys[st]) || keys[st][i] == "" || s.Image == "" {
			continue // a FROM (its image is its base's), or not the steps we read
		}
		recs[keys[st][i]] = stepRecord{Image: s.Image, Used: now}
	}
	if len(recs) > maxStepRecords {
		ks := slices.SortedFunc(maps.Keys(recs), func(x, y string) int { return recs[x].Used.Compare(recs[y].Used) })
		for _, k := range ks[:len(recs)-maxStepRecords] {
			delete(recs, k)
		}
	}
	b, err := json.Marshal(recs)
	if err == nil {
		err = atomicfile.Write(a.layout.Steps, b, 0o644)
	}
	if err != nil {
		a.cfg.Logger.Warn("record build steps", "error", err)
	}
}

// forgetSteps drops the step records (their images are gone), on the
// volume and in the running build's plan p, if any.
func (a *Activities) forgetSteps(p *stepPlan) {
	_ = os.Remove(a.layout.Steps)
	if p != nil {
		clear(p.recs)
	}
}

// configTail returns the number of steps the final stage ends with that
// change only the image's config (dockerfile.Step.ConfigOnly): the build
// leaves them out and Push applies them to the image's config in the
// registry. At least one step after the FROM is built; in an OCI image a
// HEALTHCHECK has no place, so the tail has none then (the build is in
// Docker format whenever the Dockerfile has one).
func (bf *buildFile) configTail() int {
	steps := bf.Stages[len(bf.Stages)-1].Steps
	start := len(steps)
	for start > 2 && steps[start-1].ConfigOnly() && (bf.format == "docker" || steps[start-1].Command != "healthcheck") {
		start--
	}
	return len(steps) - start
}

// tailSteps are the config-only steps configTail counts, for Push, and
// their texts.
func (bf *buildFile) tailSteps(n int) (*builder.ConfigTail, []string) {
	all := bf.Stages[len(bf.Stages)-1].Steps
	before := all[len(all)-n-1]
	t := &builder.ConfigTail{CmdSet: before.CmdSet, RunEnv: slices.Clone(before.RunEnv)}
	var texts []string
	for _, s := range all[len(all)-n:] {
		t.Steps = append(t.Steps, s.ConfigStep())
		texts = append(texts, s.Original)
	}
	return t, texts
}

// builtinArgs are the build arguments the builder defines itself
// (imagebuilder's builtinArgDefaults); a stage declares them without a
// value.
var builtinArgs = map[string]bool{
	"TARGETPLATFORM": true, "TARGETOS": true, "TARGETARCH": true, "TARGETVARIANT": true,
	"BUILDPLATFORM": true, "BUILDOS": true, "BUILDARCH": true, "BUILDVARIANT": true,
}

// stepPlan is how a build uses the step records. A nil plan builds the
// Dockerfile as written.
type stepPlan struct {
	bf   *buildFile
	keys stepKeys
	// cut[s] is the index of the step of stage s whose recorded image the
	// rewritten stage starts from (0: the stage runs as written);
	// images[s] that image; restored[s] the ARGs the rewritten stage
	// declares again after its FROM (the build arguments in scope at the
	// cut, which an image does not keep).
	cut      []int
	images   []string
	restored [][]string
	recs     map[string]stepRecord // the records the plan was made from
	// tail is the number of the final stage's last steps applied to the
	// image's config in the registry instead of built (configTail).
	tail int
	dir  string // holds the rewritten Dockerfile
	file string // the rewritten Dockerfile; "" when the Dockerfile is built as written
}

// validCut reports whether stage st may start from the image of its step
// c: not inside the base image's ONBUILD triggers, and not between a CMD
// and a later ENTRYPOINT (the ENTRYPOINT keeps a CMD of the same stage,
// which a stage starting from an image does not know of).
func validCut(st *dockerfile.Stage, c int) bool {
	if c+1 < len(st.Steps) && st.Steps[c+1].Trigger {
		return false
	}
	if st.Steps[c].CmdSet {
		for _, s := range st.Steps[c+1:] {
			if s.Command == "entrypoint" {
				return false
			}
		}
	}
	return true
}

// cutPlan finds, for every stage, the longest prefix of steps with a
// recorded image. The final stage's last tail steps are not built: its
// prefix ends before them.
func cutPlan(bf *buildFile, keys stepKeys, recs map[string]stepRecord, tail int) (cut []int, images []string) {
	cut = make([]int, len(bf.Stages))
	images = make([]string, len(bf.Stages))
	for s, st := range bf.Stages {
		end := len(st.Steps) - 1
		if s == len(bf.Stages)-1 {
			end -= tail
		}
		for i := end; i >= 1; i-- {
			r, ok := recs[keys.keys[s][i]]
			if keys.keys[s][i] != "" && ok && r.Image != "" && validCut(st, i) {
				cut[s], images[s] = i, r.Image
				break
			}
		}
	}
	return cut, images
}

// planSteps computes the build's step keys and, when some stage can start
// from a recorded image or the final stage ends with config-only steps,
// writes the rewritten Dockerfile.
func (a *Activities) planSteps(bf *buildFile, entries []contextEntry, secretDigests, buildArgs map[string]string) *stepPlan {
	p := &stepPlan{bf: bf, keys: bf.stepKeys(entries, secretDigests)}
	p.recs = a.loadSteps()
	p.tail = bf.configTail()
	p.cut, p.images = cutPlan(bf, p.keys, p.recs, p.tail)
	p.restored = make([][]string, len(bf.Stages))
	if p.tail == 0 && !slices.ContainsFunc(p.cut, func(n int) bool { return n > 0 }) {
		return p
	}
	var b bytes.Buffer
	p.rewrite(&b, buildArgs)
	if err := p.check(b.Bytes(), buildArgs); err != nil {
		a.cfg.Logger.Warn("the rewritten Dockerfile does not read as planned; building as written", "error", err)
		p.drop()
		return p
	}
	dir, err := os.MkdirTemp(a.layout.Work, "dockerfile-")
	if err == nil {
		p.dir, p.file = dir, filepath.Join(dir, "Dockerfile")
		err = os.WriteFile(p.file, b.Bytes(), 0o644)
	}
	if err != nil {
		a.cfg.Logger.Warn("write the rewritten Dockerfile", "error", err)
		p.drop()
	}
	return p
}

// rewrite writes the Dockerfile with each cut stage starting FROM the
// recorded image of its prefix (and declaring again the build arguments
// in scope there), the final stage without its last tail steps. Every
// other line is copied as written: parser directives, comments, heredocs.
func (p *stepPlan) rewrite(w io.Writer, buildArgs map[string]string) {
	f := p.bf.File
	lines := func(from, to int) { // 1-based, inclusive
		for n := from; n <= to && n <= len(f.Lines); n++ {
			fmt.Fprintln(w, f.Lines[n-1])
		}
	}
	lines(1, f.Head)
	last := len(f.Stages) - 1
	for s, st := range f.Stages {
		end := len(f.Lines)
		if s < last {
			end = f.Stages[s+1].Steps[0].StartLine - 1
		} else if p.tail > 0 {
			end = st.Steps[len(st.Steps)-p.tail].StartLine - 1
		}
		c := p.cut[s]
		if c == 0 {
			lines(st.Steps[0].StartLine, end)
			continue
		}
		from := "FROM " + p.images[s]
		if st.Name != "" {
			from += " AS " + st.Name
		}
		fmt.Fprintln(w, from)
		p.restored[s] = nil
		if c+1 < len(st.Steps)-boolInt(s == last)*p.tail {
			for _, name := range st.Steps[c].Declared {
				if slices.Contains(p.restored[s], name) {
					continue
				}
				p.restored[s] = append(p.restored[s], name)
				fmt.Fprintln(w, restoreArg(name, st.Steps[c].ArgsInScope, buildArgs, f.EscapeToken))
			}
			lines(st.Steps[c+1].StartLine, end)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// restoreArg declares build argument name again with the value it had.
func restoreArg(name string, inScope []string, buildArgs map[string]string, escape rune) string {
	if _, user := buildArgs[name]; user || builtinArgs[name] {
		return "ARG " + name
	}
	for _, kv := range inScope {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			esc := string(escape)
			return "ARG " + name + "='" + strings.ReplaceAll(v, "'", "'"+esc+"''") + "'"
		}
	}
	return "ARG " + name
}

// check reads the rewritten Dockerfile as the builder will and compares
// it with the plan: the same stages, the steps after each cut the same,
// the same build arguments in scope.
func (p *stepPlan) check(src []byte, buildArgs map[string]string) error {
	// A recorded image's config is the config after its step.
	configs := map[string]*docker.Config{}
	for s, c := range p.cut {
		if c > 0 {
			configs[p.images[s]] = &p.bf.Stages[s].Steps[c].Config
		}
	}
	base := func(ref string) *docker.Config {
		if c, ok := configs[ref]; ok {
			return c
		}
		return p.bf.images.config(ref)
	}
	g, err := dockerfile.Parse(src, dockerfile.Options{BuildArgs: buildArgs, BaseConfig: base, Format: p.bf.format})
	if err != nil {
		return err
	}
	f := p.bf.File
	if len(g.Stages) != len(f.Stages) {
		return fmt.Errorf("%d stages, want %d", len(g.Stages), len(f.Stages))
	}
	for s, st := range f.Stages {
		want := st.Steps[p.cut[s]:]
		if s == len(f.Stages)-1 {
			want = want[:len(want)-p.tail]
		}
		got := g.Stages[s].Steps
		if p.cut[s] > 0 {
			if len(got) != len(want)+len(p.restored[s]) {
				return fmt.Errorf("stage %d: %d steps, want %d", s+1, len(got), len(want)+len(p.restored[s]))
			}
			at := got[len(p.restored[s])]
			if len(want) > 1 && !slices.Equal(at.ArgsInScope, want[0].ArgsInScope) {
				return fmt.Errorf("stage %d: build arguments %q after the restored ARGs, want %q", s+1, at.ArgsInScope, want[0].ArgsInScope)
			}
			got = got[len(p.restored[s])+1:]
			want = want[1:]
		}
		if len(got) != len(want) {
			return fmt.Errorf("stage %d: %d steps, want %d", s+1, len(got), len(want))
		}
		for i := range want {
			if got[i].Original != want[i].Original || !slices.Equal(got[i].Args, want[i].Args) {
				return fmt.Errorf("stage %d: step %q reads as %q", s+1, want[i].Original, got[i].Original)
			}
		}
	}
	return nil
}

func (p *stepPlan) cutting() bool { return p != nil && p.file != "" }

// summary says, for the build's log, which steps the records serve and
// which are left to the registry.
func (p *stepPlan) summary() []string {
	var parts []string
	total := 0
	for s, n := range p.cut {
		if n == 0 {
			continue
		}
		total += n
		st := p.bf.Stages[s]
		name := st.Name
		if name == "" {
			name = fmt.Sprintf("stage %d", s+1)
		}
		steps := fmt.Sprintf("steps 2-%d", n+1)
		if n == 1 {
			steps = "step 2"
		}
		if len(p.bf.Stages) > 1 {
			steps = name + " " + steps
		}
		parts = append(parts, fmt.Sprintf("%s (image %s)", steps, shortID(p.images[s])))
	}
	var out []string
	if total > 0 {
		out = append(out, fmt.Sprintf("reusing the images of %d unchanged step(s) of earlier builds, without the builder's cache checks: %s", total, strings.Join(parts, "; ")))
	}
	if p.tail > 0 {
		last := p.bf.Stages[len(p.bf.Stages)-1].Steps
		var texts []string
		for _, s := range last[len(last)-p.tail:] {
			texts = append(texts, s.Original)
		}
		out = append(out, fmt.Sprintf("the last %d step(s) change only the image's config (%s): applied in the registry at push, not built", p.tail, strings.Join(texts, "; ")))
	}
	return out
}

// whyNotReused lists, for the build's log, the steps that have no key
// (the first of each stage's chain), with the reason.
func (sk stepKeys) whyNotReused(bf *buildFile) []string {
	var out []string
	n := 0
	for s, st := range bf.Stages {
		for i := range st.Steps {
			if w := sk.why[s][i]; w != "" && !strings.HasPrefix(w, "follows step") {
				out = append(out, fmt.Sprintf("step %d not reused: %s", n+i+1, w))
			}
		}
		n += len(st.Steps)
	}
	return out
}

// mapStep numbers a step of the rewritten Dockerfile as the Dockerfile is
// written. The FROM that replaced a stage's prefix stands for the
// prefix's last step, shown with the recorded image it starts from; a
// restored ARG keeps the number of that step.
func (p *stepPlan) mapStep(s buildah.Step) buildah.Step {
	if !p.cutting() {
		return s
	}
	st := max(s.Stage-1, 0)
	if st >= len(p.cut) || (s.Stages == 0) != (len(p.cut) == 1) {
		return s
	}
	orig := p.bf.Stages[st].Steps
	s.Total = len(orig)
	c := p.cut[st]
	if c == 0 {
		return s
	}
	r := len(p.restored[st])
	switch {
	case s.N == 1:
		s.Instruction = orig[c].Header() + " (unchanged: image " + shortID(p.images[st]) + ")"
		s.N = c + 1
	case s.N <= 1+r:
		s.Instruction += " (declared again for the steps after the reused image)"
		s.N = c + 1
	default:
		s.N = s.N - 1 - r + c + 1
	}
	return s
}

// restoredStep reports whether a step of the rewritten Dockerfile is one
// of its restored ARGs.
func (p *stepPlan) restoredStep(s buildah.Step) bool {
	if !p.cutting() {
		return false
	}
	st := max(s.Stage-1, 0)
	return st < len(p.cut) && p.cut[st] > 0 && s.N > 1 && s.N <= 1+len(p.restored[st])
}

// mapHeader renumbers a step header line of the builder's output
// (mapStep); other lines pass unchanged.
func (p *stepPlan) mapHeader(line string) string {
	if !p.cutting() {
		return line
	}
	s, ok := buildah.ParseStepHeader(line)
	if !ok {
		return line
	}
	return p.mapStep(s).String()
}

// headers passes the builder's output to w, one line per Write, with the
// step headers renumbered (mapHeader): the build's log then numbers its
// steps as the Dockerfile does, as do the deployment's steps and its
// progress.
func (p *stepPlan) headers(w io.Writer) io.Writer {
	if !p.cutting() || w == nil {
		return w
	}
	return headerWriter{w: w, p: p}
}

type headerWriter struct {
	w io.Writer
	p *stepPlan
}

func (h headerWriter) Write(b []byte) (int, error) {
	line, nl := strings.CutSuffix(string(b), "\n")
	if m := h.p.mapHeader(line); m != line {
		if nl {
			m += "\n"
		}
		if _, err := io.WriteString(h.w, m); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return h.w.Write(b)
}

// progress maps a step the builder reports to the Dockerfile as written,
// and counts the steps the records served as cached.
func (p *stepPlan) progress(s buildah.Step, cached int) (buildah.Step, int) {
	if !p.cutting() {
		return s, cached
	}
	for _, n := range p.cut {
		cached += n
	}
	return p.mapStep(s), cached
}

// originalSteps maps the steps the builder ran from the rewritten
// Dockerfile back to the Dockerfile as written: a cut stage's prefix shows
// as cached steps that took no time (the last one carries the time of the
// FROM that replaced them), restored ARGs are left out, the steps after
// it get their numbers back, a stage cut whole, which the builder does not
// show, is all cached steps, and the final stage's last tail steps, left
// to the registry, come last: not cached, no time.
func (p *stepPlan) originalSteps(ran []buildah.Step) []buildah.Step {
	if !p.cutting() {
		return ran
	}
	f := p.bf.File
	multi := len(f.Stages) > 1
	step := func(s, i int) buildah.Step {
		st := buildah.Step{N: i + 1, Total: len(f.Stages[s].Steps), Instruction: f.Stages[s].Steps[i].Header(), Cached: i > 0}
		if multi {
			st.Stage, st.Stages = s+1, len(f.Stages)
		}
		if i == p.cut[s] {
			st.Image = p.images[s]
		}
		return st
	}
	var out []buildah.Step
	seen := map[int]bool{}
	for _, r := range ran {
		s := max(r.Stage-1, 0)
		if p.restoredStep(r) {
			continue
		}
		if s >= len(f.Stages) || p.cut[s] == 0 {
			out = append(out, p.mapStep(r))
			continue
		}
		if !seen[s] {
			seen[s] = true
			for i := range p.cut[s] {
				out = append(out, step(s, i))
			}
		}
		if r.N == 1 {
			o := step(s, p.cut[s])
			o.Duration = r.Duration
			out = append(out, o)
			continue
		}
		out = append(out, p.mapStep(r))
	}
	last := len(f.Stages) - 1
	for s := range f.Stages {
		if p.cut[s] > 0 && !seen[s] && p.cut[s] == len(f.Stages[s].Steps)-1-boolInt(s == last)*p.tail {
			for i := 0; i <= p.cut[s]; i++ {
				out = append(out, step(s, i))
			}
		}
	}
	steps := f.Stages[last].Steps
	for i := len(steps) - p.tail; i < len(steps); i++ {
		st := step(last, i)
		st.Cached = false
		out = append(out, st)
	}
	return out
}

// why says why a step of the Dockerfile as written (originalSteps) has
// no key; "" when it has one.
func (p *stepPlan) why(s buildah.Step) string {
	st, i := max(s.Stage-1, 0), s.N-1
	if st >= len(p.keys.why) || i < 0 || i >= len(p.keys.why[st]) {
		return ""
	}
	return p.keys.why[st][i]
}

// lostImage reports whether a failed build failed because an image a stage
// was to start from is gone.
func (p *stepPlan) lostImage(err error) bool {
	var be *buildah.BuildError
	if !p.cutting() || !errors.As(err, &be) {
		return false
	}
	for s, n := range p.cut {
		if n > 0 && (strings.Contains(be.Step, "FROM "+p.images[s]) || strings.Contains(be.Message, p.images[s])) {
			return true
		}
	}
	return false
}

// drop makes the plan build the Dockerfile as written.
func (p *stepPlan) drop() {
	if p == nil {
		return
	}
	p.remove()
	p.file = ""
	p.tail = 0
	clear(p.cut)
	for i := range p.restored {
		p.restored[i] = nil
	}
}

func (p *stepPlan) remove() {
	if p != nil && p.dir != "" {
		_ = os.RemoveAll(p.dir)
		p.dir = ""
	}
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
