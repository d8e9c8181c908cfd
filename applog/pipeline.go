package applog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/natslog"
)

// Source tells where an app's output is: apps.Runtime.LogSource.
type Source interface {
	// LogSource returns the app's k8s-file log and a function masking
	// its environment's values in a line.
	LogSource(ctx context.Context, inst *apps.Instance) (path string, mask func(string) string, err error)
}

// Config configures a Pipeline.
type Config struct {
	// URL is the NATS server; Options authenticate the connection (the
	// server's own credential).
	URL     string
	Options []nats.Option
	// Source finds an app's log file; required.
	Source Source
	// Store receives the lines (the archiver) and says where a
	// project's numbering goes on; required.
	Store slipway.AppLogStore
	// Logger reports what goes wrong; default no-op.
	Logger *slog.Logger
}

// Pipeline collects, publishes, archives and follows the apps' output.
// Its methods are safe for concurrent use.
type Pipeline struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	st     jetstream.Stream
	cc     jetstream.ConsumeContext
	w      *fsnotify.Watcher
	add    chan *apps.Instance
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	// Owned by the collector's goroutine (run):
	tails map[string]*tail // by the log file's directory
	next  map[string]int64 // by project: the last line number used
}

// Start connects to NATS, makes sure the stream and the archiver's
// consumer exist, and starts archiving and collecting. ctx bounds the
// start only; the pipeline runs until Close.
func Start(ctx context.Context, cfg Config) (*Pipeline, error) {
	if cfg.Source == nil || cfg.Store == nil {
		return nil, errors.New("start app logs: no source or no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{cfg: cfg, log: cfg.Logger.With("part", "app logs"), add: make(chan *apps.Instance, 64),
		done: make(chan struct{}), tails: map[string]*tail{}, next: map[string]int64{}}
	var err error
	p.nc, err = nats.Connect(cfg.URL, append([]nats.Option{nats.Name("slipway app logs"), nats.MaxReconnects(-1)}, cfg.Options...)...)
	if err != nil {
		return nil, fmt.Errorf("start app logs: connect to NATS: %w", err)
	}
	if err := p.start(ctx); err != nil {
		p.nc.Close()
		if p.w != nil {
			p.w.Close()
		}
		return nil, fmt.Errorf("start app logs: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(rctx)
	return p, nil
}

func (p *Pipeline) start(ctx context.Context) error {
	var err error
	if p.js, err = jetstream.New(p.nc); err != nil {
		return err
	}
	if p.st, err = p.js.CreateOrUpdateStream(ctx, streamConfig()); err != nil {
		return fmt.Errorf("ensure stream %s: %w", StreamName, err)
	}
	cons, err := p.js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: 30,
	})
	if err != nil {
		return fmt.Errorf("archiver's consumer: %w", err)
	}
	if p.cc, err = cons.Consume(p.archive); err != nil {
		return fmt.Errorf("archiver's consumer: %w", err)
	}
	if p.w, err = fsnotify.NewWatcher(); err != nil {
		p.cc.Stop()
		return fmt.Errorf("watch app log files: %w", err)
	}
	return nil
}

// Close stops collecting and archiving; safe to call twice.
func (p *Pipeline) Close() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		p.cc.Stop()
		p.w.Close()
		p.nc.Close()
	})
}

// archive stores one message's lines, then acknowledges it; a line of a
// project that is gone is dropped, a store failure retried later.
func (p *Pipeline) archive(m jetstream.Msg) {
	lines, err := decode(m.Subject(), m.Data())
	if err != nil {
		p.log.Warn("app logs: dropped a bad message", "error", err)
		_ = m.Term()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch err := p.cfg.Store.AppendAppLogLines(ctx, lines); {
	case slipway.ErrorCode(err) == slipway.ENOTFOUND:
		_ = m.Term()
	case err != nil:
		p.log.Warn("app logs: store lines", "subject", m.Subject(), "error", err)
		_ = m.NakWithDelay(5 * time.Second)
	default:
		_ = m.Ack()
	}
}

// Follow calls fn with the project's app lines numbered above after (of
// release only, unless ""), in order, as they are published, until ctx
// ends or fn fails. Lines older than the stream's bounds are not sent:
// read them from the store first and pass the last one's N as after.
func (p *Pipeline) Follow(ctx context.Context, project string, after int64, release string, fn func([]slipway.AppLogLine) error) error {
	if !natslog.ValidToken(project) {
		return slipway.Errorf(slipway.EINVALID, "bad project name %q", project)
	}
	cons, err := p.js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{Subject(project)}, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("follow the app log of %s: %w", project, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow the app log of %s: %w", project, err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("follow the app log of %s: %w", project, err)
		}
		lines, err := decode(m.Subject(), m.Data())
		if err != nil {
			p.log.Warn("app logs: skipped a bad message", "error", err)
			continue
		}
		var out []slipway.AppLogLine
		for _, l := range lines {
			if l.N > after && (release == "" || l.Release == release) {
				out = append(out, l)
			}
		}
		if len(out) == 0 {
			continue
		}
		after = out[len(out)-1].N
		if err := fn(out); err != nil {
			return err
		}
	}
}
