// Package publish is the agent's side of a deployment's public build log:
// a Publisher numbers the lines (1, 2, ... per deployment, continuing
// after those already in the stream), writes each to stdout and publishes
// them to NATS JetStream, several consecutive lines per message, in the
// wire format of package natslog. Publisher.Core makes it the sink of a zap
// logger, so the build log is one zap logger with both sinks.
//
// It does not decide what is public or secret: callers hand it only public
// output (its Redact hook is the last line of defence). It must never block
// a build for long on NATS: when NATS is slow or away, lines wait in a
// bounded memory buffer, then in a bounded spool on the machine's volume
// (spool.go) that outlives the publisher, and they always reach stdout. It
// runs in the agent, so it must import neither nats-server nor any
// server-side package.
package publish

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zapcore"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/natslog"
)

// Config configures a Publisher.
type Config struct {
	// URL is the NATS server to publish to.
	URL string
	// Options are added to the connection's own: how it authenticates
	// (nats.Token with the agent's credential) and its inbox prefix
	// (nats.CustomInboxPrefix with builder.NATSInboxPrefix), where the
	// stream's acks arrive.
	Options []nats.Option
	// Project and Deployment name the subject (see natslog.Subject); both
	// are required and must not contain '.', '*', '>' or spaces.
	Project, Deployment string
	// Stdout, when set, also receives every line as "[step] text\n" (or
	// "text\n" without a step), including lines NATS could not take.
	Stdout io.Writer
	// Logger is the service log that hears of the publisher's own trouble
	// (the log stream disconnected or back, lines spooled, dropped or left
	// for the next publisher), with fields project and deployment; the
	// agent passes its own. Default none. It never receives build output.
	Logger *slog.Logger
	// Redact, when set, masks secrets in every line's text before either
	// sink, and says where Writer may cut a line too long to publish whole
	// (a *redact.Redactor).
	Redact Redactor
	// MaxBufferBytes bounds the published-but-unacknowledged lines held in
	// memory while NATS is slow or away. Past it new lines go to the
	// spool (SpoolDir), or without one only reach Stdout, and one line
	// saying how many were dropped is published once there is room again.
	// Default 64 MiB.
	MaxBufferBytes int
	// SpoolDir, when set, is a directory on the machine's volume where
	// lines wait while NATS is unreachable or the memory buffer is full.
	// They are published from there, in order and with their numbers,
	// when NATS is back. Lines a publisher could not send before Close
	// gave up stay there, and the next publisher started on the same
	// directory (for any deployment) sends them first. Without it such
	// lines are lost to the stream once Close gives up.
	SpoolDir string
	// MaxSpoolBytes bounds the spool on disk; past it lines only reach
	// Stdout and a line saying how many were dropped follows. Default 1 GiB.
	MaxSpoolBytes int64
	// Now is the clock that stamps lines; default time.Now.
	Now func() time.Time
	// MaxLines and MaxBytes, when positive, bound the deployment's log:
	// the lines it may number in all (those already in the stream count)
	// and the bytes of text this Publisher may take. The first line past
	// either bound is replaced by one saying slipway.LogLimitExceeded, the
	// lines after it go nowhere (neither NATS nor Stdout), and OnLimit is
	// called once.
	MaxLines, MaxBytes int64
	// UsedBytes is how much text earlier publishers of the deployment
	// took (the agent's earlier activities; see Bytes): it counts
	// against MaxBytes.
	UsedBytes int64
	// OnLimit, when set, is called once, outside the Publisher's lock,
	// when the log passes MaxLines or MaxBytes: the agent stops the build.
	OnLimit func()
}

const (
	// maxBatchBytes bounds the lines the Publisher puts in one message (a
	// single longer line is a message of its own).
	maxBatchBytes = 64 << 10
	// flushDelay is how long the Publisher lets a message fill with the
	// lines that follow its first one before sending it: the cost of the
	// log path is per message, so at high rates it carries hundreds of
	// lines, and a single line waits at most this long.
	flushDelay = 2 * time.Millisecond

	defaultMaxBufferBytes = 64 << 20
	// maxPendingAcks is how many publishes may await their ack at once.
	maxPendingAcks = 1024
	// ackTimeout is when an unacknowledged publish is sent again.
	ackTimeout = 10 * time.Second
	// retryWaitMin and retryWaitMax bound the pause before a retry round.
	retryWaitMin = 50 * time.Millisecond
	retryWaitMax = 2 * time.Second
)

