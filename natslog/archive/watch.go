package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/events"
	"github.com/slipway-ci/slipway/natslog"
)

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// URL is the NATS server holding the log stream.
	URL string
	// Options are added to the connection's own: how it authenticates
	// (nats.Token with the server's credential, nats.UserCredentials).
	Options []nats.Option
	// Store is where deployments are read, and stored lines replayed from.
	// Required.
	Store slipway.Store
	// Logger reports trouble with NATS; default no-op.
	Logger *slog.Logger
	// PollInterval is how often a followed deployment is re-read from the
	// store besides when an event announces a change; default 1s.
	PollInterval time.Duration
	// Settle is how long after a cancelled or superseded deployment ended
	// its late lines are still waited for (the agent may flush them after
	// the workflow gave up on it); default 2s.
	Settle time.Duration
	// GapTimeout is how long a missing line may hold back the lines after
	// it, once the stream has delivered everything it has; the line is
	// then taken as lost (its publisher gave up). Default 5s.
	GapTimeout time.Duration
	// StartMargin is how far before the last stored line's timestamp the
	// stream is read from, to allow for the clocks of the agent and of
	// the NATS server to differ; default one minute.
	StartMargin time.Duration
}

const (
	defaultPollInterval = time.Second
	defaultSettle       = 2 * time.Second
	defaultGapTimeout   = 5 * time.Second
	defaultStartMargin  = time.Minute
	// replayPage is how many stored lines are read at a time.
	replayPage = 1000
	// pullMaxBytes bounds the messages a follow (or the archiver) fetches
	// ahead of handling them.
	pullMaxBytes = 4 << 20
	// natsTimeout bounds one request to JetStream while following.
	natsTimeout = 2 * time.Second
)

// Watcher follows deployments live for the API: their log lines (stored,
// then from the stream) and their state changes (announced on
// events.Subject). It also wraps the store the control plane writes through
// so that those changes are announced (NotifyingStore). It is safe for
// concurrent use.
type Watcher struct {
	cfg WatcherConfig
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream
}

