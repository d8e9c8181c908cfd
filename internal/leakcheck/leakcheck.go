// Package leakcheck finds the goroutines of this module still running once
// they should all have ended, such as after server.Run returned. It reads
// runtime.Stack: a check, not something for a hot path.
//
// A goroutine counts as this module's when a frame of its stack, the
// function that started it or, with GODEBUG=tracebackancestors=N (see
// Ancestors), a frame of the goroutines that started it is in one of the
// module's packages: with the ancestors, goroutines that a library (NATS's
// client, Temporal's SDK, gRPC) started on our behalf count too. Only the
// functions listed in excused are let off, each for a documented reason.
package leakcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// module prefixes the module's function names.
const module = "github.com/slipway-ci/slipway"

// Env, when set, makes Check check: the end-to-end tests set it for the
// server and, through it, for the agents, with GODEBUG=Ancestors.
const Env = "SLIPWAY_CHECK_GOROUTINES"

// Left starts the message of a failed Check.
const Left = "goroutines left after"

// Check runs run and, if Env is set, checks that it left no goroutine of
// ours running, listing those it left on stderr (after Left and what)
// and adding an error to run's.
func Check(what string, stderr io.Writer, run func() error) error {
	if os.Getenv(Env) == "" {
		return run()
	}
	base := Take()
	err := run()
	if leaks := base.Leaks(5 * time.Second); len(leaks) > 0 {
		fmt.Fprintf(stderr, "%s %s: %d:\n%s", Left, what, len(leaks), Format(leaks))
		err = errors.Join(err, fmt.Errorf("%d %s %s", len(leaks), Left, what))
	}
	return err
}

// Ancestors is the GODEBUG setting that makes tracebacks name the
// goroutines that started a goroutine (the runtime reads it at start).
const Ancestors = "tracebackancestors=100"

// excused are the functions (by prefix) whose goroutines, and their
// descendants, no owner of ours can await, with the reason.
var excused = []struct{ prefix, why string }{
	// Only the embedded Temporal server runs go.temporal.io/server code
	// (its ancestry is too deep for the traceback to name
	// temporalserver.Start).
	{"go.temporal.io/server/", "the embedded Temporal server does not wait for its goroutines (services, its system " +
		"worker's SDK pollers, gRPC connections, rate limiters, its SQLite pool) when it stops; they end with the process"},
	{module + "/temporalserver.", "the same, started by package temporalserver"},
	{"github.com/docker/go-events.(*Broadcaster).run", "the registry library's notification broadcaster has no way to stop it"},
}

// Goroutine is one goroutine, as runtime.Stack prints it.
type Goroutine struct {
	ID    int
	Stack string
}

// Baseline is the set of goroutines running when it was taken; they are
// never reported.
type Baseline map[int]bool

// Take records the goroutines running now.
func Take() Baseline {
	b := Baseline{}
	for _, g := range all() {
		b[g.ID] = true
	}
	return b
}

// Leaks returns the module's goroutines that are not in b, once there are
// none or wait has passed: a goroutine whose owner has just returned may
// still be unwinding its deferred calls.
func (b Baseline) Leaks(wait time.Duration) []Goroutine {
	deadline := time.Now().Add(wait)
	for {
		var leaks []Goroutine
		for _, g := range all() {
			if !b[g.ID] && ours(g.Stack) {
				leaks = append(leaks, g)
			}
		}
		if len(leaks) == 0 || time.Now().After(deadline) {
			return leaks
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Format lists gs for a message.
func Format(gs []Goroutine) string {
	var sb strings.Builder
	for _, g := range gs {
		sb.WriteString(g.Stack)
		sb.WriteString("\n\n")
	}
	return sb.String()
}

// all returns every goroutine but the caller's.
func all() []Goroutine {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var gs []Goroutine
	// The first is the caller's.
	for i, s := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue
		}
		header, _, _ := strings.Cut(string(s), " [")
		id, err := strconv.Atoi(strings.TrimPrefix(header, "goroutine "))
		if err != nil {
			continue
		}
		gs = append(gs, Goroutine{ID: id, Stack: string(s)})
	}
	return gs
}

// ours reports whether the stack has a frame, or a creator, in the module,
// and none in an excused function.
func ours(stack string) bool {
	found := false
	for _, line := range strings.Split(stack, "\n") {
		if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "goroutine ") || strings.HasPrefix(line, "[originating") {
			continue
		}
		fn, created := strings.CutPrefix(line, "created by ")
		if created {
			fn, _, _ = strings.Cut(fn, " in goroutine ")
		} else if i := strings.LastIndexByte(fn, '('); i > 0 {
			fn = fn[:i] // the arguments
		}
		for _, e := range excused {
			if strings.HasPrefix(fn, e.prefix) {
				return false
			}
		}
		if strings.HasPrefix(fn, module+"/") || strings.HasPrefix(fn, module+".") {
			found = true
		}
	}
	return found
}