// Publisher numbers a deployment's log lines (1, 2, ... per deployment,
// continuing after the lines already in the stream) and publishes them to
// NATS JetStream, several consecutive lines per message, and each to
// Stdout.
//
// Writing a line never waits for NATS: a line joins the message being
// filled, which is sealed when it reaches maxBatchBytes or flushDelay
// after its first line, and a background goroutine publishes sealed
// messages asynchronously, republishing (the same message, with the same
// Nats-Msg-Id) any whose ack fails, times out or is lost in a reconnect,
// until Close. With a SpoolDir, lines written while NATS is
// unreachable (or the memory buffer is full) are appended to a file there
// and published from it when NATS is back, and Close leaves what NATS did
// not take for the next Publisher on that directory. A Publisher is safe
// for concurrent use.
type Publisher struct {
	cfg     Config
	log     *slog.Logger
	subject string
	nc      *nats.Conn
	js      jetstream.JetStream

	mu           sync.Mutex
	step         string
	last         int64 // number of the last line accepted
	queue        []*nats.Msg
	retry        []*nats.Msg
	pending      map[*nats.Msg]pendingLine // sealed, not yet acked
	pendingBytes int                       // pending's messages and the open batch

	// The message being filled: "[" and the lines' JSON joined by ",".
	open               []byte
	openFirst, openEnd int64 // its first line, and the one after its last
	openedAt           time.Time
	scratch            []byte // a line's JSON, reused
	dropped            int64
	retryRounds        int // retry rounds since the last ack, for backoff
	closed             bool
	writers            map[*LineWriter]struct{}

	// The spool (spool.go); used only with SpoolDir.
	segs       []*segment // segments with lines still to read, oldest first
	cur        *segment   // the segment new lines are appended to, or nil
	live       int        // segment files held and not yet removed
	spoolBytes int64      // bytes in those files
	lastKey    int64
	spoolErr   error // why the spool last refused a line

	bytes   int64 // text taken, against MaxBytes
	limited bool  // the log passed MaxLines or MaxBytes

	wake    chan struct{} // worker: something to publish
	emptied chan struct{} // Close: pending became empty
	stop    chan struct{}
	done    chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// pendingLine is a published message awaiting its ack.
type pendingLine struct {
	n     int64 // its first line
	lines int   // how many lines it holds
	size  int
	seg   *segment // the spool segment it was read from, if any
	off   int64    // its offset there
}

// New connects to NATS (reconnecting forever, buffering while
// disconnected) and finds the last line number already in the stream for
// the deployment (asking the server, see natslog.LastLineOf), so that a
// retried build continues the numbering. The publisher itself needs no
// JetStream API: it only publishes, with acks on its inbox.
func New(ctx context.Context, cfg Config) (*Publisher, error) {
	if !natslog.ValidToken(cfg.Project) || !natslog.ValidToken(cfg.Deployment) {
		return nil, slipway.Errorf(slipway.EINVALID, "invalid log subject for project %q, deployment %q", cfg.Project, cfg.Deployment)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBufferBytes <= 0 {
		cfg.MaxBufferBytes = defaultMaxBufferBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxSpoolBytes <= 0 {
		cfg.MaxSpoolBytes = defaultMaxSpoolBytes
	}
	p := &Publisher{
		cfg:     cfg,
		log:     cfg.Logger.With("project", cfg.Project, "deployment", cfg.Deployment),
		subject: natslog.Subject(cfg.Project, cfg.Deployment),
		pending: make(map[*nats.Msg]pendingLine),
		bytes:   max(cfg.UsedBytes, 0),
		writers: make(map[*LineWriter]struct{}),
		wake:    make(chan struct{}, 1),
		emptied: make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	nc, err := nats.Connect(cfg.URL, append([]nats.Option{
		nats.Name("slipway-log-publisher " + cfg.Deployment),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectBufSize(8 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			p.log.Warn("log stream disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			p.log.Info("log stream reconnected", "url", nc.ConnectedUrlRedacted())
			signal(p.wake)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			p.log.Warn("log stream error", "error", err)
		}),
	}, cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to log stream %s: %w", cfg.URL, err)
	}
	p.nc = nc
	p.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(maxPendingAcks),
		jetstream.WithPublishAsyncTimeout(ackTimeout),
		jetstream.WithPublishAsyncAckHandler(p.onAck),
		jetstream.WithPublishAsyncErrHandler(p.onErr),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("log stream: %w", err)
	}
	p.last, err = natslog.LastLineOf(ctx, nc, p.js, cfg.Project, cfg.Deployment)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if cfg.SpoolDir != "" {
		// Lines an earlier publisher left behind go first; if some are
		// this deployment's, numbering continues after them.
		spooled, err := p.adoptSpool()
		if err != nil {
			p.releaseSpool()
			nc.Close()
			return nil, err
		}
		p.last = max(p.last, spooled)
	}
	go p.run()
	return p, nil
}

// Redactor masks secrets in text. Masking happens before a line is cut
// into pieces, or where no secret is split: a secret across a cut would
// escape.
type Redactor interface {
	// Redact returns text with every secret masked.
	Redact(text string) string
	// Cut returns where to cut line (longer than max+Overlap bytes) so that
	// the first piece is at most max bytes, no secret spans the cut and no
	// UTF-8 character is split.
	Cut(line []byte, max int) int
	// Overlap is how many bytes past max Cut needs to see.
	Overlap() int
}

// SetStep sets the step that lines without their own step are tagged
// with (a Dockerfile step or a phase such as "fetch").
func (p *Publisher) SetStep(step string) {
	p.mu.Lock()
	p.step = step
	p.mu.Unlock()
}

// Line publishes text as one line on stream ("stdout", "stderr", ...),
// tagged with the current step. Newlines in text start new lines, and a
// text longer than natslog.MaxLineBytes becomes several lines.
func (p *Publisher) Line(stream, text string) {
	text = strings.TrimSuffix(text, "\n")
	for line := range strings.SplitSeq(text, "\n") {
		p.emit(stream, "", strings.TrimSuffix(line, "\r"))
	}
}

// emit turns text (one line, no newline) into one or more numbered lines.
func (p *Publisher) emit(stream, step, text string) {
	text = strings.ToValidUTF8(text, "\uFFFD")
	if p.cfg.Redact != nil {
		text = strings.ToValidUTF8(p.cfg.Redact.Redact(text), "\uFFFD")
	}
	parts := []string{text}
	if len(text) > natslog.MaxLineBytes {
		parts = splitText(text, natslog.MaxLineBytes)
	}
	p.mu.Lock()
	if step == "" {
		step = p.step
	}
	now := p.cfg.Now().UTC()
	startedDropping, limitHit := false, false
	for _, part := range parts {
		if over, first := p.overLimitLocked(len(part)); over {
			if first && !p.closed {
				notice := p.limitNotice()
				p.queueLocked(now, "stderr", step, notice, true)
				p.stdoutLocked(step, notice)
				limitHit = true
			}
			break
		}
		startedDropping = p.acceptLocked(now, stream, step, part) || startedDropping
		p.stdoutLocked(step, part)
	}
	buffered := p.pendingBytes
	p.mu.Unlock()
	// Log outside the lock: the Logger may well write through this
	// Publisher (see Core).
	if startedDropping {
		p.log.Warn("log stream buffer full: dropping lines until NATS catches up", "bufferBytes", buffered)
	}
	if limitHit {
		p.log.Warn("build log passed its limit: lines past it are not published", "maxLines", p.cfg.MaxLines, "maxBytes", p.cfg.MaxBytes)
		if p.cfg.OnLimit != nil {
			p.cfg.OnLimit()
		}
	}
}

// overLimitLocked counts a line of n bytes against MaxLines and MaxBytes.
// It reports whether the line is past them, and whether it is the first
// such line.
func (p *Publisher) overLimitLocked(n int) (over, first bool) {
	if p.limited {
		return true, false
	}
	if p.cfg.MaxLines > 0 && p.last >= p.cfg.MaxLines || p.cfg.MaxBytes > 0 && p.bytes+int64(n) > p.cfg.MaxBytes {
		p.limited = true
		return true, true
	}
	p.bytes += int64(n)
	return false, false
}

// limitNotice is the last line of a log that passed its limit.
func (p *Publisher) limitNotice() string {
	l := slipway.LogLimit{MaxLines: p.cfg.MaxLines, MaxBytes: p.cfg.MaxBytes}
	return fmt.Sprintf("[slipway] %s: this deployment's log reached its limit (%s); the build is stopped and its further output is not kept", slipway.LogLimitExceeded, l)
}

// Bytes returns how much text the deployment's log took so far:
// Config.UsedBytes and this Publisher's lines.
func (p *Publisher) Bytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes
}

// LimitExceeded reports whether the log passed MaxLines or MaxBytes.
func (p *Publisher) LimitExceeded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limited
}

// acceptLocked numbers a line and queues it for publishing, unless the
// publisher is closed or its buffer is full. It reports whether this line
// started a run of dropped lines.
func (p *Publisher) acceptLocked(now time.Time, stream, step, text string) (startedDropping bool) {
	if p.closed {
		return false
	}
	if p.dropped > 0 && p.roomLocked() {
		n := p.dropped
		p.dropped = 0
		p.queueLocked(now, "stderr", step, droppedNotice(n), true)
	}
	if p.dropped > 0 || !p.queueLocked(now, stream, step, text, false) {
		p.dropped++
		return p.dropped == 1
	}
	return false
}

// roomLocked reports whether there is room again after lines were
// dropped: the spool or the memory buffer is at most half full. The
// message being filled counts against the spool too: it goes there when
// sealed, and it can hold more than half the spool's bound (a message is
// up to 64 KiB), so leaving it out would let every other line through as
// a one-line "dropped" notice.
func (p *Publisher) roomLocked() bool {
	if p.cfg.SpoolDir != "" && p.spoolErr == nil && p.spoolBytes+int64(len(p.open)) < p.cfg.MaxSpoolBytes/2 {
		return true
	}
	return p.pendingBytes < p.cfg.MaxBufferBytes/2 && (p.cfg.SpoolDir == "" || len(p.segs) == 0 && p.nc.IsConnected())
}

func droppedNotice(n int64) string {
	return fmt.Sprintf("[slipway] %d log lines were not published: the log stream was unavailable", n)
}

// queueLocked numbers a line and adds it to the message being filled.
// It reports false if there is no room for the line and force is false:
// the line would go to the spool (NATS is away, the memory buffer is full
// or older lines wait in the spool) and the spool is full, or to memory
// and the memory buffer is full.
func (p *Publisher) queueLocked(now time.Time, stream, step, text string, force bool) bool {
	l := slipway.LogLine{Deployment: p.cfg.Deployment, N: p.last + 1, Time: now, Stream: stream, Step: step, Text: text}
	data, ok := natslog.AppendLineJSON(p.scratch[:0], &l)
	p.scratch = data
	if !ok { // only a clock outside years 0-9999 gets here; count it as dropped
		return false
	}
	if !force {
		full := p.pendingBytes > 0 && p.pendingBytes+len(data) > p.cfg.MaxBufferBytes
		if p.spoolingLocked(full) {
			if p.spoolBytes+int64(len(p.cfg.Project)+len(p.open)+len(data)+3) > p.cfg.MaxSpoolBytes {
				return false
			}
		} else if full {
			return false
		}
	}
	if len(p.open) > 0 && len(p.open)+1+len(data)+1 > maxBatchBytes {
		p.sealLocked()
	}
	if len(p.open) == 0 {
		if p.open == nil {
			p.open = make([]byte, 0, maxBatchBytes+1)
		}
		p.open = append(p.open, '[')
		p.openFirst = l.N
		p.openedAt = time.Now()
		p.pendingBytes++
		signal(p.wake) // to seal it flushDelay from now
	} else {
		p.open = append(p.open, ',')
		p.pendingBytes++
	}
	p.open = append(p.open, data...)
	p.pendingBytes += len(data)
	p.openEnd = l.N + 1
	p.last = l.N
	if len(p.open) >= maxBatchBytes {
		p.sealLocked()
	}
	return true
}

// spoolingLocked reports whether a message goes to the spool rather than
// to memory: NATS is away, older lines wait in the spool, or the memory
// buffer is full (full).
func (p *Publisher) spoolingLocked(full bool) bool {
	return p.cfg.SpoolDir != "" && (full || p.cur != nil || len(p.segs) > 0 || !p.nc.IsConnected())
}

// sealLocked ends the message being filled and queues it for publishing,
// or appends it to the spool (see spoolingLocked). A message the spool
// refuses (its disk failed) stays in memory: its lines are numbered
// already, and dropping them would leave a gap. So memory can exceed
// MaxBufferBytes by one message.
func (p *Publisher) sealLocked() {
	if len(p.open) == 0 {
		return
	}
	first, last := p.openFirst, p.openEnd-1
	openBytes := len(p.open)
	// The message gets a copy of its exact size; the buffer is reused.
	var data []byte
	if first == last {
		data = slices.Clone(p.open[1:]) // one line: the line itself, as earlier versions wrote it
	} else {
		data = append(append(make([]byte, 0, openBytes+1), p.open...), ']')
	}
	p.open = p.open[:0]
	memBytes := p.pendingBytes - openBytes
	full := memBytes > 0 && memBytes+len(data) > p.cfg.MaxBufferBytes
	if p.spoolingLocked(full) && p.spoolLocked(data) {
		p.pendingBytes -= openBytes
		signal(p.wake)
		return
	}
	m := &nats.Msg{Subject: p.subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: {natslog.MsgID(p.cfg.Deployment, first, last)}}}
	p.pending[m] = pendingLine{n: first, lines: int(last - first + 1), size: len(data)}
	p.pendingBytes += len(data) - openBytes
	p.queue = append(p.queue, m)
	signal(p.wake)
}

func (p *Publisher) stdoutLocked(step, text string) {
	if p.cfg.Stdout == nil {
		return
	}
	var b strings.Builder
	if step != "" {
		b.Grow(len(step) + len(text) + 4)
		b.WriteByte('[')
		b.WriteString(step)
		b.WriteString("] ")
	}
	b.WriteString(text)
	b.WriteByte('\n')
	// A failing stdout must not fail the build; the line is still published.
	_, _ = io.WriteString(p.cfg.Stdout, b.String())
}

// signal wakes whoever waits on ch without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// onAck runs on NATS's ack goroutine when the stream stored a line (or
// reports it as a duplicate, which means stored earlier).
func (p *Publisher) onAck(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl, ok := p.pending[m]
	if ok {
		delete(p.pending, m)
		p.pendingBytes -= pl.size
	}
	p.retryRounds = 0
	if ok && pl.seg != nil {
		pl.seg.unacked--
		p.retireLocked(pl.seg)
	}
	if len(p.pending) == 0 {
		signal(p.emptied)
	}
	if len(p.segs) > 0 {
		signal(p.wake) // the buffer has room: the spool may drain
	}
}

// onErr runs when a publish failed, timed out, or was cut by a reconnect:
// the line goes back for another try.
func (p *Publisher) onErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	p.mu.Lock()
	pl, ok := p.pending[m]
	if ok {
		p.retry = append(p.retry, m)
		signal(p.wake)
	}
	p.mu.Unlock()
	if ok {
		p.log.Debug("log lines publish failed, will retry", "from", pl.n, "lines", pl.lines, "error", err)
	}
}

