package buildah

import (
	"bytes"
	"io"
	"sync"
)

// maxLine caps what the tail and onLine keep of one output line. A longer
// line still reaches the destination whole: cutting it here, before
// secrets are masked, would let a secret across the cut escape.
const maxLine = 64 << 10

// lineWriters turns a command's stdout and stderr into whole lines, written
// to the destinations one at a time (the destinations need not be safe for
// concurrent use and may be the same writer), remembered in a tail, and
// handed to onStdout.
type lineWriters struct {
	mu             sync.Mutex
	stdout, stderr *lineWriter
	tail           *tail
}

type lineWriter struct {
	lw     *lineWriters
	dst    io.Writer
	onLine func(string)
	// partial is the line so far, or its first maxLine bytes when long.
	partial []byte
	// long says the line outgrew maxLine: dst has had it so far, without
	// a newline.
	long bool
}

func newLineWriters(stdout, stderr io.Writer, t *tail) *lineWriters {
	lw := &lineWriters{tail: t}
	lw.stdout = &lineWriter{lw: lw, dst: stdout}
	lw.stderr = &lineWriter{lw: lw, dst: stderr}
	return lw
}

// Write never fails: a failing destination must not kill the command.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.lw.mu.Lock()
	defer w.lw.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.add(p)
			break
		}
		w.add(p[:i])
		w.end()
		p = p[i+1:]
	}
	return n, nil
}

// add appends b to the current line. Called with lw.mu held.
func (w *lineWriter) add(b []byte) {
	if !w.long && len(w.partial)+len(b) > maxLine {
		w.long = true
		w.write(w.partial)
	}
	if w.long {
		w.write(b)
		b = b[:min(len(b), max(maxLine-len(w.partial), 0))]
	}
	w.partial = append(w.partial, b...)
}

// end passes on the current line. Called with lw.mu held.
func (w *lineWriter) end() {
	line := bytes.TrimSuffix(w.partial, []byte("\r"))
	s := string(line)
	if w.long {
		w.write([]byte("\n"))
	} else {
		w.write([]byte(s + "\n"))
	}
	if w.lw.tail != nil {
		w.lw.tail.add(s)
	}
	if w.onLine != nil {
		w.onLine(s)
	}
	w.partial, w.long = w.partial[:0], false
}

func (w *lineWriter) write(b []byte) {
	if w.dst != nil {
		_, _ = w.dst.Write(b)
	}
}

// flush passes on unterminated last lines. Call it after the command ended.
func (lw *lineWriters) flush() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	for _, w := range []*lineWriter{lw.stdout, lw.stderr} {
		if len(w.partial) > 0 || w.long {
			w.end()
		}
	}
}

// tail keeps the last n lines.
type tail struct {
	n   int
	buf []string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(s string) {
	if len(t.buf) == t.n {
		copy(t.buf, t.buf[1:])
		t.buf = t.buf[:t.n-1]
	}
	t.buf = append(t.buf, s)
}

func (t *tail) lines() []string { return append([]string(nil), t.buf...) }
