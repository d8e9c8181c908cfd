package natslog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LastLinePrefix starts the subjects on which the server answers a
// publisher's question "what is the last line of this deployment in the
// stream?": "slipway.lastline.<project>.<deployment>". An agent may not
// use JetStream's API ($JS.API.>), so it asks there instead of reading
// the stream.
const LastLinePrefix = "slipway.lastline."

// LastLineSubject returns the subject on which a publisher asks for the
// last line of deployment of project.
func LastLineSubject(project, deployment string) string {
	return LastLinePrefix + project + "." + deployment
}

// LastLineReply is the answer on LastLineSubject: the highest line number
// in the stream (0 for none), or why there is none.
type LastLineReply struct {
	Last  int64  `json:"last"`
	Error string `json:"error,omitempty"`
}

// LastLineTimeout bounds finding a deployment's last line (asking on
// LastLineSubject, or reading the stream when nobody answers there) when
// ctx has no earlier deadline: a client denied JetStream's API would
// otherwise wait for an answer until ctx ends.
const LastLineTimeout = 30 * time.Second

// AskLastLine asks whoever answers on LastLineSubject (the server's
// archiver) for the last line of deployment of project in the stream. It
// returns an error wrapping nats.ErrNoResponders when nobody answers.
func AskLastLine(ctx context.Context, nc *nats.Conn, project, deployment string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, LastLineTimeout)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, LastLineSubject(project, deployment), nil)
	if err != nil {
		return 0, fmt.Errorf("ask the last log line of %s: %w", deployment, err)
	}
	var rep LastLineReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return 0, fmt.Errorf("ask the last log line of %s: bad answer: %w", deployment, err)
	}
	if rep.Error != "" {
		return 0, fmt.Errorf("ask the last log line of %s: %s", deployment, rep.Error)
	}
	return rep.Last, nil
}

// LastLineOf returns the last line of deployment of project: from the
// server over LastLineSubject (AskLastLine), or, when nobody answers there
// (a bare NATS without Slipway's server), from the stream itself through
// JetStream's API (LastLine, creating the stream if it is missing).
func LastLineOf(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, project, deployment string) (int64, error) {
	n, err := AskLastLine(ctx, nc, project, deployment)
	if errors.Is(err, nats.ErrNoResponders) {
		ctx, cancel := context.WithTimeout(ctx, LastLineTimeout)
		defer cancel()
		return LastLine(ctx, js, Subject(project, deployment))
	}
	return n, err
}
