package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway-ci/slipway/buildah"
	"github.com/slipway-ci/slipway/internal/atomicfile"
)

// Step reuse. podman's layer cache checks every step again on every build:
// it mounts each cached layer, hashes the sources of every COPY (a COPY
// --from of a node_modules tree takes seconds) and compares. On the bench
// app that is 5.4 s of a 14.8 s rebuild after a one-line change, spent on
// steps whose inputs did not change. The agent keeps its own record
// instead: for each step of a successful build, the key of its inputs and
// the image podman made (or reused) for it. A step's key covers its
// instruction, its parent step's key (down to the digest of the FROM
// image or the key of the stage it starts from), the contents of the
// context files it copies (after .dockerignore) and the key of the stage it
// copies from. The next build starts each stage from the image of its
// longest recorded prefix, in a rewritten Dockerfile, so podman runs only
// the steps after it (its own cache still serves those that it can).
//
// A prefix ends before a step whose inputs the key cannot pin down: ARG
// (its value is not kept in the image), SHELL, ONBUILD and HEALTHCHECK
// (not kept in an OCI image), a RUN with a bind mount or a mount from
// another stage or image, COPY --from an image, JSON or heredoc forms the
// parser does not read. This is the assumption podman's layer cache makes:
// a RUN with the same parent and text is not run again.

// dfInstruction is one instruction of a Dockerfile.
type dfInstruction struct {
	keyword string   // upper case: "COPY"
	text    string   // the logical line, continuations joined
	raw     []string // the physical lines, as written
}

// dfStage is one FROM and the instructions after it.
type dfStage struct {
	name  string // lower case, "" when the stage has no AS
	insts []dfInstruction
}

// dockerfileStages is a Dockerfile split into stages.
type dockerfileStages struct {
	head   []string // the physical lines before the first FROM (global ARGs)
	stages []dfStage
}

// parseStages splits a Dockerfile into stages. It gives a reason instead
// when the file uses syntax whose text it cannot rewrite faithfully.
func parseStages(df []byte) (*dockerfileStages, string) {
	d := &dockerfileStages{}
	first := true // no instruction yet: a comment may be a parser directive
	for l := range dockerfileLines(df) {
		if l.open {
			return nil, "a continued last line"
		}
		if l.text == "" {
			trimmed := strings.TrimSpace(l.raw[0])
			if first && strings.HasPrefix(trimmed, "#") && strings.Contains(strings.ToLower(trimmed), "escape") && strings.Contains(trimmed, "=") {
				return nil, "a parser directive"
			}
			if len(d.stages) == 0 {
				d.head = append(d.head, l.raw[0])
			}
			continue
		}
		first = false
		cur := dfInstruction{raw: l.raw, text: l.text}
		fields := strings.Fields(cur.text)
		cur.keyword = strings.ToUpper(fields[0])
		if strings.Contains(cur.text, "<<") && (cur.keyword == "RUN" || cur.keyword == "COPY" || cur.keyword == "ADD") {
			return nil, "a heredoc"
		}
		if cur.keyword == "FROM" {
			args := withoutFlags(fields[1:])
			st := dfStage{}
			if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
				st.name = strings.ToLower(args[2])
			}
			d.stages = append(d.stages, st)
		} else if len(d.stages) == 0 {
			d.head = append(d.head, cur.raw...)
			continue
		}
		st := &d.stages[len(d.stages)-1]
		st.insts = append(st.insts, cur)
	}
	if len(d.stages) == 0 {
		return nil, "no FROM"
	}
	return d, ""
}

// stageIndex finds the stage a FROM or --from names among the stages
// before stage before: by name, or by number.
func (d *dockerfileStages) stageIndex(ref string, before int) int {
	ref = strings.ToLower(ref)
	if isNumber(ref) {
		n, err := strconv.Atoi(ref)
		if err == nil && n < before {
			return n
		}
		return -1
	}
	for i := before - 1; i >= 0; i-- {
		if d.stages[i].name == ref {
			return i
		}
	}
	return -1
}

// stepKeyInputs is what step keys are computed from besides the Dockerfile.
type stepKeyInputs struct {
	entries       []contextEntry
	digests       map[string]string // external image → manifest digest
	buildArgs     map[string]string
	secretDigests map[string]string
}

