// Package natslog is the wire format of a deployment's public build log on
// NATS JetStream, shared by the agent, which publishes the log (package
// natslog/publish), and the server, which archives and follows it (package
// natslog/archive): the stream and its limits, the subjects, the message
// ids, and how lines are encoded into messages and decoded from them.
//
// A message on subject slipway.logs.<project>.<deployment> in stream
// SLIPWAY_LOGS holds one or more consecutive lines of the deployment: a
// JSON array of slipway.LogLine (several lines), or one JSON
// slipway.LogLine (one line, the only form earlier versions wrote; see
// DecodeLines). Its header Nats-Msg-Id is "<deployment>:<first>-<last>"
// ("<deployment>:<n>" for one line; see MsgID), so that republishing a
// message is harmless: a message is never regrouped once made, in memory
// or in the publisher's spool, so a republished batch has the same id.
//
// Both sides import it, so it must stay small: no publishing or consuming
// policy, nothing of nats-server (package natsserver embeds the server) and
// no server-side package. A log written by any earlier version must still
// decode.
package natslog

import (
	"fmt"
	"strconv"
	"strings"
	"time"

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

// ValidToken reports whether s can be one token of a NATS subject (a
// project or deployment id in Subject).
func ValidToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n\x00")
}

// MsgID is the Nats-Msg-Id of a message holding lines first..last of
// deployment: "<deployment>:<first>-<last>", or "<deployment>:<n>" for one
// line.
func MsgID(deployment string, first, last int64) string {
	id := deployment + ":" + strconv.FormatInt(first, 10)
	if last != first {
		id += "-" + strconv.FormatInt(last, 10)
	}
	return id
}

// LineRange returns the deployment and the lowest and highest line number
// of the lines, and false unless they are all the same deployment's and
// consecutive (what a publisher puts in one message).
func LineRange(lines []slipway.LogLine) (deployment string, first, last int64, ok bool) {
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

// CheckLine reports why a line decoded from a message on subject cannot be
// archived or followed, or "".
func CheckLine(l *slipway.LogLine, subject string) string {
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
