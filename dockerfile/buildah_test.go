package dockerfile_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/openshift/imagebuilder"

	"github.com/slipway-ci/slipway/dockerfile"
)

// buildahVersion is the builder Slipway runs (tools/buildah), whose reading
// of a Dockerfile dockerfile.Parse must reproduce.
const buildahVersion = "1.42.1"

// corpusBuildArgs are the build arguments a corpus Dockerfile needs to name
// its base image (its CI passes them; without them buildah has no FROM).
var corpusBuildArgs = map[string]map[string]string{
	"10-home-assistant-core-uv-pip.Dockerfile": {"BUILD_FROM": "ghcr.io/home-assistant/amd64-homeassistant-base:2025.05.0"},
}

// corpusBaseEnv is environment a corpus Dockerfile takes from its real base
// image (here: the variable its USER names), set on its fake base.
var corpusBaseEnv = map[string][]string{
	"14-dotnet-dotnet-docker-aspnetapp.Dockerfile": {"APP_UID=1654"},
}

// TestCorpusAgainstBuildah proves, for every Dockerfile in the corpus, that
// dockerfile.Parse reads it as the builder does: it builds each one with the
// real buildah at debug level and compares, step by step, what buildah logs
// with the parse:
//
//   - "Parsed Step: %+v", the step right after Resolve (instruction,
//     expanded arguments, flags, environment, heredocs), with
//     fmt.Sprintf("%+v", Step.Resolved);
//   - the "[i/N] STEP n/m: ..." header with Step.Header(), and N and m with
//     the number of stages and steps;
//   - "RUN %#v, %#v", the imagebuilder.Run (command, mounts as buildah
//     receives them, network, heredoc files) and the config it runs with,
//     with Step.Runs and Step.Config (Step.Env as its environment);
//   - "COPY %#v, %#v" / "ADD ...", the excludes and each imagebuilder.Copy
//     (sources, --from, --chown, --chmod, --link, heredoc files), with
//     Step.Copies.
//
// The base images are fakes (see fakeBase) in a throwaway storage, whose
// every program exits 0, so that each RUN succeeds at once; the build
// context holds every path the Dockerfile copies or mounts (see
// newContext). A step counts as compared when its header and parsed step
// were; the test fails on any difference and when fewer than 90% of the
// corpus' steps were compared.
//
// Two files do not build through, whatever the inputs: buildah refuses a
// bind mount with no target, which BuildKit takes. 04's
// "RUN --mount=from=binaries" fails with "invalid --mount command", and so
// does 05's, whose "--mount=from=containerd-src,src=/usr/src/containerd,
// readwrite" fails with "must set volume destination". Their steps up to
// there are compared, and each stage buildah did not get to is then built
// on its own (--target) unless it needs a stage that failed: the steps of
// those (2 of 04's 75, 26 of 05's 159) are never compared.
//
// SLIPWAY_BUILDAH sets the buildah binary; SLIPWAY_BUILDAH_LOGS, a
// directory, keeps buildah's output of every build there (<file>.0.log
// for the whole build, <file>.<n>.log for the build of stage n alone).
func TestCorpusAgainstBuildah(t *testing.T) {
	bh := newBuildah(t)
	files, err := filepath.Glob("testdata/corpus/*.Dockerfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	var (
		mu      sync.Mutex
		results []corpusResult
	)
	t.Run("corpus", func(t *testing.T) {
		for _, file := range files {
			name := filepath.Base(file)
			t.Run(strings.TrimSuffix(name, ".Dockerfile"), func(t *testing.T) {
				t.Parallel()
				r := bh.check(t, file)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			})
		}
	})
	slices.SortFunc(results, func(a, b corpusResult) int { return strings.Compare(a.name, b.name) })
	var steps, compared int
	for _, r := range results {
		steps += r.steps
		compared += r.compared
		t.Logf("%s: steps compared %d of %d (RUN %d of %d, COPY/ADD %d of %d)%s", r.name, r.compared, r.steps, r.runsCompared, r.runs, r.copiesCompared, r.copies, r.note)
	}
	t.Logf("corpus: steps compared %d of %d", compared, steps)
	if len(results) < len(files) {
		return // some were not run (-run) or failed
	}
	if compared*10 < steps*9 {
		t.Errorf("only %d of %d corpus steps were compared with buildah (want at least 90%%): the fake bases or the context lack what a build needs", compared, steps)
	}
}