// run publishes queued messages, retried ones first (in line order), and
// seals the message being filled flushDelay after its first line, until
// Close stops it.
func (p *Publisher) run() {
	defer close(p.done)
	for {
		batch, retrying, rounds, sealIn := p.nextBatch()
		if len(batch) == 0 {
			if p.nc.IsConnected() && p.drain() {
				continue
			}
			if !p.idle(sealIn) {
				return
			}
			continue
		}
		if retrying && !p.sleep(backoff(rounds)) {
			return
		}
		// While disconnected, lines wait here rather than piling up in the
		// connection's reconnect buffer, where they would time out and be
		// buffered again.
		for !p.nc.IsConnected() {
			if !p.sleep(retryWaitMin * 4) {
				return
			}
		}
		for i, m := range batch {
			if _, err := p.js.PublishMsgAsync(m); err != nil {
				// Too many lines await their ack, or the connection just
				// dropped: put the rest back in front, in order.
				p.mu.Lock()
				if retrying {
					p.retry = append(p.retry, batch[i:]...)
				} else {
					p.queue = append(batch[i:], p.queue...)
				}
				p.mu.Unlock()
				p.log.Debug("log line publish refused, will retry", "lines", len(batch)-i, "error", err)
				if !p.sleep(retryWaitMin) {
					return
				}
				break
			}
		}
	}
}

