// Package applog carries the output of the apps (package apps) through
// the log pipeline that carries build logs: NATS JetStream, then the
// store. The Pipeline's collector follows the log file of every app
// container it is given (podman's k8s-file, watched with inotify: an app
// that writes nothing, a sleeping one, costs no CPU), masks the values of
// the app's environment in each line and publishes the lines to the app
// log stream; its archiver copies them into the store (a
// slipway.AppLogStore, where the project's log retention applies); Follow
// reads them live.
//
// Wire format: stream SLIPWAY_APPLOGS, one subject per project,
// slipway.applogs.<project>; a message is a JSON array of
// slipway.AppLogLine, consecutive lines of one project, with the
// Nats-Msg-Id "<project>:<first>-<last>". Lines are numbered per project
// from 1, across releases; each says its release (the deployment whose
// image wrote it), its stream (stdout or stderr) and its time (podman's).
//
// Bounds: a line longer than natslog.MaxLineBytes is cut; the stream
// keeps at most StreamMaxMsgsPerProject messages of a project, for
// StreamMaxAge; podman starts an app's log file anew past
// apps.Config.LogMaxBytes (lines written between the collector's last
// read and that moment are lost); the store keeps at most
// slipway.AppLogMaxLines per project.
//
// It runs in the server only; it must not be imported by the agent.
package applog

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/natslog"
)

const (
	// StreamName is the JetStream stream of the apps' output.
	StreamName = "SLIPWAY_APPLOGS"
	// SubjectPrefix starts every subject of the stream.
	SubjectPrefix = "slipway.applogs."
	// StreamMaxAge is how long the stream keeps a line: the store keeps
	// them longer (its retention), the stream serves live followers.
	StreamMaxAge = 7 * 24 * time.Hour
	// StreamMaxMsgsPerProject bounds one project's messages in the
	// stream; the oldest go first.
	StreamMaxMsgsPerProject = 10_000
	// maxBatch is the most lines in one message.
	maxBatch = 500
	// durable names the archiver's consumer.
	durable = "slipway-applog-archiver"
)

// Subject is the subject of project's app output.
func Subject(project string) string { return SubjectPrefix + project }

func streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              StreamName,
		Description:       "Slipway apps' output (JSON arrays of slipway.AppLogLine)",
		Subjects:          []string{SubjectPrefix + "*"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		MaxAge:            StreamMaxAge,
		MaxMsgsPerSubject: StreamMaxMsgsPerProject,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgSize:        8 << 20,
		Duplicates:        natslog.DuplicateWindow,
		Replicas:          1,
	}
}

// msgID is the Nats-Msg-Id of a message of lines.
func msgID(lines []slipway.AppLogLine) string {
	return fmt.Sprintf("%s:%d-%d", lines[0].Project, lines[0].N, lines[len(lines)-1].N)
}

// decode reads a message of the stream received on subject.
func decode(subject string, data []byte) ([]slipway.AppLogLine, error) {
	var lines []slipway.AppLogLine
	if err := json.Unmarshal(data, &lines); err != nil {
		return nil, fmt.Errorf("decode app log message on %s: %w", subject, err)
	}
	for _, l := range lines {
		if Subject(l.Project) != subject || l.N < 1 {
			return nil, fmt.Errorf("app log message on %s: a line of project %q numbered %d", subject, l.Project, l.N)
		}
	}
	return lines, nil
}
