package archive_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natslog"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

func TestStreamSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	s1 := logtest.StartServer(t, natsserver.Config{StoreDir: dir})
	p := logtest.NewPublisher(t, publish.Config{URL: s1.URL(), Deployment: "d4"})
	for i := 1; i <= 500; i++ {
		p.Line("stdout", fmt.Sprintf("line %d", i))
	}
	logtest.ClosePublisher(t, p)
	s1.Shutdown()

	s2 := logtest.StartServer(t, natsserver.Config{StoreDir: dir})
	store := logtest.NewStore(t, "d4")
	a := logtest.StartArchiver(t, s2.URL(), store)
	logtest.WaitFor(t, a, "d4", 500)
	if lines := logtest.StoredLines(t, store, "d4"); len(lines) != 500 || lines[499].Text != "line 500" {
		t.Fatalf("stored %d lines after restart, want 500", len(lines))
	}
}

func TestArchiverRestartDoesNotDuplicate(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "d8")
	a1 := logtest.StartArchiver(t, s.URL(), store)
	p1 := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "d8"})
	for i := 1; i <= 200; i++ {
		p1.Line("stdout", fmt.Sprintf("line %d", i))
	}
	logtest.ClosePublisher(t, p1)
	logtest.WaitFor(t, a1, "d8", 200)
	a1.Stop()
	a1.Stop()
	if err := a1.WaitFor(t.Context(), "d8", 201); err == nil {
		t.Error("WaitFor on a stopped archiver for a missing line succeeded")
	}
	waitConsumerSettled(t, s.URL(), "slipway-archiver")

	a2 := logtest.StartArchiver(t, s.URL(), store)
	p2 := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "d8"})
	for i := 201; i <= 300; i++ {
		p2.Line("stdout", fmt.Sprintf("line %d", i))
	}
	logtest.ClosePublisher(t, p2)
	logtest.WaitFor(t, a2, "d8", 300)
	if lines := logtest.StoredLines(t, store, "d8"); len(lines) != 300 {
		t.Fatalf("stored %d lines, want 300", len(lines))
	}
	if writes, dups := store.Counts(); writes != 300 || dups != 0 {
		t.Errorf("store got %d line writes (%d duplicates), want 300 (0)", writes, dups)
	}
}

// waitConsumerSettled waits until the durable consumer has nothing pending
// or unacknowledged.
func waitConsumerSettled(t *testing.T, url, durable string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := js.Consumer(t.Context(), natslog.StreamName, durable)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s: %d unacknowledged, %d pending", durable, info.NumAckPending, info.NumPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestArchiverHandlesBadMessagesAndStoreErrors(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "bad")
	// Deployment gone is not in the store: its lines are refused for good.
	a := logtest.StartArchiver(t, s.URL(), store)
	js := streamJS(t, s.URL())
	publish := func(dep, data string) {
		t.Helper()
		if _, err := js.Publish(t.Context(), natslog.Subject(logtest.Project, dep), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	publish("bad", "not json")
	publish("bad", `{"deployment":"other","n":1,"text":"x"}`)
	publish("bad", `{"deployment":"bad","n":0,"text":"x"}`)
	publish("gone", `{"deployment":"gone","n":1,"text":"x"}`)
	publish("bad", `{"deployment":"bad","n":1,"text":"good"}`)
	logtest.WaitFor(t, a, "bad", 1)
	if lines := logtest.StoredLines(t, store, "bad"); len(lines) != 1 || lines[0].Text != "good" {
		t.Fatalf("stored %q, want only the good line", logtest.Texts(lines))
	}
	waitConsumerSettled(t, s.URL(), "slipway-archiver")

	// A store that fails for a while: the line is retried, not lost.
	store.FailNext(3)
	publish("bad", `{"deployment":"bad","n":2,"text":"late"}`)
	logtest.WaitFor(t, a, "bad", 2)
	waitConsumerSettled(t, s.URL(), "slipway-archiver")
}

// An agent may publish on its own project's log subjects only; a line of
// another project's deployment on them is forged and never stored.
func TestArchiverDropsLinesOfAnotherProjectsDeployment(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "mine")
	sqlitetest.AddProject(t, store.DB, slipway.Project{Name: "other", Repo: "file:///o"})
	sqlitetest.AddDeployment(t, store.DB, slipway.Deployment{ID: "theirs", Project: "other", Status: slipway.StatusBuilding})
	a := logtest.StartArchiver(t, s.URL(), store)
	js := streamJS(t, s.URL())
	for _, m := range []struct{ project, dep, text string }{
		{logtest.Project, "theirs", "forged"}, {"other", "theirs", "genuine"}, {logtest.Project, "mine", "mine"},
	} {
		data := fmt.Sprintf(`{"deployment":%q,"n":1,"text":%q}`, m.dep, m.text)
		if _, err := js.Publish(t.Context(), natslog.Subject(m.project, m.dep), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	logtest.WaitFor(t, a, "theirs", 1)
	logtest.WaitFor(t, a, "mine", 1)
	if lines := logtest.StoredLines(t, store, "theirs"); len(lines) != 1 || lines[0].Text != "genuine" {
		t.Fatalf("stored %q for the other project's deployment, want only its genuine line", logtest.Texts(lines))
	}
}

// streamJS connects to NATS at url for the test's JetStream publishes.
func streamJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