// corpusResult is how much of one Dockerfile was compared with buildah.
type corpusResult struct {
	name                   string
	steps, compared        int
	runs, runsCompared     int
	copies, copiesCompared int
	note                   string // why buildah stopped early, if it did
}

// check builds one corpus Dockerfile with buildah and compares its log with
// the parse. When buildah stops at a step it refuses, the stages it did not
// get to are built on their own (--target) where they do not need the stage
// that failed.
func (bh *buildah) check(t *testing.T, file string) corpusResult {
	name := filepath.Base(file)
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	opts := dockerfile.Options{BuildArgs: corpusBuildArgs[name]}
	// A first reading says what the fake bases and the context must hold;
	// the reading compared is the one with the fake bases' config.
	first, err := dockerfile.Parse(src, opts)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	n := needsOf(first)
	st := bh.newStorage(t)
	cfg := st.fakeBase(t, n, corpusBaseEnv[name])
	// buildah hands imagebuilder a base's config with empty, not nil,
	// port and volume sets (StageExecutor.prepare).
	if cfg.ExposedPorts == nil {
		cfg.ExposedPorts = map[docker.Port]struct{}{}
	}
	if cfg.Volumes == nil {
		cfg.Volumes = map[string]struct{}{}
	}
	opts.BaseConfig = func(string) *docker.Config { c := cfg; return &c }
	f, err := dockerfile.Parse(src, opts)
	if err != nil {
		t.Fatalf("Parse with the fake bases' config: %v", err)
	}
	ctxDir := newContext(t, n)
	c := newComparison(f)
	failed, tried := map[int]bool{}, map[int]bool{}
	var notes []string
	target := -1 // the whole build first
	for {
		var targetName string
		if target >= 0 {
			// buildah names an unnamed stage by its number.
			targetName = f.Stages[target].Name
			if targetName == "" {
				targetName = strconv.Itoa(target)
			}
		}
		out, buildErr := st.build(t, file, ctxDir, opts.BuildArgs, targetName)
		if dir := os.Getenv("SLIPWAY_BUILDAH_LOGS"); dir != "" {
			// Keep buildah's output to read what it did.
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s.%d.log", name, target+1)), out, 0o644); err != nil {
				t.Error(err)
			}
		}
		logged, err := parseBuildahLog(out)
		if err != nil {
			t.Fatalf("reading buildah's output: %v", err)
		}
		stages := len(f.Stages)
		if target >= 0 {
			stages = target + 1
		}
		c.run(t, logged, stages, buildErr == nil)
		if buildErr != nil {
			failed[logged.last.stage] = true
			notes = append(notes, fmt.Sprintf("stage %d: %s", logged.last.stage+1, buildahError(out)))
			what := "buildah"
			if target >= 0 {
				what = fmt.Sprintf("buildah --target %s", targetName)
			}
			t.Logf("%s: %v\n%s", what, buildErr, tail(out, 10))
		}
		if target = c.nextTarget(failed, tried); target < 0 {
			break
		}
		tried[target] = true
	}
	res := c.result(name)
	if len(notes) > 0 {
		res.note = "; buildah stopped at " + strings.Join(notes, "; ")
	}
	return res
}

// comparison is one Dockerfile's parse compared with what buildah logged
// in one or more builds.
type comparison struct {
	f        *dockerfile.File
	compared map[stepKey]bool
	// logged are the RUN/COPY/ADD messages of the parse that buildah
	// logged, by step and position.
	logged map[stepKey][]bool
}

