// Package archive is the server's side of a deployment's public build log:
// the Archiver copies the lines of the log stream (wire format in package
// natslog) into the slipway.Store through a durable consumer, and the
// Watcher lets the API follow a deployment live: its stored lines, then the
// stream's, with no gap and no duplicate, until its log is complete.
//
// It reads the stream and never publishes log lines (the agent does, with
// package natslog/publish); nothing on the agent's side may import it.
package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/natslog"
)

// Config configures an Archiver.
type Config struct {
	// URL is the NATS server holding the log stream.
	URL string
	// Options are added to the connection's own: how it authenticates
	// (nats.Token with the server's credential, nats.UserCredentials).
	Options []nats.Option
	// Store receives the lines (AppendLogLines must ignore lines it
	// already has: redelivered messages are written again).
	Store slipway.Store
	// Logger reports bad messages and store failures; default no-op.
	Logger *slog.Logger
	// Durable names the consumer whose position survives restarts;
	// default "slipway-archiver".
	Durable string
	// BatchSize is about the most lines written to the store at once (a
	// write takes whole messages, so the last one may go past it), and the
	// most messages fetched ahead; default 1024.
	BatchSize int
	// AckWait is how long NATS waits for the archiver to acknowledge a
	// line before delivering it again (after a crash or a NATS restart
	// cut the delivery); default 30s.
	AckWait time.Duration
	// MaxAttempts is how often a line the store keeps failing to take is
	// tried (with growing pauses up to a minute) before it is given up and
	// logged; default 30.
	MaxAttempts int
}

const (
	defaultDurable     = "slipway-archiver"
	defaultBatchSize   = 1024
	defaultMaxAttempts = 30
	defaultAckWait     = 30 * time.Second
	maxNakDelay        = time.Minute
)

// Archiver copies log lines from the stream into the store through a
// durable pull consumer: it acknowledges a line only after the store has
// it, so a crash or restart redelivers at most the unacknowledged lines,
// which the store ignores. Messages that are not log lines are logged and
// terminated, never retried.
type Archiver struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	cc     jetstream.ConsumeContext
	msgs   chan jetstream.Msg
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	written chan struct{} // closed and replaced after every store write

	// projects caches deployments' projects (ownedBySubject); only run
	// uses it.
	projects map[string]string
}

// Start connects to NATS, creates the log stream if it is missing,
// creates or updates the durable consumer and starts archiving. ctx bounds
// the start only; the archiver runs until Stop.
func Start(ctx context.Context, cfg Config) (*Archiver, error) {
	if cfg.Store == nil {
		return nil, errors.New("start log archiver: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Durable == "" {
		cfg.Durable = defaultDurable
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = defaultBatchSize
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = defaultAckWait
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = defaultMaxAttempts
	}
	a := &Archiver{
		cfg:      cfg,
		log:      cfg.Logger.With("consumer", cfg.Durable),
		msgs:     make(chan jetstream.Msg, 256), // messages handed over, not yet archived
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		written:  make(chan struct{}),
		projects: make(map[string]string),
	}
	nc, err := nats.Connect(cfg.URL, append([]nats.Option{
		nats.Name("slipway-log-archiver"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			a.log.Warn("log archiver disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { a.log.Info("log archiver reconnected") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			a.log.Warn("log archiver nats error", "error", err)
		}),
	}, cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("start log archiver: connect to %s: %w", cfg.URL, err)
	}
	a.nc = nc
	if err := a.start(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("start log archiver: %w", err)
	}
	return a, nil
}

func (a *Archiver) start(ctx context.Context) error {
	js, err := jetstream.New(a.nc)
	if err != nil {
		return err
	}
	st, err := natslog.OpenStream(ctx, js)
	if err != nil {
		return err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       a.cfg.Durable,
		Description:   "copies log lines into the Slipway store",
		FilterSubject: natslog.StreamSubjects,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       a.cfg.AckWait,
		MaxDeliver:    -1,                  // the archiver gives up on a line itself (MaxAttempts), and logs it
		MaxAckPending: 4 * a.cfg.BatchSize, // messages: lines, or batches of lines
	})
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", a.cfg.Durable, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.cc, err = cons.Consume(func(m jetstream.Msg) {
		select {
		case <-a.stop:
			return
		default:
		}
		select {
		case a.msgs <- m:
		case <-a.stop:
		}
	},
		jetstream.PullMaxBytes(pullMaxBytes),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			a.log.Debug("log archiver consume", "error", err)
		}),
	)
	if err != nil {
		cancel()
		return fmt.Errorf("consume %s: %w", a.cfg.Durable, err)
	}
	if err := a.answerLastLine(); err != nil {
		a.cc.Stop()
		cancel()
		return err
	}
	go a.run(runCtx)
	return nil
}