// keys returns, for every stage, the key of each of its steps (keys[s][0]
// is the FROM's); "" from the first step whose inputs cannot be pinned
// down to the end of its stage.
func (d *dockerfileStages) keys(in stepKeyInputs) [][]string {
	global := sha256.New()
	fmt.Fprintf(global, "slipway-steps-v1\n%s\n", strings.Join(d.head, "\n"))
	for _, k := range slices.Sorted(maps.Keys(in.buildArgs)) {
		fmt.Fprintf(global, "arg %q %q\n", k, in.buildArgs[k])
	}
	globalKey := hex.EncodeToString(global.Sum(nil))
	lastKey := func(keys [][]string, s int) string {
		if s < 0 || s >= len(keys) || len(keys[s]) == 0 {
			return ""
		}
		return keys[s][len(keys[s])-1]
	}
	out := make([][]string, len(d.stages))
	for s, st := range d.stages {
		out[s] = make([]string, len(st.insts))
		parent := ""
		for i, inst := range st.insts {
			extra, ok := "", true
			fields := strings.Fields(inst.text)
			switch inst.keyword {
			case "FROM":
				args := withoutFlags(fields[1:])
				if len(args) == 0 {
					ok = false
					break
				}
				if from := d.stageIndex(args[0], s); from >= 0 {
					extra = "stage " + lastKey(out, from)
					ok = lastKey(out, from) != ""
				} else if strings.EqualFold(args[0], "scratch") {
					extra = "scratch"
				} else {
					extra = "image " + in.digests[args[0]]
					ok = in.digests[args[0]] != ""
				}
				parent = globalKey
			case "COPY", "ADD":
				extra, ok = d.copyInputs(s, fields[1:], in, out)
			case "RUN":
				extra, ok = runInputs(fields[1:], in)
			case "ARG", "SHELL", "ONBUILD", "HEALTHCHECK":
				ok = false
			}
			if !ok || parent == "" {
				break
			}
			text := inst.text
			if inst.keyword == "FROM" {
				// Without its AS: two stages on one base share a prefix,
				// as podman's layers do.
				if i := slices.IndexFunc(fields, func(f string) bool { return strings.EqualFold(f, "AS") }); i > 0 {
					text = strings.Join(fields[:i], " ")
				}
			}
			h := sha256.New()
			fmt.Fprintf(h, "%s\n%s\n%s\n", parent, text, extra)
			parent = hex.EncodeToString(h.Sum(nil))
			out[s][i] = parent
		}
	}
	return out
}

// copyInputs identifies what a COPY or ADD copies: the key of the stage it
// copies from, or the contents of the context files its sources match.
func (d *dockerfileStages) copyInputs(stage int, args []string, in stepKeyInputs, keys [][]string) (string, bool) {
	var srcs []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--from="); ok {
			from := d.stageIndex(v, stage)
			if from < 0 || len(keys[from]) == 0 || keys[from][len(keys[from])-1] == "" {
				return "", false // an image, a later stage, or a stage without a key
			}
			return "stage " + keys[from][len(keys[from])-1], true
		}
		if !strings.HasPrefix(a, "--") {
			srcs = append(srcs, a)
		}
	}
	if len(srcs) < 2 || strings.HasPrefix(srcs[0], "[") {
		return "", false // JSON form, or no destination
	}
	h := sha256.New()
	for _, src := range srcs[:len(srcs)-1] {
		if strings.Contains(src, "://") || strings.Contains(src, "$") {
			return "", false
		}
		pattern := strings.Trim(path.Clean("/"+src), "/")
		depth := strings.Count(pattern, "/") + 1
		fmt.Fprintf(h, "source %q\n", src)
		for _, e := range in.entries {
			if pattern != "" {
				parts := strings.SplitN(e.rel, "/", depth+1)
				if len(parts) < depth {
					continue
				}
				if ok, err := path.Match(pattern, strings.Join(parts[:depth], "/")); err != nil {
					return "", false
				} else if !ok {
					continue
				}
			}
			h.Write([]byte(e.line))
		}
	}
	return hex.EncodeToString(h.Sum(nil)), true
}

// runInputs identifies what a RUN reads besides its parent: secrets. A
// bind mount (of the context, a stage or an image) or a cache mount from a
// stage is not pinned down.
func runInputs(args []string, in stepKeyInputs) (string, bool) {
	extra := ""
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			break
		}
		spec, ok := strings.CutPrefix(a, "--mount=")
		if !ok {
			continue
		}
		typ := "bind"
		from := false
		for _, part := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(part, "=")
			switch k {
			case "type":
				typ = v
			case "from":
				from = true
			}
		}
		switch {
		case typ == "bind" || from:
			return "", false
		case typ == "secret":
			for _, k := range slices.Sorted(maps.Keys(in.secretDigests)) {
				extra += fmt.Sprintf("secret %q %s\n", k, in.secretDigests[k])
			}
		}
	}
	return extra, true
}

// stepRecord is the image a step key produced.
type stepRecord struct {
	Image string    `json:"image"`
	Used  time.Time `json:"used"`
}

// maxStepRecords bounds the record; the least recently used go first.
const maxStepRecords = 2000

func (l Layout) stepsFile() string { return filepath.Join(l.Root, "steps.json") }