func newComparison(f *dockerfile.File) *comparison {
	return &comparison{f: f, compared: map[stepKey]bool{}, logged: map[stepKey][]bool{}}
}

// run compares the steps one build of buildah got to with the parse.
// stages is the number of stages the build has (those through its
// target); complete is whether it went through.
func (c *comparison) run(t *testing.T, logged *buildahLog, stages int, complete bool) {
	t.Helper()
	f := c.f
	ops := newOpMatcher()
	for si, st := range f.Stages {
		for sj, s := range st.Steps {
			key := stepKey{si, sj}
			where := fmt.Sprintf("stage %d step %d (line %d)", si+1, sj+1, s.StartLine)
			l := logged.steps[key]
			if l == nil {
				ops.expect(key, where, false, runLogs(s, s.Resolved.Env), copyLogs(s))
				continue
			}
			if l.ofStages != stages && (l.ofStages != 0 || stages > 1) {
				t.Errorf("%s: buildah counts %d stages, the parse %d", where, l.ofStages, stages)
			}
			// buildah counts the base's ONBUILD triggers from the step after
			// the FROM on.
			if want := len(st.Steps) - triggers(st); sj > 0 && l.ofSteps != len(st.Steps) || sj == 0 && l.ofSteps != want {
				t.Errorf("%s: buildah counts %d steps in the stage, the parse %d (%d triggers)", where, l.ofSteps, len(st.Steps), triggers(st))
			}
			header := l.header
			if sj == 0 && st.BaseStage >= 0 {
				// buildah may name the image it built for the earlier stage.
				header = imageIDInFrom.ReplaceAllString(header, "${1}"+st.Base)
			}
			if header != s.Header() {
				t.Errorf("%s: header\nbuildah: %q\nparse:   %q", where, header, s.Header())
			}
			env := s.Resolved.Env
			if sj > 0 {
				// The build arguments lead the step's environment in the
				// order of a Go map: take buildah's order if it differs
				// from the parse's in that only.
				env = buildahEnvOrder(l.parsed, env, len(st.Steps[sj-1].ArgsInScope))
				resolved := s.Resolved
				resolved.Env = env
				if want := fmt.Sprintf("%+v", resolved); l.parsed != want {
					t.Errorf("%s: parsed step\nbuildah: %s\nparse:   %s", where, l.parsed, want)
				}
			}
			c.compared[key] = true
			ops.expect(key, where, true, runLogs(s, env), copyLogs(s))
		}
	}
	for k, l := range logged.steps {
		if k.stage >= len(f.Stages) || k.step >= len(f.Stages[k.stage].Steps) {
			t.Errorf("buildah ran stage %d step %d, which the parse does not have: %q", k.stage+1, k.step+1, l.header)
		}
	}
	for _, op := range logged.ops {
		if !ops.match(op) {
			t.Errorf("buildah logged, after the header of stage %d step %d, an operation no step of the parse has:\nbuildah: %q\nthat step in the parse: %q", op.after.stage+1, op.after.step+1, op.msg, ops.want[op.after])
		}
	}
	for key, done := range ops.done {
		if c.logged[key] == nil {
			c.logged[key] = make([]bool, len(done))
		}
		for i, d := range done {
			c.logged[key][i] = c.logged[key][i] || d
		}
	}
	if !complete {
		return
	}
	// buildah evaluates every COPY and ADD of the steps it got to, and
	// every RUN but those its layer cache has.
	for _, m := range ops.missed() {
		if strings.HasPrefix(m.msg, "RUN ") && logged.cacheHits > 0 {
			continue
		}
		t.Errorf("%s: buildah did not log %q", m.where, m.msg)
	}
}