// nextBatch takes the messages run publishes next: the retried ones still
// unacked, in line order (retrying, and the count of retry rounds so far),
// or else the queue, after sealing the message being filled if it is due.
// sealIn is how long until the message being filled is due, if there is
// one.
func (p *Publisher) nextBatch() (batch []*nats.Msg, retrying bool, rounds int, sealIn time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.retry {
		if _, ok := p.pending[m]; ok { // else acked meanwhile
			batch = append(batch, m)
		}
	}
	p.retry = nil
	retrying = len(batch) > 0
	if retrying {
		sort.Slice(batch, func(i, j int) bool { return p.pending[batch[i]].n < p.pending[batch[j]].n })
		p.retryRounds++
	} else {
		if len(p.queue) == 0 && len(p.open) > 0 && time.Since(p.openedAt) >= flushDelay {
			p.sealLocked()
		}
		batch, p.queue = p.queue, nil
	}
	if len(p.open) > 0 {
		sealIn = max(flushDelay-time.Since(p.openedAt), time.Microsecond)
	}
	return batch, retrying, p.retryRounds, sealIn
}

// idle waits, with nothing to publish, for a wake-up, for the message being
// filled to be due (sealIn, if not 0) and, while lines wait in the spool,
// for a while in case a wake-up was missed. It returns false if Close
// stopped the publisher.
func (p *Publisher) idle(sealIn time.Duration) bool {
	var poll <-chan time.Time
	var t *time.Timer
	if sealIn > 0 {
		t = time.NewTimer(sealIn)
		poll = t.C
	} else if p.spooling() {
		t = time.NewTimer(retryWaitMax / 4)
		poll = t.C
	}
	if t != nil {
		defer t.Stop()
	}
	select {
	case <-p.wake:
	case <-poll:
	case <-p.stop:
		return false
	}
	return true
}

