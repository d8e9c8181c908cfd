package natslog_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/natslog"
	"github.com/slipway-ci/slipway/natsserver"
)

// lineJSON is line n of deployment as a publisher writes it.
func lineJSON(deployment string, n int64) string {
	return fmt.Sprintf(`{"deployment":%q,"n":%d,"time":"2026-01-01T00:00:00Z","stream":"stdout","text":"line %d"}`, deployment, n, n)
}

// batchJSON is lines from..to of deployment as one message.
func batchJSON(deployment string, from, to int64) string {
	parts := make([]string, 0, to-from+1)
	for n := from; n <= to; n++ {
		parts = append(parts, lineJSON(deployment, n))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestDecodeLines(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []int64 // line numbers; nil: an error
	}{
		{"one line, as earlier versions published", lineJSON("d1", 7), []int64{7}},
		{"a batch", batchJSON("d1", 3, 6), []int64{3, 4, 5, 6}},
		{"a batch of one", "[" + lineJSON("d1", 2) + "]", []int64{2}},
		{"leading space", "  \n" + batchJSON("d1", 1, 2), []int64{1, 2}},
		{"empty batch", "[]", nil},
		{"not JSON", "line 1", nil},
		{"cut short", batchJSON("d1", 1, 3)[:40], nil},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := natslog.DecodeLines([]byte(tc.data))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("DecodeLines(%q) = %v, want an error", tc.data, lines)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeLines: %v", err)
			}
			if len(lines) != len(tc.want) {
				t.Fatalf("DecodeLines = %d lines, want %d", len(lines), len(tc.want))
			}
			for i, l := range lines {
				if l.N != tc.want[i] || l.Deployment != "d1" || l.Text != fmt.Sprintf("line %d", l.N) || l.Stream != "stdout" || l.Time.IsZero() {
					t.Errorf("line %d = %+v", i, l)
				}
			}
		})
	}
}

// A build writing lines quickly gets them published several per message,
// each line once, and the messages' ids name the lines they hold.
func TestPublisherBatchesLines(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := newMemStore()
	a := startArchiver(t, s.URL(), store)
	p := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "b1"})
	w := p.Writer("stdout", "build")
	const total = 5000
	writeLines(w, 1, total)
	closePublisher(t, p)
	waitFor(t, a, "b1", total)
	checkTexts(t, store, "b1", total)

	lines, msgs := testenv.StreamLines(t, s.URL(), project, "b1")
	if len(lines) != total {
		t.Fatalf("stream holds %d lines, want %d", len(lines), total)
	}
	if got := subjectCount(t, s.URL(), "b1"); got != total {
		t.Errorf("stream holds %d distinct lines, want %d", got, total)
	}
	if msgs >= total/2 {
		t.Errorf("%d lines written at once took %d messages, want them batched (fewer than %d)", total, msgs, total/2)
	}
	t.Logf("%d lines in %d messages", total, msgs)

	// Every message's id is "<deployment>:<first>-<last>" of its lines.
	for _, m := range testenv.StreamMsgs(t, s.URL(), project, "b1") {
		ls := m.Lines
		want := fmt.Sprintf("b1:%d-%d", ls[0].N, ls[len(ls)-1].N)
		if len(ls) == 1 {
			want = fmt.Sprintf("b1:%d", ls[0].N)
		}
		if m.ID != want {
			t.Errorf("message with lines %d..%d has id %q, want %q", ls[0].N, ls[len(ls)-1].N, m.ID, want)
		}
		if m.Size > 70<<10 {
			t.Errorf("message with lines %d..%d is %d bytes, want at most ~64 KiB", ls[0].N, ls[len(ls)-1].N, m.Size)
		}
	}
}