// NewWatcher connects to NATS (reconnecting forever). ctx bounds the
// connection attempt only.
func NewWatcher(ctx context.Context, cfg WatcherConfig) (*Watcher, error) {
	if cfg.Store == nil {
		return nil, errors.New("start log watcher: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = defaultPollInterval
	}
	if cfg.Settle <= 0 {
		cfg.Settle = defaultSettle
	}
	if cfg.GapTimeout <= 0 {
		cfg.GapTimeout = defaultGapTimeout
	}
	if cfg.StartMargin <= 0 {
		cfg.StartMargin = defaultStartMargin
	}
	w := &Watcher{cfg: cfg, log: cfg.Logger.With("component", "log watcher")}
	nc, err := nats.Connect(cfg.URL, append([]nats.Option{
		nats.Name("slipway-log-watcher"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			w.log.Warn("disconnected from NATS", "error", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { w.log.Info("reconnected to NATS") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			w.log.Debug("nats error", "error", err)
		}),
	}, cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("start log watcher: connect to %s: %w", cfg.URL, err)
	}
	w.nc = nc
	if w.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("start log watcher: %w", err)
	}
	return w, nil
}

// Close closes the connection; follows in progress end with an error.
func (w *Watcher) Close() {
	w.nc.Close()
}

// NotifyingStore returns store with CreateDeployment, MarkBuilding and
// FinishDeployment announcing each change they make on the watcher's
// connection (see events.NotifyingStore). Every other method is store's
// own.
func (w *Watcher) NotifyingStore(store slipway.Store) slipway.Store {
	return events.NotifyingStore(store, w.nc, w.log)
}

// WatchDeployment returns a channel that receives a value whenever the
// deployment's state may have changed, until ctx ends, when it is closed
// (see events.Watch).
func (w *Watcher) WatchDeployment(ctx context.Context, project, deployment string) (<-chan struct{}, error) {
	return events.Watch(ctx, w.nc, project, deployment)
}

// FollowLog calls emit with every line of the deployment numbered from on
// (from < 1 means from the first), in order and each exactly once: first
// the lines already in the store, then the stream's, as they are
// published. It returns nil once the deployment has ended and its log is
// complete; ctx's error when ctx ends first; emit's error if emit fails;
// ENOTFOUND for an unknown deployment.
//
// Lines come from the stream from a moment before the last stored line on
// (see StartMargin), so a line archived while the replay ran is not missed;
// a line seen twice is dropped by its number. The log is complete when the
// deployment is in a terminal state and the stream has delivered every
// line it holds for it, and, when the server recorded the log complete,
// every line up to the deployment's LogLines (from the store if the
// stream lacks them). Deployments ended without that mark (recorded by an
// older server) wait Settle after a cancel or supersede instead. A line
// the stream never got (its publisher gave up) holds the lines after it
// back for at most GapTimeout.
//
// Without NATS (the connection down when the follow starts) it polls the
// store instead.
func (w *Watcher) FollowLog(ctx context.Context, deployment string, from int64, emit func(slipway.LogLine) error) error {
	d, err := w.cfg.Store.Deployment(ctx, deployment)
	if err != nil {
		return err
	}
	if d.LogPruned {
		// Log retention deleted it; the stream may keep the lines longer,
		// but they are not to be served again.
		return nil
	}
	f := &follow{w: w, d: d, next: max(from, 1), emit: emit, pending: map[int64]slipway.LogLine{}}
	if err := f.replay(ctx); err != nil {
		return err
	}
	changed, err := w.WatchDeployment(ctx, d.Project, d.ID)
	if err != nil {
		return err
	}
	if !w.nc.IsConnected() {
		return f.poll(ctx, changed)
	}
	return f.stream(ctx, changed)
}

// follow is the state of one FollowLog.
type follow struct {
	w    *Watcher
	d    *slipway.Deployment
	next int64 // the number of the next line to emit
	emit func(slipway.LogLine) error
	// lastTime is the timestamp of the last line emitted, zero if none.
	lastTime time.Time
	// pending holds lines that came before their turn.
	pending map[int64]slipway.LogLine
}

// send emits l if it is next, keeps it if it is early, drops it if it was
// sent already; then emits what was waiting for it.
func (f *follow) send(l slipway.LogLine) error {
	switch {
	case l.N < f.next:
		return nil
	case l.N > f.next:
		f.pending[l.N] = l
		return nil
	}
	if err := f.emit(l); err != nil {
		return err
	}
	f.next++
	f.lastTime = l.Time
	for {
		p, ok := f.pending[f.next]
		if !ok {
			return nil
		}
		delete(f.pending, f.next)
		if err := f.emit(p); err != nil {
			return err
		}
		f.next++
		f.lastTime = p.Time
	}
}

// skipGap gives up on the missing line(s) before the first pending line
// and emits from there.
func (f *follow) skipGap() error {
	if len(f.pending) == 0 {
		return nil
	}
	keys := make([]int64, 0, len(f.pending))
	for n := range f.pending {
		keys = append(keys, n)
	}
	first := slices.Min(keys)
	f.w.log.Warn("log lines missing from the stream: skipping them", "deployment", f.d.ID, "from", f.next, "to", first-1)
	f.next = first
	l := f.pending[first]
	delete(f.pending, first)
	return f.send(l)
}

// flushPending emits every pending line in order, skipping gaps: the end
// of a complete log.
func (f *follow) flushPending() error {
	for len(f.pending) > 0 {
		if err := f.skipGap(); err != nil {
			return err
		}
	}
	return nil
}

// replay emits the stored lines from next on, as long as they follow each
// other.
func (f *follow) replay(ctx context.Context) error {
	for {
		lines, err := f.w.cfg.Store.LogLines(ctx, f.d.ID, f.next, replayPage)
		if err != nil {
			return fmt.Errorf("replay log of %s: %w", f.d.ID, err)
		}
		for _, l := range lines {
			if l.N != f.next {
				return nil // a gap: the stream has the rest
			}
			if err := f.send(l); err != nil {
				return err
			}
		}
		if len(lines) < replayPage {
			return nil
		}
	}
}

// ended re-reads the deployment and reports whether its log can be
// complete: it is in a terminal state, and settled if it was stopped.
func (f *follow) ended(ctx context.Context) (bool, error) {
	if !f.d.Status.Terminal() {
		d, err := f.w.cfg.Store.Deployment(ctx, f.d.ID)
		if err != nil {
			return false, fmt.Errorf("follow deployment %s: %w", f.d.ID, err)
		}
		f.d = d
	}
	if !f.d.Status.Terminal() {
		return false, nil
	}
	// A stopped build's lines may still be arriving, unless the server
	// waited for them before it recorded the end (LogComplete set).
	if f.d.LogComplete == nil && (f.d.Status == slipway.StatusCancelled || f.d.Status == slipway.StatusSuperseded) {
		if f.d.FinishedAt != nil && time.Since(*f.d.FinishedAt) < f.w.cfg.Settle {
			return false, nil
		}
	}
	return true, nil
}

// stream follows the log stream with an ordered consumer on the
// deployment's subject.
func (f *follow) stream(ctx context.Context, changed <-chan struct{}) error {
	cons, it, err := f.consume(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.w.log.Warn("follow log: cannot read the stream, polling the store", "deployment", f.d.ID, "error", err)
		return f.poll(ctx, changed)
	}
	msgs := make(chan jetstream.Msg, 64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { f.pump(it, msgs, stop) })
	defer wg.Wait()
	defer it.Stop()
	defer close(stop)

	var st streamState
	ticker := time.NewTicker(min(f.w.cfg.PollInterval, 250*time.Millisecond))
	defer ticker.Stop()
	lastPoll := time.Now()
	// A log that is complete already ends without waiting for a tick.
	now := make(chan struct{}, 1)
	now <- struct{}{}
	for {
		check := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("follow log of %s: the stream ended", f.d.ID)
			}
			last, err := f.handle(m, &st)
			if err != nil {
				return err
			}
			if !last || !f.d.Status.Terminal() {
				continue
			}
			check = true
		case <-now:
			check = true
		case <-changed:
			check = true
		case <-ticker.C:
			// Re-read the store at PollInterval; check the stream's end
			// more often once the deployment has ended, or a line is
			// missing.
			check = f.d.Status.Terminal() || len(f.pending) > 0 || time.Since(lastPoll) >= f.w.cfg.PollInterval
		}
		if !check {
			continue
		}
		lastPoll = time.Now()
		if done, err := f.checkEnd(ctx, cons, changed, &st); done {
			return err
		}
	}
}

