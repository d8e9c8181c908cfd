// Package dockerfile reads a Dockerfile (or Containerfile) exactly as the
// builder reads it, with the builder's own code: the parser, shell lexer
// and instruction evaluator of github.com/openshift/imagebuilder, at the
// version the builder (buildah, built from tools/buildah) links. It walks
// the stages the way buildah's stage executor does (heading ARGs, FROM with
// build arguments, the base image's environment and ONBUILD triggers, each
// instruction resolved and evaluated in turn) and records what the builder
// would do: the expanded arguments of every step, the COPY/ADD and RUN
// operations with their flags and mounts as buildah receives them, the
// environment a RUN sees and the image config after every step.
//
// Every decision Slipway takes from a Dockerfile (the inputs key, step keys
// and reuse, the mount policy, config-only steps applied in the registry,
// step numbering) is taken from a File. It must not run anything, read the
// build context or reach a registry: what it needs from outside (a base
// image's config) comes through Options.
package dockerfile

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	docker "github.com/fsouza/go-dockerclient"
	buildkitparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/openshift/imagebuilder"
	"github.com/openshift/imagebuilder/dockerfile/parser"
)

// Options are what a Dockerfile's reading depends on besides its text.
type Options struct {
	// BuildArgs are the build's --build-arg values.
	BuildArgs map[string]string
	// BaseConfig returns the config of an image a stage starts FROM (not
	// an earlier stage, not scratch): its environment is visible to the
	// stage's variables and its ONBUILD triggers run first in the stage.
	// nil, or a nil result, reads the stage as if the image had an empty
	// config.
	BaseConfig func(ref string) *docker.Config
	// Format is the format the builder commits images in (buildah's
	// --format): "oci" (the default) or "docker". A stage that starts FROM
	// an earlier stage starts from the image committed for it, and an OCI
	// image's config has no HEALTHCHECK, SHELL or ONBUILD: in the OCI
	// format the stage inherits none of them (buildah warns that it
	// ignores them), in the Docker format it inherits them and runs the
	// ONBUILD triggers.
	Format string
}

// File is a Dockerfile as the builder reads it.
type File struct {
	// Source is the Dockerfile's text; Lines its lines as the parser
	// counts them (1-based line n is Lines[n-1]).
	Source []byte
	Lines  []string
	// Head is the number of lines before the first FROM: parser
	// directives, comments and the heading (global) ARGs.
	Head int
	// HeadingArgs are the values of the ARGs declared before the first
	// FROM, after the build arguments.
	HeadingArgs map[string]string
	// EscapeToken is the line continuation character ('\\' unless a
	// parser directive says otherwise).
	EscapeToken rune
	// Stages in order.
	Stages []*Stage
	// Warnings are the parser's (empty continuation lines).
	Warnings []string
}

// Stage is one FROM and the steps after it.
type Stage struct {
	// Index is the stage's position, from 0.
	Index int
	// Name is the stage's AS name, its build arguments expanded as the
	// builder expands them (heading ARGs, build arguments); "" without
	// one. FROM and --from name the stage by it.
	Name string
	// Base is the image the stage starts from, its build arguments
	// expanded ("scratch" for none).
	Base string
	// BaseStage is the index of the earlier stage Base names, or -1 when
	// Base is an image or scratch.
	BaseStage int
	// Steps are the stage's steps as the builder numbers them: the FROM
	// first, then the base image's ONBUILD triggers, if any, then the
	// stage's instructions.
	Steps []*Step
}

// IsScratch reports whether the stage starts from no image.
func (s *Stage) IsScratch() bool { return s.BaseStage < 0 && strings.EqualFold(s.Base, "scratch") }