func (a *Activities) loadSteps() map[string]stepRecord {
	recs := map[string]stepRecord{}
	if b, err := os.ReadFile(a.layout.stepsFile()); err == nil {
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
			continue // a FROM (its image is its base's), or not the steps we parsed
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
		err = atomicfile.Write(a.layout.stepsFile(), b, 0o644)
	}
	if err != nil {
		a.cfg.Logger.Warn("record build steps", "error", err)
	}
}

// forgetSteps drops the step records (their images are gone), on the
// volume and in the running build's plan p, if any.
func (a *Activities) forgetSteps(p *stepPlan) {
	_ = os.Remove(a.layout.stepsFile())
	if p != nil {
		clear(p.recs)
	}
}

// originalSteps maps the steps podman ran from the rewritten Dockerfile
// back to the Dockerfile as written: a cut stage's prefix shows as cached
// steps that took no time (the last one carries the time of the FROM that
// replaced them), the steps after it get their numbers back, a stage cut
// whole, which podman does not show, is all cached steps, and the final
// stage's last tail steps, left to the registry (configTail), come last:
// not cached, no time.
func (d *dockerfileStages) originalSteps(cut []int, images []string, tail int, ran []buildah.Step) []buildah.Step {
	multi := len(d.stages) > 1
	step := func(s, i int) buildah.Step {
		st := buildah.Step{N: i + 1, Total: len(d.stages[s].insts), Instruction: d.stages[s].insts[i].text, Cached: i > 0}
		if multi {
			st.Stage, st.Stages = s+1, len(d.stages)
		}
		if i == cut[s] {
			st.Image = images[s]
		}
		return st
	}
	var out []buildah.Step
	seen := map[int]bool{}
	last := len(d.stages) - 1
	for _, r := range ran {
		s := max(r.Stage-1, 0)
		if s == last {
			r.Total += tail
		}
		if s >= len(d.stages) || cut[s] == 0 {
			out = append(out, r)
			continue
		}
		if !seen[s] {
			seen[s] = true
			for i := range cut[s] {
				out = append(out, step(s, i))
			}
		}
		r.N += cut[s]
		r.Total += cut[s]
		if r.N == cut[s]+1 {
			o := step(s, cut[s])
			o.Duration = r.Duration
			r = o
		}
		out = append(out, r)
	}
	for s := range d.stages {
		if cut[s] > 0 && !seen[s] && cut[s] == len(d.stages[s].insts)-1 {
			for i := range d.stages[s].insts {
				out = append(out, step(s, i))
			}
		}
	}
	for i := len(d.stages[last].insts) - tail; i < len(d.stages[last].insts); i++ {
		st := step(last, i)
		st.Cached = false
		out = append(out, st)
	}
	return out
}

// cutPlan finds, for every stage, the longest prefix of steps with a
// recorded image: cut[s] is the number of steps the rewritten Dockerfile
// replaces with a FROM of images[s] (0: the stage runs as written). The
// final stage's last tail steps are not built (configTail): its prefix
// ends before them.
func cutPlan(keys [][]string, recs map[string]stepRecord, tail int) (cut []int, images []string) {
	cut = make([]int, len(keys))
	images = make([]string, len(keys))
	for s, ks := range keys {
		end := len(ks) - 1
		if s == len(keys)-1 {
			end -= tail
		}
		for i := end; i >= 1; i-- {
			if r, ok := recs[ks[i]]; ok && ks[i] != "" && r.Image != "" {
				cut[s], images[s] = i, r.Image
				break
			}
		}
	}
	return cut, images
}

// rewrite writes the Dockerfile with each cut stage starting FROM the
// recorded image of its prefix: stage s keeps its instructions after
// index cut[s], the final stage all but its last tail.
func (d *dockerfileStages) rewrite(w io.Writer, cut []int, images []string, tail int) {
	for _, l := range d.head {
		fmt.Fprintln(w, l)
	}
	for s, st := range d.stages {
		start := 0
		if cut[s] > 0 {
			from := "FROM " + images[s]
			if st.name != "" {
				from += " AS " + st.name
			}
			fmt.Fprintln(w, from)
			start = cut[s] + 1
		}
		end := len(st.insts)
		if s == len(d.stages)-1 {
			end -= tail
		}
		for _, inst := range st.insts[start:end] {
			for _, l := range inst.raw {
				fmt.Fprintln(w, l)
			}
		}
	}
}

// stepPlan is how a build uses the step records. A nil plan builds the
// Dockerfile as written.
type stepPlan struct {
	d      *dockerfileStages
	keys   [][]string
	cut    []int
	images []string
	recs   map[string]stepRecord // the records the plan was made from
	// tail are the final stage's last instructions, applied to the
	// image's config in the registry instead of built (configTail).
	tail []string
	dir  string // holds the rewritten Dockerfile
	file string // the rewritten Dockerfile; "" when the Dockerfile is built as written
}