// nextTarget is the stage to build on its own next: the last stage no
// build got to that needs no stage a build failed in, and was not tried
// (-1 when there is none). Building the later stages first builds the
// earlier ones they need on the way.
func (c *comparison) nextTarget(failed, tried map[int]bool) int {
	needs := stageNeeds(c.f)
	var blocked func(i int) bool
	blocked = func(i int) bool {
		if failed[i] {
			return true
		}
		for _, j := range needs[i] {
			if blocked(j) {
				return true
			}
		}
		return false
	}
	for i := len(c.f.Stages) - 1; i >= 0; i-- {
		if !c.compared[stepKey{i, 0}] && !tried[i] && !blocked(i) {
			return i
		}
	}
	return -1
}

// stageNeeds lists, for each stage, the earlier stages it needs: its base,
// and those it copies or mounts from.
func stageNeeds(f *dockerfile.File) [][]int {
	needs := make([][]int, len(f.Stages))
	for i, st := range f.Stages {
		add := func(ref string) {
			if j := f.StageIndex(ref, i); j >= 0 {
				needs[i] = append(needs[i], j)
			}
		}
		if st.BaseStage >= 0 {
			needs[i] = append(needs[i], st.BaseStage)
		}
		for _, s := range st.Steps {
			for _, cp := range s.Copies {
				if cp.From != "" {
					add(cp.From)
				}
			}
			for _, r := range s.Runs {
				for _, m := range r.Mounts {
					if from := mountOptions(m)["from"]; from != "" {
						add(from)
					}
				}
			}
		}
	}
	return needs
}

// result counts what was compared.
func (c *comparison) result(name string) corpusResult {
	res := corpusResult{name: name, compared: len(c.compared)}
	for si, st := range c.f.Stages {
		for sj, s := range st.Steps {
			res.steps++
			key := stepKey{si, sj}
			for i, msg := range append(runLogs(s, nil), copyLogs(s)...) {
				logged := i < len(c.logged[key]) && c.logged[key][i]
				if strings.HasPrefix(msg, "RUN ") {
					res.runs++
					if logged {
						res.runsCompared++
					}
				} else {
					res.copies++
					if logged {
						res.copiesCompared++
					}
				}
			}
		}
	}
	return res
}

func triggers(st *dockerfile.Stage) int {
	n := 0
	for _, s := range st.Steps {
		if s.Trigger {
			n++
		}
	}
	return n
}

// buildahEnvOrder returns env in the order buildah's "Parsed Step" message
// lists it, provided that order differs from env's only among the first k
// entries (the build arguments); else env.
func buildahEnvOrder(msg string, env []string, k int) []string {
	rest, ok := strings.CutPrefix(msg, "{Env:[")
	if !ok {
		return env
	}
	order := make([]string, 0, len(env))
	used := make([]bool, len(env))
	for i := range env {
		sep := " "
		if i == len(env)-1 {
			sep = "] "
		}
		next := -1
		for j, e := range env {
			if !used[j] && (j == i || i < k && j < k) && strings.HasPrefix(rest, e+sep) {
				next = j
				break
			}
		}
		if next < 0 {
			return env
		}
		used[next] = true
		order = append(order, env[next])
		rest = rest[len(env[next])+len(sep):]
	}
	return order
}

// opMatcher pairs the RUN, COPY and ADD messages buildah logs with the
// steps they belong to. buildah builds a stage while another waits for it
// (a COPY --from or a mount from= an unfinished stage), so a message does
// not always follow its own step's header: it is matched by content,
// preferring the step whose header it follows.
type opMatcher struct {
	want    map[stepKey][]string
	where   map[stepKey]string
	done    map[stepKey][]bool
	reached map[stepKey]bool
	order   []stepKey
}

// expectedOp is a message the parse expects buildah to log.
type expectedOp struct{ where, msg string }

func newOpMatcher() *opMatcher {
	return &opMatcher{want: map[stepKey][]string{}, where: map[stepKey]string{}, done: map[stepKey][]bool{}, reached: map[stepKey]bool{}}
}