// Step is one instruction as the builder evaluates it.
type Step struct {
	// Command is the instruction, lower case ("run", "copy").
	Command string
	// Original is the instruction as written, continuation lines joined:
	// what the builder prints in its "STEP n/m: ..." header (plus a
	// summary of any heredocs; a FROM's differs, see Header) and writes
	// into the image's history.
	Original string
	// Args are its arguments as the builder evaluates them (variables
	// expanded for the instructions the builder expands).
	Args []string
	// Flags are its flags as written ("--from=build", "--mount=...").
	Flags []string
	// JSON is true for the exec (JSON array) form.
	JSON bool
	// Heredocs are the here-documents the instruction carries.
	Heredocs []buildkitparser.Heredoc
	// StartLine and EndLine are the lines it spans in the Dockerfile,
	// heredocs included (1-based); 0 for a step that is not in the file
	// (an ONBUILD trigger of the base image).
	StartLine, EndLine int
	// Trigger is true for an ONBUILD trigger of the base image.
	Trigger bool
	// Copies are the COPY/ADD operations it asks for: sources, expanded
	// --from, --chown, --chmod, --exclude, heredoc files.
	Copies []imagebuilder.Copy
	// Runs are the commands it runs, with their mounts and network as
	// the builder receives them (build arguments expanded).
	Runs []imagebuilder.Run
	// Env is the environment the step's commands see: the build
	// arguments in scope and the image's environment.
	Env []string
	// ArgsInScope are the build arguments in scope after the step and
	// their values ("NAME=value", sorted).
	ArgsInScope []string
	// Declared are the names of the ARGs declared in the stage up to and
	// including this step.
	Declared []string
	// CmdSet is true when a CMD came earlier in the stage (an ENTRYPOINT
	// then keeps it).
	CmdSet bool
	// Config is the image config after the step, as the builder would
	// commit it.
	Config docker.Config
	// Resolved is the step exactly as the builder resolved it before
	// evaluating it (what buildah logs as "Parsed Step" at debug level).
	Resolved imagebuilder.Step
	// RunEnv are the variables the stage has set so far (the evaluator's
	// run config): the builder sets them again, in this order, on every
	// commit.
	RunEnv []string

	// fromHeader is a FROM's step header (see Header).
	fromHeader string
}

// Header is the step's text in the builder's step header: Original, and
// a one-line summary of each heredoc. For a FROM the builder prints the
// stage's start as evaluated instead: "FROM [--platform=<platform>] <base>
// [AS <name>]", where it may print the ID of the image it built for an
// earlier stage in place of the stage's name.
func (s *Step) Header() string {
	if s.fromHeader != "" {
		return s.fromHeader
	}
	h := s.Original
	for _, d := range s.Heredocs {
		lines := strings.Split(strings.ReplaceAll(strings.TrimSpace(d.Content), "\r\n", "\n"), "\n")
		sum := lines[0]
		if len(lines) > 1 {
			sum += "..."
		}
		h += " (" + sum + ")"
	}
	return h
}

// Error is a Dockerfile the builder would refuse, with the line it names
// (0 when the error is not about one line).
type Error struct {
	Line int
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("Dockerfile line %d: %v", e.Line, e.Err)
	}
	return "Dockerfile: " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Parse reads a Dockerfile the way the builder does (see the package
// comment). An error is one the builder would fail the build with.
func Parse(src []byte, opts Options) (*File, error) {
	switch opts.Format {
	case "", "oci", "docker":
	default:
		return nil, &Error{Err: fmt.Errorf("image format %q: want oci or docker", opts.Format)}
	}
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, &Error{Err: err}
	}
	f := &File{Source: src, Lines: splitLines(src), EscapeToken: res.EscapeToken, Warnings: res.Warnings}
	node := res.AST
	if len(node.Children) == 0 {
		return nil, &Error{Err: fmt.Errorf("the Dockerfile has no instructions")}
	}
	for _, c := range node.Children {
		if strings.EqualFold(c.Value, "from") {
			f.Head = c.StartLine - 1
			break
		}
		if c.Value != "arg" {
			return nil, &Error{Line: c.StartLine, Err: fmt.Errorf("%s before the first FROM: only ARG may come before it", strings.ToUpper(c.Value))}
		}
	}
	b := imagebuilder.NewBuilder(opts.BuildArgs)
	stages, err := imagebuilder.NewStages(node, b)
	if err != nil {
		return nil, &Error{Err: err}
	}
	if len(stages) == 0 {
		return nil, &Error{Err: fmt.Errorf("the Dockerfile has no FROM")}
	}
	f.HeadingArgs = maps.Clone(b.HeadingArgs)
	for i := range stages {
		st, err := f.readStage(stages, i, opts)
		if err != nil {
			return nil, err
		}
		f.Stages = append(f.Stages, st)
	}
	return f, nil
}