func backoff(rounds int) time.Duration {
	d := retryWaitMin
	for i := 1; i < rounds && d < retryWaitMax; i++ {
		d *= 2
	}
	return min(d, retryWaitMax)
}

// sleep waits d, or returns false if the publisher stops first.
func (p *Publisher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.stop:
		return false
	}
}

// Writer returns an io.Writer (a *LineWriter) that turns what is written
// into lines on stream: it splits at "\n" (dropping a "\r" before it),
// cuts lines longer than natslog.MaxLineBytes (where no secret is split,
// see Config.Redact), and tags them with step, or with
// the current step (SetStep) when step is "". A trailing partial line is
// published on the writer's Flush or Close, or by the Publisher's Close.
func (p *Publisher) Writer(stream, step string) io.Writer {
	w := &LineWriter{p: p, stream: stream, step: step}
	p.mu.Lock()
	p.writers[w] = struct{}{}
	p.mu.Unlock()
	return w
}

// LineWriter is the io.Writer returned by Publisher.Writer. It is safe for
// concurrent use; Write never fails.
type LineWriter struct {
	p      *Publisher
	stream string
	step   string

	mu  sync.Mutex
	buf []byte
}

// Write publishes every complete line in b and keeps the rest for later.
func (w *LineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	rest := w.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		w.p.emit(w.stream, w.step, string(bytes.TrimSuffix(rest[:i], []byte{'\r'})))
		rest = rest[i+1:]
	}
	for len(rest) > natslog.MaxLineBytes+w.p.overlap() {
		cut := w.p.cut(rest, natslog.MaxLineBytes)
		w.p.emit(w.stream, w.step, string(rest[:cut]))
		rest = rest[cut:]
	}
	w.buf = w.buf[:copy(w.buf, rest)]
	return len(b), nil
}

