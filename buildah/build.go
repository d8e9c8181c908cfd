package buildah

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// BuildOptions describes one image build.
type BuildOptions struct {
	// ContextDir is the build context directory.
	ContextDir string
	// Dockerfile is the Dockerfile's path; a relative path is taken
	// relative to ContextDir. Default: ContextDir/Dockerfile.
	Dockerfile string
	// IgnoreFile is the ignore file (.dockerignore) the build uses; empty
	// lets the builder look for one.
	IgnoreFile string
	// Tag is the image reference to tag the result with, e.g.
	// "127.0.0.1:5000/app:<sha>". It must name a tag other than "latest".
	// Empty means untagged.
	Tag string
	// Labels are set on the image (--label k=v).
	Labels map[string]string
	// BuildArgs are passed as --build-arg k=v.
	BuildArgs map[string]string
	// Secrets maps a secret id to the file holding its value; a RUN step
	// reads it with --mount=type=secret,id=ID (at /run/secrets/ID). Secrets
	// never end up in a layer.
	Secrets map[string]string
	// TLSVerify requires HTTPS and verified certificates for registries
	// the build pulls from.
	TLSVerify bool
	// Format is the image format, "oci" (default) or "docker".
	Format string
	// Stdout and Stderr receive the builder's output line by line as it comes
	// (each Write is one line ending in "\n"). Either may be nil; they may
	// be the same writer.
	Stdout, Stderr io.Writer
	// Progress, if set, is called when a step starts and when the builder
	// reuses a cached layer for it, with that step and how many steps so
	// far the cache served. It is called from the goroutine reading
	// the builder's output: it must return quickly.
	Progress func(current Step, cached int)
}

// Step is one Dockerfile instruction as the builder ran it.
type Step struct {
	// Stage and Stages number the build stage ("[2/3]") of a multi-stage
	// build; both are 0 for a single-stage build.
	Stage, Stages int
	// N and Total number the step within its stage ("STEP 2/5").
	N, Total int
	// Instruction is the instruction as the builder prints it ("RUN make").
	Instruction string
	// Cached is true when the builder reused a cached layer.
	Cached bool
	// Image is the id of the image this step produced or reused, as
	// the builder printed it after the step ("--> 1f0e3dad9909", or the
	// full id of a cached layer); a short id is a unique prefix the
	// builder resolves. Empty when it printed none (a FROM step).
	Image string
	// Duration runs from this step's header to the next one (or the
	// commit, or the end of the build).
	Duration time.Duration
}

// String returns the step header as the builder prints it, e.g.
// "STEP 3/4: RUN make" or "[1/2] STEP 2/3: COPY . .".
func (s Step) String() string {
	h := fmt.Sprintf("STEP %d/%d: %s", s.N, s.Total, s.Instruction)
	if s.Stages > 0 {
		h = fmt.Sprintf("[%d/%d] %s", s.Stage, s.Stages, h)
	}
	return h
}

// BuildResult is what a successful build produced.
type BuildResult struct {
	// Steps are the steps in the order the builder ran them.
	Steps []Step
	// ImageID is the built image's id ("sha256:...").
	ImageID string
	// Duration is the wall time of the build command.
	Duration time.Duration
}

// BuildError is a build that the builder ran and that failed.
type BuildError struct {
	// Step is the header of the step that failed, e.g.
	// "STEP 3/4: RUN false"; empty when no step had started (a Dockerfile
	// syntax error, say).
	Step string
	// ExitCode is the failing RUN command's exit status when the builder
	// reports one, otherwise the builder's own exit status.
	ExitCode int
	// Message is the builder's error line ("Error: building at STEP ...").
	Message string
	// Tail holds the last output lines (stdout and stderr interleaved).
	Tail []string
}

func (e *BuildError) Error() string {
	var b strings.Builder
	b.WriteString("build failed")
	if e.Step != "" {
		b.WriteString(" at ")
		b.WriteString(e.Step)
	}
	fmt.Fprintf(&b, " (exit code %d)", e.ExitCode)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Message, "Error: "))
	}
	return b.String()
}