// readStage evaluates stage i as buildah's stage executor does.
func (f *File) readStage(stages imagebuilder.Stages, i int, opts Options) (*Stage, error) {
	stage := stages[i]
	ib := stage.Builder
	fromNode := stage.Node.Children[0]
	st := &Stage{Index: i, BaseStage: -1}
	if hasStageName(fromNode) {
		// imagebuilder's stage name: expanded.
		st.Name = stage.Name
	}
	base, err := ib.From(stage.Node)
	if err != nil {
		return nil, &Error{Line: fromNode.StartLine, Err: err}
	}
	if base == "" {
		return nil, &Error{Line: fromNode.StartLine, Err: fmt.Errorf("%s names no image: its build arguments are empty (give them a value with a build argument)", fromNode.Original)}
	}
	st.Base = base
	from := &Step{Command: "from", Original: fromNode.Original, Flags: fromNode.Flags, StartLine: fromNode.StartLine, EndLine: fromNode.EndLine}
	from.Args = []string{base}
	from.fromHeader = fromHeader(base, ib.Platform, stage.Name)
	var cfg docker.Config
	cfg, st.BaseStage = f.baseConfig(base, i, opts)
	// What prepare hands imagebuilder: the base's config, naming the
	// image it starts from. FromImage moves
	// its environment aside and prepends its ONBUILD triggers.
	cfg.Image = base
	own := len(stage.Node.Children)
	if err := ib.FromImage(&docker.Image{Config: &cfg}, stage.Node); err != nil {
		return nil, &Error{Line: fromNode.StartLine, Err: err}
	}
	from.Env = ib.Step().Env
	from.ArgsInScope = sortedArgs(ib)
	from.Config = snapshot(ib, cfg.Env)
	from.RunEnv = slices.Clone(ib.RunConfig.Env)
	prevEnv := from.Config.Env
	st.Steps = append(st.Steps, from)
	trigger := len(stage.Node.Children) - own
	var declared []string
	for k, node := range stage.Node.Children {
		step := ib.Step()
		if err := step.Resolve(node); err != nil {
			return nil, &Error{Line: node.StartLine, Err: err}
		}
		resolved := *step
		resolved.Args = slices.Clone(step.Args)
		rec := &recorder{}
		noRunsRemaining := !ib.RequiresStart(&parser.Node{Children: stage.Node.Children[k+1:]})
		if err := ib.Run(step, rec, noRunsRemaining); err != nil {
			return nil, &Error{Line: node.StartLine, Err: err}
		}
		if step.Command == "arg" {
			declared = append(declared, argNames(step.Args)...)
		}
		s := &Step{
			Command:     step.Command,
			Original:    step.Original,
			Args:        step.Args,
			Flags:       step.Flags,
			JSON:        step.Attrs["json"],
			Heredocs:    step.Heredocs,
			Copies:      rec.copies,
			Runs:        rec.runs,
			Env:         step.Env,
			ArgsInScope: sortedArgs(ib),
			Declared:    slices.Clone(declared),
			CmdSet:      ib.CmdSet,
			Config:      snapshot(ib, prevEnv),
			RunEnv:      slices.Clone(ib.RunConfig.Env),
			Resolved:    resolved,
		}
		prevEnv = s.Config.Env
		if k < trigger {
			s.Trigger = true
		} else {
			s.StartLine, s.EndLine = node.StartLine, node.EndLine
		}
		st.Steps = append(st.Steps, s)
	}
	return st, nil
}

