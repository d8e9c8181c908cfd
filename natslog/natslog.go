// Package natslog carries a deployment's public build log through NATS
// JetStream: an embedded NATS server for `slipway server` (Server), the
// agent-side Publisher that numbers lines and publishes them, the
// server-side Archiver that copies them into the slipway.Store, and the
// Watcher that lets the API follow a deployment live (its stored log, then
// the stream, with no gap and no duplicate; its state changes, announced on
// slipway.events.<project>.<deployment>).
//
// Every line is a JSON slipway.LogLine on subject
// slipway.logs.<project>.<deployment> in stream SLIPWAY_LOGS, with header
// Nats-Msg-Id "<deployment>:<n>" so that republishing a line is harmless.
//
// The package does not decide what is public or secret: callers hand the
// Publisher only public output (its Redact hook is the last line of defence).
// It must never block a build for long on NATS: when NATS is slow or away,
// lines wait in a bounded memory buffer, then in a bounded spool on the
// machine's volume (spool.go) that outlives the publisher, and they always
// reach stdout.
package natslog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
)

const (
	// StreamName is the JetStream stream that holds every deployment's log.
	StreamName = "SLIPWAY_LOGS"
	// SubjectPrefix starts every log subject; StreamSubjects is the
	// stream's (and the archiver's) wildcard.
	SubjectPrefix  = "slipway.logs."
	StreamSubjects = SubjectPrefix + ">"

	// DefaultMaxAge is how long the stream keeps a line by default. The
	// archived copy in the store is the long-term record.
	DefaultMaxAge = 30 * 24 * time.Hour
	// DuplicateWindow is how long the stream remembers Nats-Msg-Ids: a line
	// republished within it (after a lost ack or a reconnect) is dropped by
	// the server. Later duplicates are still harmless: the store ignores a
	// line it already has.
	DuplicateWindow = 10 * time.Minute
	// MaxLineBytes is the longest line text; longer lines are split.
	MaxLineBytes = 16 << 10

	// maxMsgBytes bounds one stream message: a MaxLineBytes line of control
	// characters grows six-fold as JSON, plus the other fields.
	maxMsgBytes = 1 << 20
)

// Subject returns the subject a deployment's log lines are published on:
// "slipway.logs.<project>.<deployment>".
func Subject(project, deployment string) string {
	return SubjectPrefix + project + "." + deployment
}

// validToken reports whether s can be one token of a NATS subject.
func validToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n\x00")
}

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
// configuration (file storage, DuplicateWindow, DefaultMaxAge).
func EnsureStream(ctx context.Context, js jetstream.JetStream) error {
	return ensureStream(ctx, js, DefaultMaxAge)
}

func ensureStream(ctx context.Context, js jetstream.JetStream, maxAge time.Duration) error {
	if _, err := js.CreateOrUpdateStream(ctx, streamConfig(maxAge)); err != nil {
		return fmt.Errorf("ensure stream %s: %w", StreamName, err)
	}
	return nil
}

// ensureStreamExists creates the stream only when it is missing, so that a
// client never overwrites limits the server configured.
func ensureStreamExists(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, StreamName)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("look up stream %s: %w", StreamName, err)
	}
	if err := EnsureStream(ctx, js); err != nil {
		return nil, err
	}
	st, err = js.Stream(ctx, StreamName)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", StreamName, err)
	}
	return st, nil
}

// splitText cuts s (valid UTF-8) into pieces of at most max bytes, at rune
// boundaries. An empty s is one empty line.
func splitText(s string, max int) []string {
	if len(s) <= max {
		return []string{s}
	}
	var parts []string
	for len(s) > max {
		cut := runeCut(s, max)
		parts = append(parts, s[:cut])
		s = s[cut:]
	}
	if s != "" {
		parts = append(parts, s)
	}
	return parts
}

// runeCut returns the largest cut <= max that does not split a rune (or max
// itself if no rune start is near, as in invalid UTF-8).
func runeCut[T ~string | ~[]byte](s T, max int) int {
	for cut := max; cut > 0 && cut > max-utf8.UTFMax; cut-- {
		if utf8.RuneStart(s[cut]) {
			return cut
		}
	}
	return max
}

// lineID is a line's Nats-Msg-Id.
func lineID(deployment string, n int64) string {
	return deployment + ":" + strconv.FormatInt(n, 10)
}

// validLine reports why a decoded line cannot be archived, or "".
func validLine(l *slipway.LogLine, subject string) string {
	switch {
	case l.Deployment == "":
		return "no deployment"
	case l.N < 1:
		return fmt.Sprintf("bad line number %d", l.N)
	case !strings.HasSuffix(subject, "."+l.Deployment):
		return fmt.Sprintf("deployment %q does not match subject %q", l.Deployment, subject)
	}
	return ""
}

// appendLineJSON appends l encoded as JSON, as encoding/json encodes a
// slipway.LogLine (except that it leaves '<', '>' and '&' as they are), without
// its reflection and allocations: the Publisher encodes every line of every
// build. l.Text, Step and Stream must be valid UTF-8. It reports false if
// the time cannot be encoded (a year outside 0-9999), like json.Marshal.
func appendLineJSON(b []byte, l *slipway.LogLine) ([]byte, bool) {
	if y := l.Time.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, `{"deployment":`...)
	b = appendJSONString(b, l.Deployment)
	b = append(b, `,"n":`...)
	b = strconv.AppendInt(b, l.N, 10)
	b = append(b, `,"time":"`...)
	b = l.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","stream":`...)
	b = appendJSONString(b, l.Stream)
	if l.Step != "" {
		b = append(b, `,"step":`...)
		b = appendJSONString(b, l.Step)
	}
	b = append(b, `,"text":`...)
	b = appendJSONString(b, l.Text)
	return append(b, '}'), true
}

// appendJSONString appends s (valid UTF-8) as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			if c == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xa8 {
				// U+2028 and U+2029, escaped as encoding/json does.
				b = append(b, s[start:i]...)
				b = append(b, `\u202`...)
				b = append(b, hex[s[i+2]&0xf])
				i += 2
				start = i + 1
			}
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