// tailLines is how many output lines a BuildError keeps.
const tailLines = 20

var (
	stepRe       = regexp.MustCompile(`^(?:\[(\d+)/(\d+)\] )?STEP (\d+)/(\d+): (.*)$`)
	exitStatusRe = regexp.MustCompile(`exit status (\d+)`)
)

// Build runs a build with the layer cache (--layers) and streams its
// output. A failed build returns a *BuildError; a cancelled one returns an
// error wrapping ctx.Err() after the build's process group was killed and
// its working containers removed (the cached layers stay usable), whatever
// the builder's exit status.
func (b *Builder) Build(ctx context.Context, opts BuildOptions) (*BuildResult, error) {
	dockerfile, format, err := opts.check()
	if err != nil {
		return nil, err
	}

	// Per-build scratch space: a private runc state root, so a cancelled
	// build's RUN containers can be found and removed without touching
	// anyone else's.
	tmp, err := os.MkdirTemp(b.cfg.TmpDir, "build-")
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	defer os.RemoveAll(tmp)
	runcRoot := filepath.Join(tmp, "runc")

	args, err := b.buildArgs(opts, dockerfile, format, runcRoot)
	if err != nil {
		return nil, err
	}
	cmd := b.Command(ctx, args...)
	// TMPDIR is where buildah keeps the contents of RUN --mount=type=cache
	// (buildah-cache-<uid>) and its container bundles: it must persist on
	// the volume, or every cache mount starts empty.
	cmd.Env = append(cmd.Env, "TMPDIR="+b.BuildTmpDir())
	killGroup := cmd.Cancel
	cmd.Cancel = func() error {
		err := killGroup()
		// The RUN process sits in its own session, out of reach of the
		// group kill, and holds our output pipes.
		b.removeRuncContainers(runcRoot)
		return err
	}

	parse := stepParser{progress: opts.Progress}
	t := newTail(tailLines)
	lw := newLineWriters(opts.Stdout, opts.Stderr, t)
	lw.stdout.onLine = parse.line
	var message string
	lw.stderr.onLine = func(s string) {
		if strings.HasPrefix(s, "Error: ") {
			message = s
		}
	}
	cmd.Stdout, cmd.Stderr = lw.stdout, lw.stderr

	start := time.Now()
	runErr := cmd.Run()
	lw.flush()
	parse.finish(time.Now())
	res := &BuildResult{Steps: parse.steps, Duration: time.Since(start)}

	if ctx.Err() != nil {
		// podman 4.3 exits 0 on SIGTERM; whatever the status, a cancelled
		// build is not a success.
		b.cleanupBuild(runcRoot, start)
		return nil, fmt.Errorf("build cancelled: %w", ctx.Err())
	}
	if runErr != nil {
		return nil, b.buildFailure(runErr, message, t.lines(), parse.steps)
	}
	// The image id is the build's last line. (With --iidfile buildah
	// 1.42 would print no step's image id: the step records need them.)
	if len(parse.last) != 64 || !isHexID(parse.last) {
		return nil, fmt.Errorf("build: no image id at the end of the output (last line %q)", parse.last)
	}
	res.ImageID = "sha256:" + parse.last
	if n := len(res.Steps); n > 0 && res.Steps[n-1].Image == "" {
		res.Steps[n-1].Image = parse.last
	}
	return res, nil
}

// buildFailure returns the error of a build whose process failed with
// runErr: a *BuildError if the builder ran and exited non-zero, its last
// "Error: " line message, its output's tail and the steps it began.
func (b *Builder) buildFailure(runErr error, message string, tail []string, steps []Step) error {
	var exitErr *exec.ExitError
	if !errors.As(runErr, &exitErr) {
		return fmt.Errorf("build: run %s: %w", b.cfg.Engine, runErr)
	}
	be := &BuildError{ExitCode: exitErr.ExitCode(), Message: message, Tail: tail}
	if m := exitStatusRe.FindStringSubmatch(message); m != nil {
		be.ExitCode, _ = strconv.Atoi(m[1])
	}
	if n := len(steps); n > 0 {
		be.Step = steps[n-1].String()
	}
	return be
}