// expect adds a step's messages; reached is whether buildah got to the
// step.
func (m *opMatcher) expect(key stepKey, where string, reached bool, msgs ...[]string) {
	for _, l := range msgs {
		m.want[key] = append(m.want[key], l...)
	}
	m.where[key] = where
	m.reached[key] = reached
	m.done[key] = make([]bool, len(m.want[key]))
	m.order = append(m.order, key)
}

// match marks a message equal to op's as logged: one of op.after if it has
// one, else the first of a step buildah got to, else the first of any step.
func (m *opMatcher) match(op loggedOp) bool {
	keys := []stepKey{op.after}
	for _, reached := range []bool{true, false} {
		for _, key := range m.order {
			if m.reached[key] == reached {
				keys = append(keys, key)
			}
		}
	}
	for _, key := range keys {
		for i, w := range m.want[key] {
			if !m.done[key][i] && w == op.msg {
				m.done[key][i] = true
				return true
			}
		}
	}
	return false
}

// missed are the messages of the steps buildah got to that it did not log.
func (m *opMatcher) missed() []expectedOp {
	var missed []expectedOp
	for _, key := range m.order {
		if !m.reached[key] {
			continue
		}
		for i, w := range m.want[key] {
			if !m.done[key][i] {
				missed = append(missed, expectedOp{m.where[key], w})
			}
		}
	}
	return missed
}

var (
	// imageIDInFrom is the image ID in buildah's header for a FROM of an
	// earlier stage.
	imageIDInFrom = regexp.MustCompile(`^(FROM (?:--platform=\S+ )?)[0-9a-f]{64}\b`)
	// heredocTempDir is the temporary directory buildah writes a COPY
	// heredoc to, in the copy's sources.
	heredocTempDir = regexp.MustCompile(`buildah-heredoc[0-9]+/`)
	// healthcheckPointer is where %#v prints a pointer's address.
	healthcheckPointer = regexp.MustCompile(`\(\*docker\.HealthConfig\)\(0x[0-9a-f]+\)`)
)

// runLogs are the messages buildah logs for the step's RUNs
// (StageExecutor.Run: "RUN %#v, %#v" of the run and the config it runs
// with, which imagebuilder's Builder.Run makes of the run config and the
// step's environment env).
func runLogs(s *dockerfile.Step, env []string) []string {
	var logs []string
	for _, r := range s.Runs {
		cfg := s.Config
		cfg.Env = env
		logs = append(logs, maskPointers(fmt.Sprintf("RUN %#v, %#v", r, cfg)))
	}
	return logs
}

func maskPointers(s string) string {
	return healthcheckPointer.ReplaceAllString(s, "(*docker.HealthConfig)(ptr)")
}

// copyLogs are the messages buildah logs for the step's COPY/ADD operations
// (StageExecutor.performCopy: "COPY %#v, %#v" of the excludes and the copy),
// after the changes performCopy makes first: a heredoc's source becomes the
// temporary file buildah writes it to, and the context sources of a copy
// that has heredocs too go in a copy of their own, logged after the others.
func copyLogs(s *dockerfile.Step) []string {
	var excludes []string
	for _, c := range s.Copies {
		if len(c.Excludes) > 0 {
			excludes = append(slices.Clone(excludes), c.Excludes...)
		}
	}
	var logs, extra []string
	log := func(c imagebuilder.Copy) string {
		verb := "COPY"
		if c.Download {
			verb = "ADD"
		}
		return fmt.Sprintf("%s %#v, %#v", verb, excludes, c)
	}
	for _, c := range s.Copies {
		if len(c.Files) > 0 {
			var regular []string
			for _, src := range c.Src {
				if !strings.HasPrefix(src, "<<") {
					regular = append(regular, src)
				}
			}
			if len(c.Src) > len(c.Files) {
				e := c
				e.Files, e.Src = nil, regular
				extra = append(extra, log(e))
			}
			var tmp []string
			for _, file := range c.Files {
				tmp = append(tmp, "buildah-heredoc*/"+path.Base(filepath.ToSlash(file.Name)))
			}
			c.Src = tmp
		}
		logs = append(logs, log(c))
	}
	return append(logs, extra...)
}

