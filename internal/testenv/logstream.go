package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/natslog"
)

// StreamMsg is one message of the log stream, decoded.
type StreamMsg struct {
	ID    string // its Nats-Msg-Id
	Size  int    // its payload's size in bytes
	Lines []slipway.LogLine
}

// StreamMsgs returns the messages the JetStream log stream at natsURL
// holds for a deployment, in stream order. It fails the test on any error,
// a message that does not decode included.
func StreamMsgs(t testing.TB, natsURL, project, deployment string) []StreamMsg {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatalf("connect to NATS at %s: %v", natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, natslog.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{natslog.Subject(project, deployment)}})
	if err != nil {
		t.Fatalf("read the log stream of %s: %v", deployment, err)
	}
	var msgs []StreamMsg
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ls, err := natslog.DecodeLines(m.Data())
			if err != nil {
				t.Fatalf("log stream message %.200q: %v", m.Data(), err)
			}
			msgs = append(msgs, StreamMsg{ID: m.Headers().Get(jetstream.MsgIDHeader), Size: len(m.Data()), Lines: ls})
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return msgs
		}
	}
}

// StreamLines returns every line the log stream holds for a deployment, in
// stream order, and how many messages hold them.
func StreamLines(t testing.TB, natsURL, project, deployment string) ([]slipway.LogLine, int) {
	t.Helper()
	msgs := StreamMsgs(t, natsURL, project, deployment)
	var lines []slipway.LogLine
	for _, m := range msgs {
		lines = append(lines, m.Lines...)
	}
	return lines, len(msgs)
}