// answerLastLine answers the publishers' questions on
// natslog.LastLineSubject with LastStreamLine: an agent may not use
// JetStream's API itself. Several archivers share the questions (a queue
// group); the connection's close ends the subscription.
func (a *Archiver) answerLastLine() error {
	_, err := a.nc.QueueSubscribe(natslog.LastLineSubject("*", "*"), "slipway-log-last-line", func(m *nats.Msg) {
		project, deployment, _ := strings.Cut(strings.TrimPrefix(m.Subject, natslog.LastLinePrefix), ".")
		ctx, cancel := context.WithTimeout(context.Background(), natslog.LastLineTimeout)
		defer cancel()
		var rep natslog.LastLineReply
		var err error
		if rep.Last, err = a.LastStreamLine(ctx, project, deployment); err != nil {
			a.log.Warn("last log line", "project", project, "deployment", deployment, "error", err)
			rep = natslog.LastLineReply{Error: slipway.ErrorMessage(err)}
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
	if err == nil {
		// Registered with the server before Start returns: a publisher
		// asking right after would otherwise find no responder and fall
		// back to JetStream's API, which an agent may not use.
		err = a.nc.FlushTimeout(10 * time.Second)
	}
	if err != nil {
		return fmt.Errorf("answer last-line questions: %w", err)
	}
	return nil
}

// run gathers what has arrived into batches and archives them.
func (a *Archiver) run(ctx context.Context) {
	defer close(a.done)
	for {
		var batch []msgLines
		lines := 0
		select {
		case m := <-a.msgs:
			batch, lines = a.decode(ctx, batch, m, lines)
		case <-a.stop:
			return
		}
	gather:
		for lines < a.cfg.BatchSize {
			select {
			case m := <-a.msgs:
				batch, lines = a.decode(ctx, batch, m, lines)
			default:
				break gather
			}
		}
		a.archive(ctx, batch, lines)
	}
}

// msgLines is a message of the stream and its lines.
type msgLines struct {
	m     jetstream.Msg
	lines []slipway.LogLine
}

// decode adds m's valid lines to batch, or terminates m if it holds none.
// n counts the lines in batch.
func (a *Archiver) decode(ctx context.Context, batch []msgLines, m jetstream.Msg, n int) ([]msgLines, int) {
	lines, err := natslog.DecodeLines(m.Data())
	if err != nil {
		a.terminate(m, "not JSON log lines: "+err.Error())
		return batch, n
	}
	valid := lines[:0]
	for i := range lines {
		if why := natslog.CheckLine(&lines[i], m.Subject()); why != "" {
			a.log.Error("archive log line: bad line, dropping it", "subject", m.Subject(), "n", lines[i].N, "reason", why)
			continue
		}
		valid = append(valid, lines[i])
	}
	if len(valid) == 0 {
		a.terminate(m, "no valid log line")
		return batch, n
	}
	// An agent may publish on its own project's subjects only, so a line
	// of another project's deployment there is forged.
	switch ok, err := a.ownedBySubject(ctx, valid[0].Deployment, m.Subject()); {
	case err != nil:
		a.log.Warn("archive log lines: cannot check the deployment's project, will retry", "subject", m.Subject(), "error", err)
		_ = m.NakWithDelay(time.Second)
		return batch, n
	case !ok:
		a.terminate(m, fmt.Sprintf("deployment %s is not one of the project's of subject %s", valid[0].Deployment, m.Subject()))
		return batch, n
	}
	return append(batch, msgLines{m, valid}), n + len(valid)
}

// maxProjectsCached bounds the archiver's cache of deployments' projects.
const maxProjectsCached = 4096

// ownedBySubject reports whether deployment belongs to the project of the
// log subject it came on (true for a deployment the store does not know:
// the store refuses its lines anyway). A deployment never changes project,
// so the answer is cached.
func (a *Archiver) ownedBySubject(ctx context.Context, deployment, subject string) (bool, error) {
	project, _, _ := strings.Cut(strings.TrimPrefix(subject, natslog.SubjectPrefix), ".")
	owner, ok := a.projects[deployment]
	if !ok {
		d, err := a.cfg.Store.Deployment(ctx, deployment)
		if slipway.ErrorCode(err) == slipway.ENOTFOUND {
			return true, nil
		} else if err != nil {
			return false, err
		}
		if len(a.projects) >= maxProjectsCached {
			clear(a.projects)
		}
		owner = d.Project
		a.projects[deployment] = owner
	}
	return owner == project, nil
}

// archive writes one batch (n lines) to the store and acknowledges the
// messages written.
func (a *Archiver) archive(ctx context.Context, batch []msgLines, n int) {
	if len(batch) == 0 {
		return
	}
	lines := batch[0].lines
	if len(batch) > 1 {
		lines = make([]slipway.LogLine, 0, n)
		for _, b := range batch {
			lines = append(lines, b.lines...)
		}
	}
	err := a.cfg.Store.AppendLogLines(ctx, lines)
	if err == nil {
		a.ack(batch)
		a.notify()
		return
	}
	if ctx.Err() != nil {
		nak(batch) // stopping: let the next archiver have them at once
		return
	}
	a.log.Warn("archive log lines: store write failed, trying message by message", "lines", len(lines), "messages", len(batch), "error", err)
	// One bad message must not hold back the others: retry them one by
	// one and send back (or give up) only those that fail.
	wrote := false
	for i, b := range batch {
		if err := a.cfg.Store.AppendLogLines(ctx, b.lines); err != nil {
			if ctx.Err() != nil {
				nak(batch[i:])
				break
			}
			a.retryLater(b.m, b.lines[0], err)
			continue
		}
		a.ack(batch[i : i+1])
		wrote = true
	}
	if wrote {
		a.notify()
	}
}

// retryLater returns a message whose lines the store refused to the
// stream, with a growing delay, or gives it up when the error is permanent
// or it was tried MaxAttempts times. l is its first line.
func (a *Archiver) retryLater(m jetstream.Msg, l slipway.LogLine, err error) {
	attempts := uint64(1)
	if md, mdErr := m.Metadata(); mdErr == nil {
		attempts = md.NumDelivered
	}
	fields := []any{"deployment", l.Deployment, "n", l.N, "attempts", attempts, "error", err}
	switch code := slipway.ErrorCode(err); {
	case code == slipway.EINVALID || code == slipway.ENOTFOUND:
		a.log.Error("archive log line: store refused it, giving up", fields...)
		_ = m.Term()
	case attempts >= uint64(a.cfg.MaxAttempts):
		a.log.Error("archive log line: store kept failing, giving up", fields...)
		_ = m.Term()
	default:
		delay := min(time.Second<<min(attempts-1, 6), maxNakDelay)
		a.log.Warn("archive log line: store failed, will retry", append(fields, "delay", delay)...)
		_ = m.NakWithDelay(delay)
	}
}

func (a *Archiver) terminate(m jetstream.Msg, why string) {
	a.log.Error("archive log line: bad message, dropping it", "subject", m.Subject(), "reason", why)
	if err := m.Term(); err != nil {
		a.log.Warn("terminate bad log message", "error", err)
	}
}

func (a *Archiver) ack(msgs []msgLines) {
	for _, b := range msgs {
		if err := b.m.Ack(); err != nil {
			// The line is stored; a redelivery is harmless.
			a.log.Debug("ack log line", "error", err)
		}
	}
}

// nak hands msgs back for immediate redelivery.
func nak(msgs []msgLines) {
	for _, b := range msgs {
		_ = b.m.Nak()
	}
}

// notify wakes WaitFor callers after a store write.
func (a *Archiver) notify() {
	a.mu.Lock()
	close(a.written)
	a.written = make(chan struct{})
	a.mu.Unlock()
}

// WaitFor blocks until every line 1..n of deployment is in the store
// (archived by this or an earlier archiver), ctx is done, or the archiver
// stops. Lines can arrive out of order (a line whose delivery was cut by a
// NATS restart comes again after AckWait), so line n alone is not enough
// to call a log complete.
func (a *Archiver) WaitFor(ctx context.Context, deployment string, n int64) error {
	var have int64 // lines 1..have are stored
	for {
		a.mu.Lock()
		written := a.written
		a.mu.Unlock()
		lines, err := a.cfg.Store.LogLines(ctx, deployment, have+1, 0)
		if err != nil {
			return fmt.Errorf("wait for log line %s:%d: %w", deployment, n, err)
		}
		for _, l := range lines {
			if l.N != have+1 {
				break
			}
			have++
		}
		if have >= n {
			return nil
		}
		select {
		case <-written:
		case <-ctx.Done():
			return fmt.Errorf("wait for log line %s:%d (have 1..%d): %w", deployment, n, have, ctx.Err())
		case <-a.done:
			return fmt.Errorf("wait for log line %s:%d (have 1..%d): archiver stopped", deployment, n, have)
		}
	}
}

// LastStreamLine returns the number of the deployment's last line in the
// stream (0 when it has none): the line WaitFor must reach for the store
// to hold everything NATS took.
func (a *Archiver) LastStreamLine(ctx context.Context, project, deployment string) (int64, error) {
	if !natslog.ValidToken(project) || !natslog.ValidToken(deployment) {
		return 0, slipway.Errorf(slipway.EINVALID, "invalid log subject for project %q, deployment %q", project, deployment)
	}
	js, err := jetstream.New(a.nc)
	if err != nil {
		return 0, err
	}
	return natslog.LastLine(ctx, js, natslog.Subject(project, deployment))
}

// Stop stops consuming, abandons a store write in progress (its lines are
// redelivered later), sends the pending acks and closes the connection. It
// waits for all of that and is safe to call more than once.
func (a *Archiver) Stop() {
	a.once.Do(func() {
		a.cc.Stop()
		close(a.stop)
		a.cancel()
		<-a.done
		for {
			select {
			case m := <-a.msgs:
				_ = m.Nak()
				continue
			default:
			}
			break
		}
		if err := a.nc.FlushTimeout(2 * time.Second); err != nil {
			a.log.Debug("flush acks at stop", "error", err)
		}
		a.nc.Close()
	})
}