// check checks opts, and returns the Dockerfile's path and the image
// format, defaults filled in.
func (opts BuildOptions) check() (dockerfile, format string, err error) {
	if opts.ContextDir == "" {
		return "", "", errors.New("build: ContextDir is required")
	}
	if fi, err := os.Stat(opts.ContextDir); err != nil || !fi.IsDir() {
		return "", "", fmt.Errorf("build: context %q is not a directory", opts.ContextDir)
	}
	if opts.Tag != "" {
		if err := checkTag(opts.Tag); err != nil {
			return "", "", err
		}
	}
	dockerfile = opts.Dockerfile
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(opts.ContextDir, dockerfile)
	}
	format = opts.Format
	if format == "" {
		format = "oci"
	}
	if format != "oci" && format != "docker" {
		return "", "", fmt.Errorf("build: unknown format %q", format)
	}
	return dockerfile, format, nil
}

// buildArgs returns the builder's command line for opts, the Dockerfile at
// dockerfile and a runc state root of its own.
func (b *Builder) buildArgs(opts BuildOptions, dockerfile, format, runcRoot string) ([]string, error) {
	args := []string{"build",
		"--layers",
		// A failed build's working containers go too (podman's default).
		"--force-rm",
		// A base image whose tag moved is pulled again (the default,
		// "missing", keeps building on the old one while Slipway keys
		// the steps by the digest the tag points to now).
		"--pull=newer",
		"--format", format,
		fmt.Sprintf("--tls-verify=%t", opts.TLSVerify),
		"--runtime-flag", "root=" + runcRoot,
		"-f", dockerfile,
	}
	if opts.IgnoreFile != "" {
		args = append(args, "--ignorefile", opts.IgnoreFile)
	}
	args = append(args, b.ulimits...)
	if b.cfg.Runtime != "" {
		args = append(args, "--runtime", b.cfg.Runtime)
	}
	if opts.Tag != "" {
		args = append(args, "-t", opts.Tag)
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Labels)) {
		args = append(args, "--label", k+"="+opts.Labels[k])
	}
	for _, k := range slices.Sorted(maps.Keys(opts.BuildArgs)) {
		args = append(args, "--build-arg", k+"="+opts.BuildArgs[k])
	}
	for _, id := range slices.Sorted(maps.Keys(opts.Secrets)) {
		if id == "" || strings.ContainsAny(id, ",=") {
			return nil, fmt.Errorf("build: invalid secret id %q", id)
		}
		args = append(args, "--secret", "id="+id+",src="+opts.Secrets[id])
	}
	args = append(args, "--", opts.ContextDir)

	return args, nil
}

// stepParser follows the build's stdout.
type stepParser struct {
	steps    []Step
	start    time.Time // of the open step
	open     bool
	cached   int
	progress func(Step, int)
	// last is the last line that is not empty: at the end of a
	// successful build, the image's id.
	last string
}

// report tells the progress callback about the last step.
func (sp *stepParser) report() {
	if sp.progress != nil {
		sp.progress(sp.steps[len(sp.steps)-1], sp.cached)
	}
}

