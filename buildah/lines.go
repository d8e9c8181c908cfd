package buildah

import (
	"bytes"
	"io"
	"sync"
)

// maxLine caps one output line; longer lines are passed on in pieces.
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
	lw      *lineWriters
	dst     io.Writer
	onLine  func(string)
	partial []byte
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
			w.partial = append(w.partial, p...)
			if len(w.partial) >= maxLine {
				w.emit(w.partial)
				w.partial = w.partial[:0]
			}
			break
		}
		if len(w.partial) > 0 {
			w.partial = append(w.partial, p[:i]...)
			w.emit(w.partial)
			w.partial = w.partial[:0]
		} else {
			w.emit(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

// emit passes on one line (without its newline). Called with lw.mu held.
func (w *lineWriter) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	s := string(line)
	if w.dst != nil {
		_, _ = w.dst.Write([]byte(s + "\n"))
	}
	if w.lw.tail != nil {
		w.lw.tail.add(s)
	}
	if w.onLine != nil {
		w.onLine(s)
	}
}

// flush passes on unterminated last lines. Call it after the command ended.
func (lw *lineWriters) flush() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	for _, w := range []*lineWriter{lw.stdout, lw.stderr} {
		if len(w.partial) > 0 {
			w.emit(w.partial)
			w.partial = nil
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
