package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/slipway-ci/slipway"
)

// buildProgress shows a deployment's log as it is followed: every line
// (plainProgress), or a progress bar of the build's steps on a terminal
// (barProgress).
type buildProgress interface {
	// line takes the next log line.
	line(l slipway.LogLine)
	// finish ends the display once the log is complete; failed says
	// whether the deployment did not succeed.
	finish(failed bool)
}

// isTerminal reports whether w is a terminal that can show a progress bar.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

func newProgress(w io.Writer, terminal bool) buildProgress {
	if !terminal {
		return plainProgress{w}
	}
	return newBarProgress(w)
}

// plainProgress prints every line, for logs and pipes.
type plainProgress struct{ w io.Writer }

func (p plainProgress) line(l slipway.LogLine) { fmt.Fprintln(p.w, terminalText(l.Text)) }
func (p plainProgress) finish(bool)            {}

// stepHeader matches podman's step headers, "STEP 2/5: RUN make" or, in a
// multi-stage build, "[1/2] STEP 2/5: RUN make".
var stepHeader = regexp.MustCompile(`^(?:\[(\d+)/(\d+)\] )?STEP (\d+)/(\d+): (.*)$`)

// ansiCode matches terminal escape sequences, dropped before matching.
var ansiCode = regexp.MustCompile(`\x1b\[[0-9;:?]*[ -/]*[@-~]`)

// tailLines is how many of the last lines a failed build shows under the bar.
const tailLines = 15

// barProgress draws one bar per build stage: "STEP n/m" of the stage
// running, with the step's instruction; before and after the Dockerfile
// runs it names the phase (fetching, pushing). It keeps the last lines to
// show when the build fails.
type barProgress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	stage string // "[1/2] " in a multi-stage build
	desc  string // the bar's description
	tail  []string
	// pushing is set once the push began.
	pushing bool
}

// describe sets the bar's description, drawing the bar only when it changes
// (every call draws it).
func (p *barProgress) describe(s string) {
	if s != p.desc {
		p.desc = s
		p.bar.Describe(s)
	}
}

func newBarProgress(w io.Writer) *barProgress {
	bar := progressbar.NewOptions(1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(24),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSetDescription("waiting for the builder"),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionClearOnFinish(),
	)
	return &barProgress{w: w, bar: bar}
}

func (p *barProgress) line(l slipway.LogLine) {
	p.tail = append(p.tail, l.Text)
	if len(p.tail) > tailLines {
		p.tail = p.tail[1:]
	}
	text := ansiCode.ReplaceAllString(l.Text, "")
	if m := stepHeader.FindStringSubmatch(text); m != nil {
		n, _ := strconv.Atoi(m[3])
		total, _ := strconv.Atoi(m[4])
		stage := ""
		if m[1] != "" {
			stage = "[" + m[1] + "/" + m[2] + "] "
		}
		if stage != p.stage || total != p.bar.GetMax() {
			p.stage = stage
			p.bar.ChangeMax(total)
		}
		_ = p.bar.Set(n - 1)
		p.describe(truncate(stage+"STEP "+m[3]+"/"+m[4]+": "+m[5], 60))
		return
	}
	switch l.Step {
	case "fetch":
		p.describe("fetching the commit")
	case "push":
		if !p.pushing {
			// Every step is done; the push is one more unit, so that the
			// bar (which clears itself when full) stays up while it runs.
			p.pushing = true
			p.bar.ChangeMax(p.bar.GetMax() + 1)
			_ = p.bar.Set(p.bar.GetMax() - 1)
		}
		p.describe("pushing the image")
	}
}

func (p *barProgress) finish(failed bool) {
	_ = p.bar.Finish() // clears the bar
	if failed && len(p.tail) > 0 {
		fmt.Fprintln(p.w, "last lines of the log:")
		for _, t := range p.tail {
			fmt.Fprintln(p.w, "  "+terminalText(t))
		}
	}
}

// truncate cuts s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(strings.TrimSpace(s))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n-1]) + "…"
}