func (sp *stepParser) line(s string) {
	now := time.Now()
	if t := strings.TrimSpace(s); t != "" {
		sp.last = t
	}
	switch {
	case strings.HasPrefix(s, "--> Using cache "):
		if sp.open && !sp.steps[len(sp.steps)-1].Cached {
			last := &sp.steps[len(sp.steps)-1]
			last.Cached = true
			last.Image = strings.TrimSpace(strings.TrimPrefix(s, "--> Using cache "))
			sp.cached++
			sp.report()
		}
	case strings.HasPrefix(s, "--> "):
		// The image of the step just run; after a COMMIT, of the stage's
		// last step.
		if n := len(sp.steps); n > 0 && sp.steps[n-1].Image == "" {
			if id := strings.TrimSpace(strings.TrimPrefix(s, "--> ")); isHexID(id) {
				sp.steps[n-1].Image = id
			}
		}
	case strings.HasPrefix(s, "COMMIT"):
		sp.finish(now)
	default:
		st, ok := ParseStepHeader(s)
		if !ok {
			return
		}
		sp.finish(now)
		sp.steps = append(sp.steps, st)
		sp.start, sp.open = now, true
		sp.report()
	}
}

// ParseStepHeader reads a step header a build prints
// ("[1/2] STEP 2/3: COPY . ."): the inverse of Step.String.
func ParseStepHeader(line string) (Step, bool) {
	m := stepRe.FindStringSubmatch(line)
	if m == nil {
		return Step{}, false
	}
	st := Step{Instruction: m[5]}
	st.Stage, _ = strconv.Atoi(m[1])
	st.Stages, _ = strconv.Atoi(m[2])
	st.N, _ = strconv.Atoi(m[3])
	st.Total, _ = strconv.Atoi(m[4])
	return st, true
}

// isHexID reports whether s looks like an image id or a prefix of one.
func isHexID(s string) bool {
	return len(s) >= 10 && len(s) <= 64 && strings.Trim(s, "0123456789abcdef") == ""
}

// finish closes the open step.
func (sp *stepParser) finish(now time.Time) {
	if sp.open {
		sp.steps[len(sp.steps)-1].Duration = now.Sub(sp.start)
		sp.open = false
	}
}

// cleanupBuild removes what a killed build leaves behind: its RUN
// containers (runc state under runcRoot) and the working containers of
// builds on this storage (buildah: all of them, which is this build's as
// long as one build runs at a time on a storage; podman: those created
// since start). It uses its own timeout: the build's context is already
// done.
func (b *Builder) cleanupBuild(runcRoot string, start time.Time) {
	b.removeRuncContainers(runcRoot)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b.cfg.Engine == EngineBuildah {
		_, _ = b.run(ctx, "rm", "--all")
		return
	}
	out, err := b.run(ctx, "ps", "--all", "--external", "--format", "json")
	if err != nil {
		return
	}
	var ctrs []struct {
		ID      string `json:"Id"`
		State   string `json:"State"`
		Created int64  `json:"Created"`
	}
	if json.Unmarshal([]byte(out), &ctrs) != nil {
		return
	}
	var ids []string
	for _, c := range ctrs {
		// "storage" containers are buildah's, not podman's.
		if c.State == "storage" && c.Created >= start.Unix()-1 {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) > 0 {
		_, _ = b.run(ctx, append([]string{"rm", "--force", "--"}, ids...)...)
	}
}

// removeRuncContainers kills and deletes every container in a private runc
// state root.
func (b *Builder) removeRuncContainers(root string) {
	if _, err := os.Stat(root); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runc := func(args ...string) *exec.Cmd {
		args = append([]string{"--root", root}, args...)
		if os.Geteuid() != 0 {
			// Rootless: the RUN containers live in the builder's user
			// namespace.
			return b.Command(ctx, append([]string{"unshare", b.cfg.Runc}, args...)...)
		}
		return exec.CommandContext(ctx, b.cfg.Runc, args...)
	}
	out, err := runc("list", "--quiet").Output()
	if err != nil {
		return
	}
	for _, id := range strings.Fields(string(out)) {
		_ = runc("delete", "--force", id).Run()
	}
}

// BuildTmpDir is the persistent temporary directory builds run with: it
// holds the RUN --mount=type=cache directories, which must survive from one
// build to the next.
func (b *Builder) BuildTmpDir() string { return filepath.Join(b.cfg.TmpDir, "buildah") }