// consume opens an ordered consumer on the deployment's subject, from the
// start of the log or from a little before the last line read, and its
// message iterator.
func (f *follow) consume(ctx context.Context) (jetstream.Consumer, jetstream.MessagesContext, error) {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{natslog.Subject(f.d.Project, f.d.ID)},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	}
	if !f.lastTime.IsZero() {
		start := f.lastTime.Add(-f.w.cfg.StartMargin)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	// A NATS that just went away answers nothing: do not wait for it.
	cctx, cancel := context.WithTimeout(ctx, natsTimeout)
	cons, err := f.w.js.OrderedConsumer(cctx, natslog.StreamName, cfg)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	// A message holds up to 64 KiB of lines (one line earlier):
	// bound what is fetched ahead by bytes.
	it, err := cons.Messages(jetstream.PullMaxBytes(pullMaxBytes))
	if err != nil {
		return nil, nil, err
	}
	return cons, it, nil
}

// pump hands the messages of it to msgs until it stops or stop is closed,
// then closes msgs.
func (f *follow) pump(it jetstream.MessagesContext, msgs chan<- jetstream.Msg, stop <-chan struct{}) {
	defer close(msgs)
	for {
		m, err := it.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				f.w.log.Debug("follow log: stream", "deployment", f.d.ID, "error", err)
			}
			return
		}
		select {
		case msgs <- m:
		case <-stop:
			return
		}
	}
}