// planSteps computes the build's step keys and, when some stage can start
// from a recorded image, writes the rewritten Dockerfile. It returns nil
// when the Dockerfile's steps cannot be keyed.
func (a *Activities) planSteps(dockerfile string, d *dockerfileStages, inputs buildInputs, secretDigests map[string]string) *stepPlan {
	if d == nil {
		return nil
	}
	p := &stepPlan{d: d, keys: d.keys(stepKeyInputs{entries: inputs.entries, digests: inputs.digests, secretDigests: secretDigests})}
	p.recs = a.loadSteps()
	p.tail = d.configTail()
	p.cut, p.images = cutPlan(p.keys, p.recs, len(p.tail))
	if len(p.tail) == 0 && !slices.ContainsFunc(p.cut, func(n int) bool { return n > 0 }) {
		return p
	}
	dir, err := os.MkdirTemp(a.layout.Work, "dockerfile-")
	if err == nil {
		var b bytes.Buffer
		d.rewrite(&b, p.cut, p.images, len(p.tail))
		p.dir, p.file = dir, filepath.Join(dir, "Dockerfile")
		err = os.WriteFile(p.file, b.Bytes(), 0o644)
	}
	if ignore, rerr := os.ReadFile(dockerfile + ".dockerignore"); err == nil && rerr == nil {
		// podman reads the ignore file beside the Dockerfile first.
		err = os.WriteFile(p.file+".dockerignore", ignore, 0o644)
	}
	if err != nil {
		a.cfg.Logger.Warn("write the rewritten Dockerfile", "error", err)
		p.remove()
		p.drop()
	}
	return p
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
		name := p.d.stages[s].name
		if name == "" {
			name = fmt.Sprintf("stage %d", s+1)
		}
		steps := fmt.Sprintf("steps 2-%d", n+1)
		if n == 1 {
			steps = "step 2"
		}
		if len(p.d.stages) > 1 {
			steps = name + " " + steps
		}
		parts = append(parts, fmt.Sprintf("%s (image %s)", steps, shortID(p.images[s])))
	}
	var out []string
	if total > 0 {
		out = append(out, fmt.Sprintf("reusing the images of %d unchanged step(s) of earlier builds, without podman's cache checks: %s", total, strings.Join(parts, "; ")))
	}
	if len(p.tail) > 0 {
		out = append(out, fmt.Sprintf("the last %d step(s) change only the image's config (%s): applied in the registry at push, not built", len(p.tail), strings.Join(p.tail, "; ")))
	}
	return out
}

// mapStep numbers a step of the rewritten Dockerfile as the Dockerfile is
// written. The FROM that replaced a stage's prefix stands for the
// prefix's last step, shown with the recorded image it starts from.
func (p *stepPlan) mapStep(s buildah.Step) buildah.Step {
	if !p.cutting() {
		return s
	}
	st := max(s.Stage-1, 0)
	if st >= len(p.cut) || (s.Stages == 0) != (len(p.cut) == 1) {
		return s
	}
	if st == len(p.cut)-1 {
		s.Total += len(p.tail)
	}
	if p.cut[st] == 0 {
		return s
	}
	if s.N == 1 {
		s.Instruction = p.d.stages[st].insts[p.cut[st]].text + " (unchanged: image " + shortID(p.images[st]) + ")"
	}
	s.N += p.cut[st]
	s.Total += p.cut[st]
	return s
}

// mapHeader renumbers a step header line of podman's output (mapStep);
// other lines pass unchanged.
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

// headers passes podman's output to w, one line per Write, with the step
// headers renumbered (mapHeader): the build's log then numbers its steps
// as the Dockerfile does, as do the deployment's steps and its progress.
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

// progress maps a step podman reports to the Dockerfile as written, and
// counts the steps the records served as cached.
func (p *stepPlan) progress(s buildah.Step, cached int) (buildah.Step, int) {
	if !p.cutting() {
		return s, cached
	}
	for _, n := range p.cut {
		cached += n
	}
	return p.mapStep(s), cached
}

// originalSteps: see dockerfileStages.originalSteps.
func (p *stepPlan) originalSteps(ran []buildah.Step) []buildah.Step {
	if !p.cutting() {
		return ran
	}
	return p.d.originalSteps(p.cut, p.images, len(p.tail), ran)
}

// config is what Push applies to the image's config in the registry: the
// instructions the rewritten Dockerfile left out.
func (p *stepPlan) config() []string {
	if !p.cutting() {
		return nil
	}
	return p.tail
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
	p.tail = nil
	clear(p.cut)
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