// A follow from a line in the middle of a message starts exactly there,
// and a log of batches mixed with single-line messages (as an earlier
// version published) is read whole, by the Watcher and the Archiver.
func TestFollowFromMiddleOfBatch(t *testing.T) {
	srv := logtest.StartServer(t, natsserver.Config{})
	db, d := sqliteDeployment(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := natslog.EnsureStream(t.Context(), js, 0); err != nil {
		t.Fatal(err)
	}
	publish := func(data string) {
		t.Helper()
		if _, err := js.Publish(t.Context(), natslog.Subject(d.Project, d.ID), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	publish(batchJSON(d.ID, 1, 10))
	publish(lineJSON(d.ID, 11))
	publish(lineJSON(d.ID, 12))
	publish(batchJSON(d.ID, 13, 20))

	w := newWatcher(t, srv.URL(), db, natslog.WatcherConfig{})
	fromMiddle := follow(t, w, d.ID, 5)
	fromLater := follow(t, w, d.ID, 16)
	fromStart := follow(t, w, d.ID, 1)
	if err := db.FinishDeployment(t.Context(), d.ID, slipway.DeploymentResult{Status: slipway.StatusSucceeded}, time.Now()); err != nil {
		t.Fatal(err)
	}
	fromMiddle.wait(t, 5, 20, 30*time.Second)
	fromLater.wait(t, 16, 20, 30*time.Second)
	fromStart.wait(t, 1, 20, 30*time.Second)

	a, err := natslog.StartArchiver(t.Context(), natslog.ArchiverConfig{URL: srv.URL(), Store: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	waitForStore(t, a, d.ID, 20)
	stored, err := db.LogLines(t.Context(), d.ID, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 20 || stored[0].Text != "line 1" || stored[19].Text != "line 20" {
		t.Errorf("archived %d lines, want lines 1..20", len(stored))
	}
	// Replayed from the store now, from the middle again.
	again := follow(t, w, d.ID, 7)
	again.wait(t, 7, 20, 30*time.Second)
}

// A batch sent again, as a spool segment is after a crash, is dropped by
// JetStream (same message id): the stream holds each line once. The next
// publisher of that deployment continues after the batches' last line.
func TestRepublishedBatchIsDeduplicated(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	spool := t.TempDir()
	seg := "demo " + batchJSON("r1", 1, 3) + "\n" + "demo " + lineJSON("r1", 4) + "\n" + "demo " + batchJSON("r1", 5, 9) + "\n"
	store := newMemStore()
	a := startArchiver(t, s.URL(), store)
	for i, name := range []string{"spool-1.log", "spool-2.log"} {
		if err := os.WriteFile(filepath.Join(spool, name), []byte(seg), 0o644); err != nil {
			t.Fatal(err)
		}
		p := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "other", SpoolDir: spool})
		closePublisher(t, p)
		if files := spoolFiles(t, spool); len(files) != 0 {
			t.Fatalf("round %d: spool segments left: %v", i+1, files)
		}
	}
	waitFor(t, a, "r1", 9)
	checkTexts(t, store, "r1", 9)
	lines, msgs := testenv.StreamLines(t, s.URL(), project, "r1")
	if len(lines) != 9 || msgs != 3 {
		t.Errorf("stream holds %d lines in %d messages, want 9 in 3 (the resent batches dropped as duplicates)", len(lines), msgs)
	}
	p := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "r1"})
	if got := p.LastLine(); got != 9 {
		t.Errorf("next publisher of r1 starts after line %d, want 9", got)
	}
}

// A publisher whose lines were cut by NATS going away mid-batch resends
// its batches whole: no line twice in the stream, none missing.
func TestBatchesRideOutRestartWithSpool(t *testing.T) {
	s1, dir, port := logtest.StoppableServer(t)
	spool := t.TempDir()
	p := newPublisher(t, natslog.PublisherConfig{URL: s1.URL(), Deployment: "r2", SpoolDir: spool})
	w := p.Writer("stdout", "")
	const total = 20000
	writeLines(w, 1, total/2)
	s1.Shutdown()
	writeLines(w, total/2+1, total*3/4)
	s2 := logtest.StartServer(t, natsserver.Config{StoreDir: dir, Port: port})
	writeLines(w, total*3/4+1, total)
	closePublisher(t, p)
	store := newMemStore()
	a := startArchiver(t, s2.URL(), store)
	waitFor(t, a, "r2", total)
	checkTexts(t, store, "r2", total)
	if got := subjectCount(t, s2.URL(), "r2"); got != total {
		t.Errorf("stream holds %d lines, want %d", got, total)
	}
}
