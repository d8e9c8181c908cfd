// Package natslog carries a deployment's public build log through NATS
// JetStream (package natsserver embeds the server): the agent-side
// Publisher that numbers lines and publishes them, the server-side
// Archiver that copies them into the slipway.Store, and the Watcher that lets the API follow a deployment live (its stored log, then
// the stream, with no gap and no duplicate; its state changes, announced on
// slipway.events.<project>.<deployment>).
//
// A message on subject slipway.logs.<project>.<deployment> in stream
// SLIPWAY_LOGS holds one or more consecutive lines of the deployment: a
// JSON array of slipway.LogLine (several lines), or one JSON
// slipway.LogLine (one line, the only form earlier versions wrote; see
// DecodeLines). Its header Nats-Msg-Id is "<deployment>:<first>-<last>"
// ("<deployment>:<n>" for one line), so that republishing a message is
// harmless: a message is never regrouped once made, in memory or in the
// spool, so a republished batch has the same id.
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
	// maxBatchBytes bounds the lines the Publisher puts in one message (a
	// single longer line is a message of its own).
	maxBatchBytes = 64 << 10
	// flushDelay is how long the Publisher lets a message fill with the
	// lines that follow its first one before sending it: the cost of the
	// log path is per message, so at high rates it carries hundreds of
	// lines, and a single line waits at most this long.
	flushDelay = 2 * time.Millisecond
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
// configuration (file storage, DuplicateWindow, lines kept maxAge, or
// DefaultMaxAge when maxAge is 0).
func EnsureStream(ctx context.Context, js jetstream.JetStream, maxAge time.Duration) error {
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
	if err := EnsureStream(ctx, js, DefaultMaxAge); err != nil {
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

// batchID is the Nats-Msg-Id of a message holding lines first..last.
func batchID(deployment string, first, last int64) string {
	id := deployment + ":" + strconv.FormatInt(first, 10)
	if last != first {
		id += "-" + strconv.FormatInt(last, 10)
	}
	return id
}

// lineRange returns the deployment and the lowest and highest line number
// of the lines, and false unless they are all the same deployment's and
// consecutive (what a Publisher makes).
func lineRange(lines []slipway.LogLine) (deployment string, first, last int64, ok bool) {
	if len(lines) == 0 {
		return "", 0, 0, false
	}
	deployment, first = lines[0].Deployment, lines[0].N
	for i, l := range lines {
		if l.Deployment != deployment || l.N != first+int64(i) {
			return "", 0, 0, false
		}
	}
	return deployment, first, first + int64(len(lines)) - 1, true
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
