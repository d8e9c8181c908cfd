package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slipway-ci/slipway/podman"
)

// step is one Dockerfile step as a build ran it. The pseudo-step "COMMIT"
// is the final image's commit (from podman's COMMIT line to its last
// output line).
type step struct {
	Instruction string `json:"instruction"`
	Cached      bool   `json:"cached"`
	DurationMs  int64  `json:"durationMs"`
}

var (
	stepHeaderRE = regexp.MustCompile(`^(?:\[\d+/\d+\] )?STEP \d+/\d+: .*$`)
	// commitRE matches the final image's commit; in a multi-stage build
	// podman prefixes it with the stage ("[4/4] COMMIT name").
	commitRE = regexp.MustCompile(`^(?:\[\d+/\d+\] )?COMMIT\b`)
)

// stepParser follows podman build's output, line by line with the time
// each line arrived. It works the same on a live build and on Slipway's
// stored log lines.
type stepParser struct {
	steps []step
	start time.Time
	open  bool
}

func (sp *stepParser) line(now time.Time, s string) {
	switch {
	case strings.HasPrefix(s, "--> Using cache "):
		if sp.open {
			sp.steps[len(sp.steps)-1].Cached = true
		}
	case commitRE.MatchString(s):
		sp.finish(now)
		sp.steps = append(sp.steps, step{Instruction: "COMMIT"})
		sp.start, sp.open = now, true
	case stepHeaderRE.MatchString(s):
		sp.finish(now)
		sp.steps = append(sp.steps, step{Instruction: s})
		sp.start, sp.open = now, true
	}
}

func (sp *stepParser) finish(now time.Time) {
	if sp.open {
		sp.steps[len(sp.steps)-1].DurationMs = now.Sub(sp.start).Milliseconds()
		sp.open = false
	}
}

// lineSink splits a command's output into lines, hands each to onLine with
// its arrival time and copies it to log. Safe for concurrent use by the
// command's stdout and stderr.
type lineSink struct {
	mu      sync.Mutex
	partial map[*sinkWriter][]byte
	onLine  func(time.Time, string)
	log     io.Writer
	tail    []string
}

type sinkWriter struct{ s *lineSink }

func newLineSink(log io.Writer, onLine func(time.Time, string)) *lineSink {
	return &lineSink{partial: map[*sinkWriter][]byte{}, onLine: onLine, log: log}
}

func (s *lineSink) writer() io.Writer { return &sinkWriter{s: s} }

func (w *sinkWriter) Write(p []byte) (int, error) {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	buf := append(s.partial[w], p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		s.emit(now, string(bytes.TrimSuffix(buf[:i], []byte("\r"))))
		buf = buf[i+1:]
	}
	s.partial[w] = append([]byte(nil), buf...)
	return len(p), nil
}

func (s *lineSink) emit(now time.Time, line string) {
	if s.log != nil {
		fmt.Fprintln(s.log, line)
	}
	s.tail = append(s.tail, line)
	if len(s.tail) > 30 {
		s.tail = s.tail[1:]
	}
	if s.onLine != nil {
		s.onLine(now, line)
	}
}

func (s *lineSink) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for w, b := range s.partial {
		if len(b) > 0 {
			s.emit(now, string(b))
		}
		delete(s.partial, w)
	}
}

// buildSpec is one build of a sample app by the local floor or clean CI.
type buildSpec struct {
	ContextDir string
	Tag        string
	// BuildArgs are passed with --build-arg.
	BuildArgs map[string]string
	// Flags are the builder's own (builder.BuildFlags).
	Flags []string
	// Network is podman build --network ("" for the default).
	Network string
	// CacheFrom and CacheTo are registry repositories for the layer cache
	// (podman build --cache-from/--cache-to); empty for none.
	CacheFrom, CacheTo string
	// Log receives the build's output.
	Log io.Writer
}

// runBuild runs `podman build` or `buildah build` (whichever p runs) on
// p's storage the way a developer would (layers on, the engine's tmp dir
// as TMPDIR so RUN cache mounts persist in the storage directory) and
// returns its steps and wall time. Both tools print the same STEP, "-->
// Using cache" and COMMIT lines. It uses p.Command rather than p.Build
// because the local floor must keep its cache mounts between builds and
// clean CI needs --cache-from/--cache-to.
func runBuild(ctx context.Context, p *podman.Podman, b buildSpec) ([]step, time.Duration, error) {
	args := []string{"build", "--layers", "--format", "oci", "--tls-verify=false", "-t", b.Tag}
	args = append(args, b.Flags...)
	for _, k := range slices.Sorted(maps.Keys(b.BuildArgs)) {
		args = append(args, "--build-arg", k+"="+b.BuildArgs[k])
	}
	if b.Network != "" {
		args = append(args, "--network", b.Network)
	}
	if b.CacheFrom != "" {
		args = append(args, "--cache-from", b.CacheFrom)
	}
	if b.CacheTo != "" {
		args = append(args, "--cache-to", b.CacheTo)
	}
	args = append(args, "-f", filepath.Join(b.ContextDir, "Dockerfile"), b.ContextDir)
	var sp stepParser
	sink := newLineSink(b.Log, sp.line)
	cmd := p.Command(ctx, args...)
	cmd.Stdout, cmd.Stderr = sink.writer(), sink.writer()
	start := time.Now()
	err := cmd.Run()
	sink.flush()
	end := time.Now()
	sp.finish(end)
	if err != nil {
		return nil, 0, fmt.Errorf("%s build %s: %w\n%s", filepath.Base(p.Config().Binary), b.Tag, err, strings.Join(sink.tail, "\n"))
	}
	return sp.steps, end.Sub(start), nil
}
