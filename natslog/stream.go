package natslog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// streamConfig is SLIPWAY_LOGS' configuration.
func streamConfig(maxAge time.Duration) jetstream.StreamConfig {
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Slipway deployment log lines (JSON slipway.LogLine)",
		Subjects:    []string{StreamSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      maxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxMsgSize:  maxMsgBytes,
		Duplicates:  DuplicateWindow,
		Replicas:    1,
	}
}

// EnsureStream creates the log stream, or updates it to the expected
// configuration (file storage, DuplicateWindow, lines kept maxAge, or
// DefaultMaxAge when maxAge is 0).
func EnsureStream(ctx context.Context, js jetstream.JetStream, maxAge time.Duration) error {
	if _, err := js.CreateOrUpdateStream(ctx, streamConfig(maxAge)); err != nil {
		return fmt.Errorf("ensure stream %s: %w", StreamName, err)
	}
	return nil
}

// OpenStream returns the log stream, creating it (with DefaultMaxAge) only
// when it is missing, so that a client never overwrites limits the server
// configured.
func OpenStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, StreamName)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("look up stream %s: %w", StreamName, err)
	}
	if err := EnsureStream(ctx, js, DefaultMaxAge); err != nil {
		return nil, err
	}
	st, err = js.Stream(ctx, StreamName)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", StreamName, err)
	}
	return st, nil
}

// LastLine returns the highest line number stored on subject, or 0: a
// publisher continues after it, and the server waits for the archiver to
// store that many.
// When every message holds one line (as earlier versions published), the
// last stored message normally holds it and the count of messages says
// whether the numbering is 1..N in order; otherwise (batches, a message
// republished late after a reconnect, a duplicate past the dedup window)
// it reads every message's id.
func LastLine(ctx context.Context, js jetstream.JetStream, subject string) (int64, error) {
	st, err := OpenStream(ctx, js)
	if err != nil {
		return 0, err
	}
	raw, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("find last log line on %s: %w", subject, err)
	}
	last, err := DecodeLines(raw.Data)
	if err != nil {
		return 0, fmt.Errorf("find last log line on %s: decode message %d: %w", subject, raw.Sequence, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("find last log line on %s: %w", subject, err)
	}
	count := info.State.Subjects[subject]
	if len(last) == 1 && count == uint64(last[0].N) {
		return last[0].N, nil
	}
	return scanMaxLineNumber(ctx, js, subject, count)
}

// scanMaxLineNumber reads every message on subject (count of them) and
// returns the highest line number.
func scanMaxLineNumber(ctx context.Context, js jetstream.JetStream, subject string, count uint64) (int64, error) {
	cons, err := js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("scan log lines on %s: %w", subject, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return 0, fmt.Errorf("scan log lines on %s: %w", subject, err)
	}
	defer it.Stop()
	var highest int64
	for seen := uint64(0); seen < count; seen++ {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return 0, fmt.Errorf("scan log lines on %s: %w", subject, err)
		}
		highest = max(highest, msgLastLine(msg.Headers(), msg.Data()))
		if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
			break
		}
	}
	return highest, nil
}

// msgLastLine returns the highest line number in a message of the log
// stream: from its Nats-Msg-Id ("<deployment>:<first>-<last>" or
// "<deployment>:<n>") without decoding the lines, or else from the lines.
// It returns 0 for a message that holds no line.
func msgLastLine(h nats.Header, data []byte) int64 {
	id := h.Get(jetstream.MsgIDHeader)
	if i := strings.LastIndexByte(id, ':'); i >= 0 {
		r := id[i+1:]
		if j := strings.IndexByte(r, '-'); j >= 0 {
			r = r[j+1:]
		}
		if n, err := strconv.ParseInt(r, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	lines, err := DecodeLines(data)
	if err != nil {
		return 0
	}
	var highest int64
	for _, l := range lines {
		highest = max(highest, l.N)
	}
	return highest
}