// streamState is what stream keeps between messages and checks.
type streamState struct {
	processed       uint64    // stream sequence of the last message handled
	stalledSince    time.Time // when the stream last had nothing more while a line was missing
	infoFailedSince time.Time // when asking the consumer for its state began to fail
}

// handle sends the lines of m, and reports whether m was the last message
// the consumer had.
func (f *follow) handle(m jetstream.Msg, st *streamState) (last bool, err error) {
	if md, err := m.Metadata(); err == nil {
		st.processed = md.Sequence.Stream
		last = md.NumPending == 0
	}
	// A message holds one line or several consecutive ones; those before
	// the next line wanted (a replay from the middle of a message, a line
	// replayed from the store) are dropped by their number.
	if lines, err := natslog.DecodeLines(m.Data()); err == nil {
		for i := range lines {
			if natslog.CheckLine(&lines[i], m.Subject()) != "" {
				continue
			}
			if err := f.send(lines[i]); err != nil {
				return last, err
			}
		}
	}
	return last, nil
}

// checkEnd checks whether the log has ended, or a missing line has been
// awaited for long enough. done says that following is over, with the
// error stream returns.
func (f *follow) checkEnd(ctx context.Context, cons jetstream.Consumer, changed <-chan struct{}, st *streamState) (done bool, err error) {
	ended, err := f.ended(ctx)
	if err != nil {
		return true, err
	}
	if !ended && len(f.pending) == 0 {
		return false, nil
	}
	caughtUp, err := caughtUp(ctx, cons, st.processed)
	if err != nil {
		f.w.log.Debug("follow log: consumer info", "deployment", f.d.ID, "error", err)
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		// The stream cannot say whether it has more: once the
		// deployment ended and that lasted, take the store's word.
		if ended && !st.infoFailedSince.IsZero() && time.Since(st.infoFailedSince) >= f.w.cfg.GapTimeout {
			f.w.log.Warn("follow log: the stream does not answer, finishing from the store", "deployment", f.d.ID, "error", err)
			f.pending = map[int64]slipway.LogLine{}
			return true, f.poll(ctx, changed)
		}
		if st.infoFailedSince.IsZero() {
			st.infoFailedSince = time.Now()
		}
		return false, nil
	}
	st.infoFailedSince = time.Time{}
	if !caughtUp {
		st.stalledSince = time.Time{}
		return false, nil
	}
	if ended {
		// The store has every line up to LogLines once the log was
		// found complete: take from it what the stream did not give.
		if c := f.d.LogComplete; c != nil && *c && f.next <= f.d.LogLines {
			if err := f.replay(ctx); err != nil {
				return true, err
			}
		}
		return true, f.flushPending()
	}
	// A line is missing and the stream has nothing more.
	if st.stalledSince.IsZero() {
		st.stalledSince = time.Now()
	} else if time.Since(st.stalledSince) >= f.w.cfg.GapTimeout {
		if err := f.skipGap(); err != nil {
			return true, err
		}
		st.stalledSince = time.Time{}
	}
	return false, nil
}

// caughtUp reports whether the consumer has delivered every message it
// has and all of them were handled (processed is the stream sequence of
// the last one handled).
func caughtUp(ctx context.Context, cons jetstream.Consumer, processed uint64) (bool, error) {
	ictx, cancel := context.WithTimeout(ctx, natsTimeout)
	defer cancel()
	info, err := cons.Info(ictx)
	if err != nil {
		return false, err
	}
	return info.NumPending == 0 && info.Delivered.Stream <= processed, nil
}

// poll follows the log through the store alone: the stream is out of
// reach. The log counts as complete once the deployment ended, settled,
// and a poll found no new line.
func (f *follow) poll(ctx context.Context, changed <-chan struct{}) error {
	ticker := time.NewTicker(min(f.w.cfg.PollInterval, 250*time.Millisecond))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-ticker.C:
		}
		before := f.next
		if err := f.replay(ctx); err != nil {
			return err
		}
		ended, err := f.ended(ctx)
		if err != nil {
			return err
		}
		if ended && f.next == before {
			return nil
		}
	}
}
