package natslog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
)

// ArchiverConfig configures an Archiver.
type ArchiverConfig struct {
	// URL is the NATS server holding the log stream.
	URL string
	// Store receives the lines (AppendLogLines must ignore lines it
	// already has: redelivered messages are written again).
	Store slipway.Store
	// Logger reports bad messages and store failures; default no-op.
	Logger *slog.Logger
	// Durable names the consumer whose position survives restarts;
	// default "slipway-archiver".
	Durable string
	// BatchSize is the most lines written to the store at once; default 256.
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
	defaultBatchSize   = 256
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
	cfg    ArchiverConfig
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
}

// StartArchiver connects to NATS, creates the log stream if it is missing,
// creates or updates the durable consumer and starts archiving. ctx bounds
// the start only; the archiver runs until Stop.
func StartArchiver(ctx context.Context, cfg ArchiverConfig) (*Archiver, error) {
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
		cfg:     cfg,
		log:     cfg.Logger.With("consumer", cfg.Durable),
		msgs:    make(chan jetstream.Msg, cfg.BatchSize),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		written: make(chan struct{}),
	}
	nc, err := nats.Connect(cfg.URL,
		nats.Name("slipway-log-archiver"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			a.log.Warn("log archiver disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { a.log.Info("log archiver reconnected") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			a.log.Warn("log archiver nats error", "error", err)
		}),
	)
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
	st, err := ensureStreamExists(ctx, js)
	if err != nil {
		return err
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       a.cfg.Durable,
		Description:   "copies log lines into the Slipway store",
		FilterSubject: StreamSubjects,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       a.cfg.AckWait,
		MaxDeliver:    -1, // the archiver gives up on a line itself (MaxAttempts), and logs it
		MaxAckPending: 4 * a.cfg.BatchSize,
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
		jetstream.PullMaxMessages(a.cfg.BatchSize),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			a.log.Debug("log archiver consume", "error", err)
		}),
	)
	if err != nil {
		cancel()
		return fmt.Errorf("consume %s: %w", a.cfg.Durable, err)
	}
	go a.run(runCtx)
	return nil
}

// run gathers what has arrived into batches and archives them.
func (a *Archiver) run(ctx context.Context) {
	defer close(a.done)
	for {
		var batch []jetstream.Msg
		select {
		case m := <-a.msgs:
			batch = append(batch, m)
		case <-a.stop:
			return
		}
	gather:
		for len(batch) < a.cfg.BatchSize {
			select {
			case m := <-a.msgs:
				batch = append(batch, m)
			default:
				break gather
			}
		}
		a.archive(ctx, batch)
	}
}

// archive writes one batch to the store and acknowledges what was written.
func (a *Archiver) archive(ctx context.Context, batch []jetstream.Msg) {
	lines := make([]slipway.LogLine, 0, len(batch))
	msgs := make([]jetstream.Msg, 0, len(batch))
	for _, m := range batch {
		var l slipway.LogLine
		if err := json.Unmarshal(m.Data(), &l); err != nil {
			a.terminate(m, "not a JSON log line: "+err.Error())
			continue
		}
		if why := validLine(&l, m.Subject()); why != "" {
			a.terminate(m, why)
			continue
		}
		lines = append(lines, l)
		msgs = append(msgs, m)
	}
	if len(lines) == 0 {
		return
	}
	err := a.cfg.Store.AppendLogLines(ctx, lines)
	if err == nil {
		a.ack(msgs)
		a.notify()
		return
	}
	if ctx.Err() != nil {
		nak(msgs) // stopping: let the next archiver have them at once
		return
	}
	a.log.Warn("archive log lines: store write failed, trying one by one", "lines", len(lines), "error", err)
	// One bad line must not hold back the others: retry them one by one and
	// send back (or give up) only those that fail.
	wrote := false
	for i, l := range lines {
		if err := a.cfg.Store.AppendLogLines(ctx, lines[i:i+1]); err != nil {
			if ctx.Err() != nil {
				nak(msgs[i:])
				break
			}
			a.retryLater(msgs[i], l, err)
			continue
		}
		a.ack(msgs[i : i+1])
		wrote = true
	}
	if wrote {
		a.notify()
	}
}

// retryLater returns a line the store refused to the stream, with a
// growing delay, or gives it up when the error is permanent or it was
// tried MaxAttempts times.
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

func (a *Archiver) ack(msgs []jetstream.Msg) {
	for _, m := range msgs {
		if err := m.Ack(); err != nil {
			// The line is stored; a redelivery is harmless.
			a.log.Debug("ack log line", "error", err)
		}
	}
}

// nak hands msgs back for immediate redelivery.
func nak(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Nak()
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