// argNames returns the names an ARG instruction's arguments (name or
// name=default) declare.
func argNames(args []string) []string {
	names := make([]string, len(args))
	for i, a := range args {
		names[i], _, _ = strings.Cut(a, "=")
	}
	return names
}

// fromHeader is a stage's FROM line as StageExecutor.prepare prints it:
// ib.From evaluated the platform.
func fromHeader(base, platform, stageName string) string {
	h := "FROM " + base
	if platform != "" {
		h = "FROM --platform=" + platform + " " + base
	}
	if _, err := strconv.Atoi(stageName); err != nil && stageName != "" {
		h += " AS " + stageName
	}
	return h
}

// baseConfig returns the config that stage i, whose FROM names base,
// starts from: the last config of the earlier stage base names (and that
// stage's index), or else opts.BaseConfig's for the image (and -1).
func (f *File) baseConfig(base string, i int, opts Options) (docker.Config, int) {
	var cfg docker.Config
	if j := f.stageIndex(base, i); j >= 0 {
		prev := f.Stages[j]
		cfg = cloneConfig(prev.Steps[len(prev.Steps)-1].Config)
		if opts.Format != "docker" {
			cfg = ociConfig(cfg)
		}
		return cfg, j
	}
	if !strings.EqualFold(base, "scratch") && opts.BaseConfig != nil {
		if c := opts.BaseConfig(base); c != nil {
			cfg = cloneConfig(*c)
		}
	}
	return cfg, -1
}

// StageIndex returns the index of the stage among the first before ones
// that ref names (by AS name or by number, as buildah resolves a FROM or a
// --from), or -1.
func (f *File) StageIndex(ref string, before int) int { return f.stageIndex(ref, before) }

func (f *File) stageIndex(ref string, before int) int {
	if n, err := strconv.Atoi(ref); err == nil {
		if n >= 0 && n < before && n < len(f.Stages) {
			return n
		}
		return -1
	}
	for j := min(before, len(f.Stages)) - 1; j >= 0; j-- {
		if f.Stages[j].Name != "" && f.Stages[j].Name == ref {
			return j
		}
	}
	return -1
}

// hasStageName reports whether a FROM node has an AS name.
func hasStageName(from *parser.Node) bool {
	n := from.Next
	return n != nil && n.Next != nil && strings.EqualFold(n.Next.Value, "as") && n.Next.Next != nil && n.Next.Next.Value != ""
}

// snapshot is the config the builder would commit after a step: the
// evaluator's run config, its variables set on the environment of the
// image the step started from (prevEnv) as buildah's commit sets them.
func snapshot(ib *imagebuilder.Builder, prevEnv []string) docker.Config {
	c := cloneConfig(*ib.Config())
	env := slices.Clone(prevEnv)
	for _, kv := range c.Env {
		env = setEnv(env, kv)
	}
	c.Env = env
	return c
}

// setEnv sets the variable of kv ("K=V") in env as buildah's Builder.SetEnv
// does: any earlier value removed, the new one appended.
func setEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
	return append(env, kv)
}

func sortedArgs(ib *imagebuilder.Builder) []string {
	a := ib.Arguments()
	slices.Sort(a)
	return a
}

// ociConfig is what an image committed in the OCI format keeps of a config:
// the fields of an OCI image config.
func ociConfig(c docker.Config) docker.Config {
	return docker.Config{
		User:         c.User,
		ExposedPorts: c.ExposedPorts,
		Env:          c.Env,
		Entrypoint:   c.Entrypoint,
		Cmd:          c.Cmd,
		Volumes:      c.Volumes,
		WorkingDir:   c.WorkingDir,
		Labels:       c.Labels,
		StopSignal:   c.StopSignal,
		ArgsEscaped:  c.ArgsEscaped,
	}
}

func cloneConfig(c docker.Config) docker.Config {
	c.Env = slices.Clone(c.Env)
	c.Cmd = slices.Clone(c.Cmd)
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.Shell = slices.Clone(c.Shell)
	c.OnBuild = slices.Clone(c.OnBuild)
	c.Labels = maps.Clone(c.Labels)
	c.Volumes = maps.Clone(c.Volumes)
	c.ExposedPorts = maps.Clone(c.ExposedPorts)
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = slices.Clone(h.Test)
		c.Healthcheck = &h
	}
	return c
}