// overlap is how far past natslog.MaxLineBytes cut needs to see.
func (p *Publisher) overlap() int {
	if p.cfg.Redact == nil {
		return 0
	}
	return p.cfg.Redact.Overlap()
}

// cut returns where to cut line, longer than max, without splitting a
// secret or a character.
func (p *Publisher) cut(line []byte, max int) int {
	if p.cfg.Redact == nil {
		return runeCut(line, max)
	}
	return p.cfg.Redact.Cut(line, max)
}

// Flush publishes a trailing partial line, if any.
func (w *LineWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.p.emit(w.stream, w.step, string(bytes.TrimSuffix(w.buf, []byte{'\r'})))
		w.buf = w.buf[:0]
	}
	return nil
}

// Close flushes the writer. Writing after Close still works, but a
// partial line is then only published by another Flush or Close.
func (w *LineWriter) Close() error {
	err := w.Flush()
	w.p.mu.Lock()
	delete(w.p.writers, w)
	w.p.mu.Unlock()
	return err
}

// Close flushes every open Writer, waits until NATS acknowledged every line
// (including those in the spool) or ctx is done, and closes the connection.
// When ctx ends first, the lines not acknowledged are an error without a
// SpoolDir; with one they are kept in the spool for the next Publisher and
// only failing to write them there is an error. Lines written after Close
// only reach Stdout. It is safe to call more than once; later calls return
// the first call's result.
func (p *Publisher) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { p.closeErr = p.close(ctx) })
	return p.closeErr
}