// stepKey is a step's place: stage and step, from 0.
type stepKey struct{ stage, step int }

// buildahLog is what buildah printed about the steps of a build.
type buildahLog struct {
	steps map[stepKey]*loggedStep
	// ops are the RUN, COPY and ADD messages, in order.
	ops []loggedOp
	// cacheHits counts the steps buildah took from its layer cache.
	cacheHits int
	// last is the step whose header came last.
	last stepKey
}

// loggedStep is what buildah printed about one step.
type loggedStep struct {
	header   string // the text after "STEP n/m: "
	ofStages int    // N in "[i/N]"; 0 for a build of one stage
	ofSteps  int    // m in "STEP n/m"
	parsed   string // the "Parsed Step: " message (none for a FROM)
}

// loggedOp is a RUN, COPY or ADD message and the step whose header came
// last before it.
type loggedOp struct {
	msg   string
	after stepKey
}

var stepHeader = regexp.MustCompile(`^(?:\[([0-9]+)/([0-9]+)\] )?STEP ([0-9]+)(?:/([0-9]+))?: (.*)$`)

// parseBuildahLog reads buildah's output (stdout and stderr in one stream,
// in the order buildah wrote them): each step's header on stdout, with the
// "Parsed Step" debug message just before it; the RUN, COPY and ADD
// messages after it.
func parseBuildahLog(out []byte) (*buildahLog, error) {
	logged := &buildahLog{steps: map[stepKey]*loggedStep{}}
	var cur stepKey
	var pending string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := stepHeader.FindStringSubmatch(line); m != nil {
			stage, ofStages := 0, 0
			if m[1] != "" {
				stage, _ = strconv.Atoi(m[1])
				stage--
				ofStages, _ = strconv.Atoi(m[2])
			}
			step, _ := strconv.Atoi(m[3])
			ofSteps, _ := strconv.Atoi(m[4])
			cur = stepKey{stage, step - 1}
			if logged.steps[cur] != nil {
				return nil, fmt.Errorf("two headers for stage %d step %d", stage+1, step)
			}
			logged.steps[cur] = &loggedStep{header: m[5], ofStages: ofStages, ofSteps: ofSteps, parsed: pending}
			pending = ""
			continue
		}
		msg, ok, err := debugMessage(line)
		if err != nil {
			return nil, err
		}
		switch {
		case !ok:
		case strings.HasPrefix(msg, "Parsed Step: "):
			pending = strings.TrimPrefix(msg, "Parsed Step: ")
		case strings.HasPrefix(msg, "RUN imagebuilder.Run{"):
			logged.ops = append(logged.ops, loggedOp{maskPointers(msg), cur})
		case strings.HasPrefix(msg, "COPY []string"), strings.HasPrefix(msg, "ADD []string"):
			logged.ops = append(logged.ops, loggedOp{heredocTempDir.ReplaceAllString(msg, "buildah-heredoc*/"), cur})
		case strings.HasPrefix(msg, "Found a cache hit"):
			logged.cacheHits++
		}
	}
	logged.last = cur
	return logged, sc.Err()
}

// debugMessage returns the message of a logrus debug line
// (`time="..." level=debug msg="..."`), unquoted.
func debugMessage(line string) (string, bool, error) {
	_, rest, ok := strings.Cut(line, " level=debug msg=")
	if !ok {
		return "", false, nil
	}
	if !strings.HasPrefix(rest, `"`) {
		return rest, true, nil
	}
	msg, err := strconv.Unquote(rest)
	if err != nil {
		return "", false, fmt.Errorf("unquoting %.200s: %w", rest, err)
	}
	return msg, true, nil
}

// buildahError is the error buildah ended with.
func buildahError(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "Error: ") {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

// tail is the last n lines of buildah's output that are not debug lines.
func tail(out []byte, n int) string {
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.Contains(l, " level=debug ") {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}
