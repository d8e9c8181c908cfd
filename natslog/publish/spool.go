package publish

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway/internal/atomicfile"
	"github.com/slipway-ci/slipway/natslog"
)

// The spool keeps lines on disk (in Config.SpoolDir, on the machine's
// volume) while NATS is away or the memory buffer is full, so that neither
// a NATS outage nor the agent exiting during one loses a line.
//
// It is a queue of segment files named spool-<key>.log, drained in key
// order. Each record is one message, "<project> <message>\n" where the
// message is as published (see natslog.DecodeLines: a JSON array of consecutive
// lines, or one JSON line as earlier versions wrote), so a segment can
// hold lines of any deployment of the project and every message keeps its
// lines, their numbers and its Nats-Msg-Id when it is finally published
// (JetStream and the store drop what they already have). A publisher holds an
// exclusive flock on every segment it writes or drains, so two publishers
// sharing a directory never send the same segment; a segment left by a
// publisher that exited (or crashed) is adopted by the next one that
// starts. A sidecar spool-<key>.log.off records how far a segment was sent
// when its publisher closed; after a crash the segment is resent from that
// point, which costs duplicates the stream and the store ignore.

const (
	defaultMaxSpoolBytes = 1 << 30
	spoolPrefix          = "spool-"
	spoolSuffix          = ".log"
	offSuffix            = ".off"
	// spoolChunkBytes bounds what one drain round reads from a segment.
	spoolChunkBytes = 1 << 20
	spoolWriteBuf   = 256 << 10
)

// segment is one spool file.
type segment struct {
	path string
	key  int64
	rf   *os.File // read handle, holding the flock

	// Only for the segment being written (Publisher.cur).
	wf *os.File
	w  *bufio.Writer

	size    int64 // bytes written (own segment) or the file's size (adopted)
	flushed int64 // bytes in the file that can be read (whole records)
	readOff int64 // where the next drain reads
	reading bool  // more to read: still in Publisher.segs
	unacked int   // lines read from it and not yet acknowledged
}

func segmentName(key int64) string { return spoolPrefix + strconv.FormatInt(key, 10) + spoolSuffix }

// lockFile takes an exclusive, non-blocking flock on f.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// adoptSpool claims the segments a previous publisher left in the spool
// directory, in key order, and returns the highest line number they hold
// for this publisher's deployment (0 if none).
func (p *Publisher) adoptSpool() (int64, error) {
	dir := p.cfg.SpoolDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, fmt.Errorf("log spool: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("log spool: %w", err)
	}
	var max int64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, spoolPrefix) || !strings.HasSuffix(name, spoolSuffix) {
			continue
		}
		key, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(name, spoolPrefix), spoolSuffix), 10, 64)
		if err != nil {
			continue
		}
		path := filepath.Join(dir, name)
		f, err := os.Open(path)
		if err != nil {
			continue // taken and removed by another publisher meanwhile
		}
		if lockFile(f) != nil {
			f.Close() // another live publisher owns it
			continue
		}
		st, err := f.Stat()
		if err != nil || st.Size() == 0 {
			f.Close()
			removeSegment(path)
			continue
		}
		s := &segment{path: path, key: key, rf: f, size: st.Size(), flushed: st.Size(), reading: true}
		if b, err := os.ReadFile(path + offSuffix); err == nil {
			if off, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && off >= 0 && off <= s.size {
				s.readOff = off
			}
		}
		n, err := maxLineIn(f, s.readOff, p.cfg.Project, p.cfg.Deployment)
		if err != nil {
			f.Close()
			return 0, fmt.Errorf("log spool: read %s: %w", path, err)
		}
		max = maxInt(max, n)
		p.segs = append(p.segs, s)
		p.live++
		p.spoolBytes += s.size
		p.log.Info("sending log lines left in the spool", "segment", path, "bytes", s.size-s.readOff)
	}
	slices.SortFunc(p.segs, func(a, b *segment) int { return cmpInt(a.key, b.key) })
	if len(p.segs) > 0 {
		p.lastKey = maxInt(p.lastKey, p.segs[len(p.segs)-1].key)
	}
	return max, nil
}

func maxInt(a, b int64) int64 { return max(a, b) }

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// maxLineIn returns the highest line number of deployment in f from off.
func maxLineIn(f *os.File, off int64, project, deployment string) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, st.Size()-off), 64<<10)
	var max int64
	prefix := []byte(project + " ")
	for {
		rec, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long record: read the rest of it.
			rest, err2 := r.ReadBytes('\n')
			rec, err = append(slices.Clone(rec), rest...), err2
		}
		if len(rec) > 0 && rec[len(rec)-1] == '\n' && bytes.HasPrefix(rec, prefix) {
			if lines, err := natslog.DecodeLines(rec[len(prefix):]); err == nil {
				for _, l := range lines {
					if l.Deployment == deployment && l.N > max {
						max = l.N
					}
				}
			}
		}
		if err == io.EOF {
			return max, nil
		} else if err != nil {
			return 0, err
		}
	}
}