func (p *Publisher) close(ctx context.Context) error {
	p.mu.Lock()
	writers := make([]*LineWriter, 0, len(p.writers))
	for w := range p.writers {
		writers = append(writers, w)
	}
	p.mu.Unlock()
	// Flush in creation order is unknowable from a map; any order is fine
	// because each writer's lines keep their own order.
	for _, w := range writers {
		_ = w.Close()
	}

	p.mu.Lock()
	if p.dropped > 0 {
		n := p.dropped
		p.dropped = 0
		p.queueLocked(p.cfg.Now().UTC(), "stderr", p.step, droppedNotice(n), true)
	}
	p.closed = true
	p.sealLocked()
	p.mu.Unlock()

	var err error
	for {
		p.mu.Lock()
		left := len(p.pending) + p.live
		p.mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-p.emptied:
			continue
		case <-ctx.Done():
		}
		close(p.stop)
		<-p.done
		p.mu.Lock()
		left, first := 0, int64(0)
		for _, pl := range p.pending {
			left += pl.lines
			if first == 0 || pl.n < first {
				first = pl.n
			}
		}
		if p.cfg.SpoolDir != "" {
			// Everything not acknowledged stays on disk for the next
			// publisher; only failing to keep it is an error.
			kept, perr := p.persistSpoolLocked()
			p.mu.Unlock()
			p.log.Warn("NATS did not take every log line before close: the rest stays in the spool",
				"spool", p.cfg.SpoolDir, "memoryLines", kept, "unacknowledged", left)
			if perr != nil {
				err = fmt.Errorf("close log publisher for %s: keep unsent lines in spool %s: %w", p.cfg.Deployment, p.cfg.SpoolDir, perr)
			}
		} else {
			p.mu.Unlock()
			if left > 0 {
				err = fmt.Errorf("close log publisher for %s: %d lines (from line %d) not acknowledged by NATS: %w", p.cfg.Deployment, left, first, ctx.Err())
				p.log.Warn("log lines not acknowledged at close", "lines", left, "firstLine", first)
			}
		}
		p.nc.Close()
		return err
	}
	close(p.stop)
	<-p.done
	p.nc.Close()
	return nil
}

// spooling reports whether lines wait in the spool.
func (p *Publisher) spooling() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.segs) > 0
}

// releaseSpool lets go of the segments adopted by a publisher that failed
// to start, for the next one.
func (p *Publisher) releaseSpool() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.segs {
		if s.rf != nil {
			_ = s.rf.Close()
		}
	}
	p.segs = nil
}

// LastLine returns the number of the last line accepted for publishing
// (0 before the first line of a deployment).
func (p *Publisher) LastLine() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Core returns a zapcore.Core that publishes each entry at or above level
// as a line, so zap.New(p.Core(level)) is the one logger with both sinks
// (NATS and Stdout). The entry's message is the text; fields "stream"
// (default "stdout") and "step" (default the current step) are taken out,
// other fields are appended as " key=value".
func (p *Publisher) Core(level zapcore.LevelEnabler) zapcore.Core {
	return &lineCore{LevelEnabler: level, p: p}
}

type lineCore struct {
	zapcore.LevelEnabler
	p      *Publisher
	fields []zapcore.Field
}

func (c *lineCore) With(fields []zapcore.Field) zapcore.Core {
	return &lineCore{LevelEnabler: c.LevelEnabler, p: c.p, fields: append(slices.Clip(c.fields), fields...)}
}

func (c *lineCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *lineCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	stream, step := "stdout", ""
	if s, ok := enc.Fields["stream"].(string); ok {
		stream = s
		delete(enc.Fields, "stream")
	}
	if s, ok := enc.Fields["step"].(string); ok {
		step = s
		delete(enc.Fields, "step")
	}
	text := e.Message
	if len(enc.Fields) > 0 {
		keys := make([]string, 0, len(enc.Fields))
		for k := range enc.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString(text)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%v", k, enc.Fields[k])
		}
		text = b.String()
	}
	for line := range strings.SplitSeq(text, "\n") {
		c.p.emit(stream, step, strings.TrimSuffix(line, "\r"))
	}
	return nil
}

func (c *lineCore) Sync() error { return nil }