// splitLines splits src into lines as the parser's scanner does.
func splitLines(src []byte) []string {
	s := strings.ReplaceAll(string(src), "\r\n", "\n")
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// recorder is the imagebuilder.Executor that records what a step asks the
// builder to do instead of doing it.
type recorder struct {
	copies []imagebuilder.Copy
	runs   []imagebuilder.Run
}

func (r *recorder) Preserve(string) error            { return nil }
func (r *recorder) EnsureContainerPath(string) error { return nil }
func (r *recorder) EnsureContainerPathAs(string, string, *os.FileMode) error {
	return nil
}
func (r *recorder) Copy(_ []string, copies ...imagebuilder.Copy) error {
	r.copies = append(r.copies, copies...)
	return nil
}
func (r *recorder) Run(run imagebuilder.Run, _ docker.Config) error {
	r.runs = append(r.runs, run)
	return nil
}
func (r *recorder) UnrecognizedInstruction(step *imagebuilder.Step) error {
	return fmt.Errorf("unknown instruction: %s", strings.ToUpper(step.Command))
}

// ConfigOnly reports whether the step only changes the image's config
// (no files), so that it can be applied to a built image's config (Apply)
// instead of being built: ENV, LABEL, EXPOSE, USER, CMD, ENTRYPOINT,
// STOPSIGNAL and HEALTHCHECK.
func (s *Step) ConfigOnly() bool {
	switch s.Command {
	case "env", "label", "expose", "user", "cmd", "entrypoint", "stopsignal", "healthcheck":
		return !s.Trigger
	}
	return false
}

// ConfigStep is a config-only step (Step.ConfigOnly) as Apply replays it:
// its arguments already evaluated.
type ConfigStep struct {
	Command  string   `json:"command"`
	Args     []string `json:"args"`
	Flags    []string `json:"flags,omitempty"`
	JSON     bool     `json:"json,omitempty"`
	Original string   `json:"original"`
}

// ConfigStep returns the step for Apply.
func (s *Step) ConfigStep() ConfigStep {
	return ConfigStep{Command: s.Command, Args: slices.Clone(s.Args), Flags: slices.Clone(s.Flags), JSON: s.JSON, Original: s.Original}
}

// Apply evaluates config-only steps on an image's config as the builder
// would have had it built them on that image: cmdSet and runEnv are the
// stage's state before them (Step.CmdSet: an ENTRYPOINT keeps a CMD of the
// stage; Step.RunEnv: the variables each commit sets again). The result is
// the config the builder commits after the last step (see Step.Config).
func Apply(cfg docker.Config, steps []ConfigStep, cmdSet bool, runEnv []string) (docker.Config, error) {
	ib := imagebuilder.NewBuilder(nil)
	cfg = cloneConfig(cfg)
	prevEnv := slices.Clone(cfg.Env)
	if err := ib.FromImage(&docker.Image{Config: &cfg}, &parser.Node{}); err != nil {
		return docker.Config{}, err
	}
	ib.CmdSet = cmdSet
	ib.RunConfig.Env = slices.Clone(runEnv)
	for _, s := range steps {
		switch s.Command {
		case "env", "label", "expose", "user", "cmd", "entrypoint", "stopsignal", "healthcheck":
		default:
			return docker.Config{}, fmt.Errorf("%s is not a config-only step", strings.ToUpper(s.Command))
		}
		step := &imagebuilder.Step{Command: s.Command, Args: slices.Clone(s.Args), Flags: slices.Clone(s.Flags), Attrs: map[string]bool{"json": s.JSON}, Original: s.Original}
		if err := ib.Run(step, imagebuilder.NoopExecutor, true); err != nil {
			return docker.Config{}, fmt.Errorf("%s: %w", s.Original, err)
		}
	}
	return snapshot(ib, prevEnv), nil
}