// spoolLocked appends a message (its lines already numbered) to the
// segment being written, starting one if needed. It reports false if the
// spool is full or the disk refuses the message.
func (p *Publisher) spoolLocked(data []byte) bool {
	rec := int64(len(p.cfg.Project) + 1 + len(data) + 1)
	if p.spoolBytes+rec > p.cfg.MaxSpoolBytes {
		return false
	}
	if p.cur == nil {
		s, err := p.newSegmentLocked(0)
		if err != nil {
			p.spoolErr = err
			return false
		}
		p.cur = s
		p.segs = append(p.segs, s)
	}
	w := p.cur.w
	w.WriteString(p.cfg.Project)
	w.WriteByte(' ')
	w.Write(data)
	if err := w.WriteByte('\n'); err != nil {
		// The disk is full or gone: the segment is finished as it is.
		p.spoolErr = err
		p.endWriteLocked(p.cur)
		return false
	}
	p.cur.size += rec
	p.spoolBytes += rec
	if w.Available() < w.Size()/2 {
		p.flushLocked(p.cur)
	}
	return true
}

// newSegmentLocked creates an empty segment to write to. Its key orders it
// after every segment so far, or is the given key if not 0.
func (p *Publisher) newSegmentLocked(key int64) (*segment, error) {
	if key == 0 {
		key = max(time.Now().UnixNano(), p.lastKey+1)
		p.lastKey = key
	}
	if err := os.MkdirAll(p.cfg.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("log spool: %w", err)
	}
	path := filepath.Join(p.cfg.SpoolDir, segmentName(key))
	// Created under a name adoptSpool ignores and renamed once locked, so
	// no other publisher can adopt a segment that is being written.
	tmp := filepath.Join(p.cfg.SpoolDir, "."+segmentName(key)+".new")
	wf, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log spool: %w", err)
	}
	rf, err := os.Open(tmp)
	if err == nil {
		err = lockFile(rf)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		wf.Close()
		if rf != nil {
			rf.Close()
		}
		os.Remove(tmp)
		return nil, fmt.Errorf("log spool: %w", err)
	}
	p.live++
	return &segment{path: path, key: key, rf: rf, wf: wf, w: bufio.NewWriterSize(wf, spoolWriteBuf), reading: true}, nil
}

// flushLocked writes a segment's buffered records to its file.
func (p *Publisher) flushLocked(s *segment) {
	if s.w == nil {
		return
	}
	if err := s.w.Flush(); err != nil {
		p.spoolErr = err
		p.endWriteLocked(s)
		return
	}
	s.flushed = s.size
}

// endWriteLocked stops writing s; what reached its file stays to be sent.
func (p *Publisher) endWriteLocked(s *segment) {
	if s.w == nil {
		return
	}
	_ = s.w.Flush()
	if st, err := s.wf.Stat(); err == nil {
		p.spoolBytes += st.Size() - s.size
		s.size = st.Size()
	}
	s.flushed = s.size
	_ = s.wf.Close()
	s.wf, s.w = nil, nil
	if p.cur == s {
		p.cur = nil
	}
}

// spooled is a message read back from the spool.
type spooled struct {
	msg   *nats.Msg
	n     int64 // its first line
	lines int
	off   int64
}

