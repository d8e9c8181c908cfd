package applog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/natslog"
)

// tail is the collector's position in one app container's log file.
type tail struct {
	project, release string
	path             string
	mask             func(string) string
	ino              uint64
	off              int64
	// partial is the start of a line whose rest is still to come.
	partial strings.Builder
	// skipUntil skips the lines published before (a restarted server
	// reads the file from its start).
	skipUntil time.Time
}

// readChunk is the most the collector reads of a file at once.
const readChunk = 1 << 20

// Add makes the collector follow inst's output from its first line not
// yet published (apps.Config.OnStart, and the apps a restarted server
// finds). Adding an app it follows already is harmless. It does not
// wait for the collector. A pull request's preview (inst.Preview > 0) is
// not followed: its output is not the project's app's.
func (p *Pipeline) Add(inst *apps.Instance) {
	if inst.Preview > 0 {
		return
	}
	select {
	case p.add <- inst:
	case <-p.done:
	}
}

// run is the collector: it owns the tails, and reads a file when
// inotify says it changed.
func (p *Pipeline) run(ctx context.Context) {
	defer close(p.done)
	for {
		select {
		case <-ctx.Done():
			return
		case inst := <-p.add:
			p.watch(ctx, inst)
		case ev, ok := <-p.w.Events:
			if !ok {
				return
			}
			p.changed(ctx, ev)
		case err, ok := <-p.w.Errors:
			if !ok {
				return
			}
			p.log.Warn("app logs: watching log files", "error", err)
		}
	}
}

// changed handles one inotify event in a watched directory.
func (p *Pipeline) changed(ctx context.Context, ev fsnotify.Event) {
	t := p.tails[filepath.Dir(ev.Name)]
	if t == nil {
		if t = p.tails[ev.Name]; t != nil && ev.Has(fsnotify.Remove) { // the directory: the container is gone
			delete(p.tails, ev.Name)
			_ = p.w.Remove(ev.Name)
		}
		return
	}
	if ev.Name == t.path && !ev.Has(fsnotify.Remove) {
		p.read(ctx, t)
	}
}

// watch starts following inst's log file, or reads it again if it is
// followed already.
func (p *Pipeline) watch(ctx context.Context, inst *apps.Instance) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	path, mask, err := p.cfg.Source.LogSource(sctx, inst)
	if err != nil {
		p.log.Warn("app logs: cannot follow an app", "project", inst.Project, "release", inst.Release, "error", err)
		return
	}
	dir := filepath.Dir(path)
	if t := p.tails[dir]; t != nil {
		t.mask = mask
		p.read(ctx, t)
		return
	}
	t := &tail{project: inst.Project, release: inst.Release, path: path, mask: mask}
	last, err := p.last(sctx, inst.Project)
	if err != nil {
		p.log.Warn("app logs: cannot follow an app", "project", inst.Project, "error", err)
		return
	}
	if last != nil && last.Release == inst.Release {
		t.skipUntil = last.Time
	}
	if err := p.w.Add(dir); err != nil {
		p.log.Warn("app logs: cannot watch an app's log file", "project", inst.Project, "path", path, "error", err)
		return
	}
	p.tails[dir] = t
	p.read(ctx, t)
}

// last returns the project's last published or stored line, or nil, and
// sets the project's numbering after it.
func (p *Pipeline) last(ctx context.Context, project string) (*slipway.AppLogLine, error) {
	var last *slipway.AppLogLine
	raw, err := p.st.GetLastMsgForSubject(ctx, Subject(project))
	switch {
	case err == nil:
		if lines, err := decode(raw.Subject, raw.Data); err == nil && len(lines) > 0 {
			last = &lines[len(lines)-1]
		}
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, err
	}
	stored, err := p.cfg.Store.LastAppLogLine(ctx, project)
	if err != nil && slipway.ErrorCode(err) != slipway.ENOTFOUND {
		return nil, err
	}
	if stored != nil && (last == nil || stored.N > last.N) {
		last = stored
	}
	if last != nil {
		p.next[project] = max(p.next[project], last.N)
	}
	return last, nil
}

// read publishes the lines written to t's file since the last read. A
// file whose inode changed or that shrank was started anew by podman:
// it is read from its start.
func (p *Pipeline) read(ctx context.Context, t *tail) {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return // not written yet, or being replaced
	} else if err != nil {
		p.log.Warn("app logs: read an app's log file", "path", t.path, "error", err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return
	}
	var ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	if ino != t.ino || st.Size() < t.off {
		t.ino, t.off = ino, 0
		t.partial.Reset()
	}
	buf := make([]byte, readChunk)
	for t.off < st.Size() {
		n, err := f.ReadAt(buf, t.off)
		if err != nil && err != io.EOF {
			p.log.Warn("app logs: read an app's log file", "path", t.path, "error", err)
			return
		}
		end := bytes.LastIndexByte(buf[:n], '\n')
		if end < 0 {
			return // a line still being written
		}
		t.off += int64(end + 1)
		p.publish(ctx, t, p.parse(t, buf[:end]))
		if n < len(buf) {
			return
		}
	}
}

// parse turns whole k8s-file lines into app lines, masked and numbered.
func (p *Pipeline) parse(t *tail, b []byte) []slipway.AppLogLine {
	var out []slipway.AppLogLine
	for raw := range strings.SplitSeq(string(b), "\n") {
		l, ok := apps.ParseLogLine(raw)
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, l.Time)
		if err != nil || (!t.skipUntil.IsZero() && !at.After(t.skipUntil)) {
			continue
		}
		if t.partial.Len() < natslog.MaxLineBytes {
			t.partial.WriteString(l.Text)
		}
		if l.Partial {
			continue
		}
		text := t.partial.String()
		t.partial.Reset()
		if len(text) > natslog.MaxLineBytes {
			text = strings.ToValidUTF8(text[:natslog.MaxLineBytes], "")
		}
		p.next[t.project]++
		out = append(out, slipway.AppLogLine{Project: t.project, N: p.next[t.project], Release: t.release,
			Time: at, Stream: l.Stream, Text: t.mask(text)})
	}
	return out
}

// publish sends lines to the stream in messages of at most maxBatch.
func (p *Pipeline) publish(ctx context.Context, t *tail, lines []slipway.AppLogLine) {
	for len(lines) > 0 {
		batch := lines[:min(len(lines), maxBatch)]
		lines = lines[len(batch):]
		data, err := json.Marshal(batch)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err = p.js.Publish(pctx, Subject(t.project), data, jetstream.WithMsgID(msgID(batch)))
			cancel()
		}
		if err != nil {
			p.log.Warn("app logs: publish", "project", t.project, "lines", len(batch), "error", err)
		}
	}
}