// drain moves the next chunk of the oldest segment into the publish queue.
// It runs on the publisher's goroutine only, and reports whether it did
// anything.
func (p *Publisher) drain() bool {
	p.mu.Lock()
	if len(p.segs) == 0 || p.pendingBytes >= p.cfg.MaxBufferBytes/2 {
		p.mu.Unlock()
		return false
	}
	s := p.segs[0]
	p.flushLocked(s)
	from, limit := s.readOff, s.flushed
	p.mu.Unlock()

	var lines []spooled
	bytesRead := int64(0)
	if limit > from {
		var err error
		lines, bytesRead, err = p.readChunk(s, from, limit)
		if err != nil {
			p.log.Warn("log spool unreadable, skipping the rest of a segment", "segment", s.path, "error", err)
			bytesRead = limit - from
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	s.readOff = from + bytesRead
	for _, l := range lines {
		p.pending[l.msg] = pendingLine{n: l.n, lines: l.lines, size: len(l.msg.Data), seg: s, off: l.off}
		p.pendingBytes += len(l.msg.Data)
		s.unacked++
		p.queue = append(p.queue, l.msg)
	}
	if s.readOff >= s.flushed && s.readOff >= s.size {
		// Caught up with the writer: new lines go to memory again, and
		// the segment is removed once its lines are acknowledged.
		p.endWriteLocked(s)
		s.reading = false
		p.segs = p.segs[1:]
		p.retireLocked(s)
	}
	return len(lines) > 0 || bytesRead > 0 || !s.reading
}

// readChunk reads up to spoolChunkBytes of whole records of s from off
// (below limit) and returns them as messages, with the bytes consumed.
func (p *Publisher) readChunk(s *segment, off, limit int64) ([]spooled, int64, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(s.rf, off, limit-off), 64<<10)
	var out []spooled
	var read int64
	for read < spoolChunkBytes {
		rec, err := r.ReadBytes('\n')
		if err == io.EOF {
			// limit only ever falls on a record's end; a partial record
			// at the end of an adopted file is a torn write: skip it.
			return out, read + int64(len(rec)), nil
		} else if err != nil {
			return out, read, err
		}
		at := off + read
		read += int64(len(rec))
		project, data, ok := bytes.Cut(rec[:len(rec)-1], []byte{' '})
		var dep string
		var first, last int64
		if ok && natslog.ValidToken(string(project)) {
			if lines, err := natslog.DecodeLines(data); err == nil {
				dep, first, last, ok = natslog.LineRange(lines)
			} else {
				ok = false
			}
		}
		if !ok || !natslog.ValidToken(dep) || first < 1 {
			p.log.Warn("log spool: skipping a bad record", "segment", s.path, "offset", at)
			continue
		}
		m := &nats.Msg{Subject: natslog.Subject(string(project), dep), Data: data, Header: nats.Header{jetstream.MsgIDHeader: {natslog.MsgID(dep, first, last)}}}
		out = append(out, spooled{msg: m, n: first, lines: int(last - first + 1), off: at})
	}
	return out, read, nil
}

// retireLocked removes a segment that is fully read and acknowledged.
func (p *Publisher) retireLocked(s *segment) {
	if s.reading || s.unacked > 0 || s.rf == nil {
		return
	}
	removeSegment(s.path)
	p.spoolErr = nil
	signal(p.emptied)
	_ = s.rf.Close()
	s.rf = nil
	p.spoolBytes -= s.size
	p.live--
}

func removeSegment(path string) {
	_ = os.Remove(path)
	_ = os.Remove(path + offSuffix)
}

// persistSpoolLocked runs when Close gives up waiting for NATS: it writes
// the messages still only in memory to a new segment that drains before
// the others, records how far every other segment was sent, and releases
// them for the next publisher. It returns how many lines were kept.
func (p *Publisher) persistSpoolLocked() (int, error) {
	var errs []error
	kept := 0
	// Lines held only in memory, oldest first.
	var mem []*nats.Msg
	for m, pl := range p.pending {
		if pl.seg == nil {
			mem = append(mem, m)
		}
	}
	if len(mem) > 0 {
		slices.SortFunc(mem, func(a, b *nats.Msg) int { return cmpInt(p.pending[a].n, p.pending[b].n) })
		key := time.Now().UnixNano()
		for _, s := range p.liveSegmentsLocked() {
			key = min(key, s.key-1)
		}
		s, err := p.newSegmentLocked(key)
		if err != nil {
			errs = append(errs, err)
		} else {
			for _, m := range mem {
				s.w.WriteString(m.Subject[len(natslog.SubjectPrefix):strings.LastIndexByte(m.Subject, '.')])
				s.w.WriteByte(' ')
				s.w.Write(m.Data)
				s.w.WriteByte('\n')
			}
			if err := s.w.Flush(); err != nil {
				errs = append(errs, err)
			} else {
				for _, m := range mem {
					kept += p.pending[m].lines
				}
			}
			errs = append(errs, s.wf.Sync(), s.wf.Close(), s.rf.Close())
		}
	}
	for _, s := range p.liveSegmentsLocked() {
		resume := s.readOff
		var unsent int64
		for _, pl := range p.pending {
			if pl.seg == s {
				resume = min(resume, pl.off)
			}
		}
		if s.w != nil {
			if err := s.w.Flush(); err != nil {
				errs = append(errs, err)
			}
			errs = append(errs, s.wf.Sync(), s.wf.Close())
			s.w, s.wf = nil, nil
		}
		if st, err := s.rf.Stat(); err == nil {
			unsent = st.Size() - resume
		}
		if resume > 0 {
			errs = append(errs, atomicfile.Write(s.path+offSuffix, []byte(strconv.FormatInt(resume, 10)+"\n"), 0o640))
		}
		errs = append(errs, s.rf.Close())
		s.rf = nil
		p.log.Warn("log lines kept in the spool for the next publisher", "segment", s.path, "bytes", unsent)
	}
	p.cur = nil
	p.segs = nil
	return kept, errors.Join(errs...)
}

// liveSegmentsLocked returns the segments whose files still exist and are
// held by this publisher: being read, or with lines awaiting their ack.
func (p *Publisher) liveSegmentsLocked() []*segment {
	seen := make(map[*segment]bool)
	var out []*segment
	add := func(s *segment) {
		if s != nil && s.rf != nil && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range p.segs {
		add(s)
	}
	for _, pl := range p.pending {
		add(pl.seg)
	}
	add(p.cur)
	slices.SortFunc(out, func(a, b *segment) int { return cmpInt(a.key, b.key) })
	return out
}
