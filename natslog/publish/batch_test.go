package publish_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
)

// A build writing lines quickly gets them published several per message,
// each line once, and the messages' ids name the lines they hold.
func TestPublisherBatchesLines(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "b1")
	a := logtest.StartArchiver(t, s.URL(), store)
	p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "b1"})
	w := p.Writer("stdout", "build")
	const total = 5000
	logtest.WriteLines(w, 1, total)
	logtest.ClosePublisher(t, p)
	logtest.WaitFor(t, a, "b1", total)
	logtest.CheckTexts(t, store, "b1", total)

	lines, msgs := testenv.StreamLines(t, s.URL(), logtest.Project, "b1")
	if len(lines) != total {
		t.Fatalf("stream holds %d lines, want %d", len(lines), total)
	}
	if got := logtest.SubjectCount(t, s.URL(), "b1"); got != total {
		t.Errorf("stream holds %d distinct lines, want %d", got, total)
	}
	if msgs >= total/2 {
		t.Errorf("%d lines written at once took %d messages, want them batched (fewer than %d)", total, msgs, total/2)
	}
	t.Logf("%d lines in %d messages", total, msgs)

	// Every message's id is "<deployment>:<first>-<last>" of its lines.
	for _, m := range testenv.StreamMsgs(t, s.URL(), logtest.Project, "b1") {
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

// A batch sent again, as a spool segment is after a crash, is dropped by
// JetStream (same message id): the stream holds each line once. The next
// publisher of that deployment continues after the batches' last line.
func TestRepublishedBatchIsDeduplicated(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	spool := t.TempDir()
	seg := "demo " + logtest.BatchJSON("r1", 1, 3) + "\n" + "demo " + logtest.LineJSON("r1", 4) + "\n" + "demo " + logtest.BatchJSON("r1", 5, 9) + "\n"
	store := logtest.NewStore(t, "other", "r1")
	a := logtest.StartArchiver(t, s.URL(), store)
	for i, name := range []string{"spool-1.log", "spool-2.log"} {
		if err := os.WriteFile(filepath.Join(spool, name), []byte(seg), 0o644); err != nil {
			t.Fatal(err)
		}
		p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "other", SpoolDir: spool})
		logtest.ClosePublisher(t, p)
		if files := spoolFiles(t, spool); len(files) != 0 {
			t.Fatalf("round %d: spool segments left: %v", i+1, files)
		}
	}
	logtest.WaitFor(t, a, "r1", 9)
	logtest.CheckTexts(t, store, "r1", 9)
	lines, msgs := testenv.StreamLines(t, s.URL(), logtest.Project, "r1")
	if len(lines) != 9 || msgs != 3 {
		t.Errorf("stream holds %d lines in %d messages, want 9 in 3 (the resent batches dropped as duplicates)", len(lines), msgs)
	}
	p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "r1"})
	if got := p.LastLine(); got != 9 {
		t.Errorf("next publisher of r1 starts after line %d, want 9", got)
	}
}

// A publisher whose lines were cut by NATS going away mid-batch resends
// its batches whole: no line twice in the stream, none missing.
func TestBatchesRideOutRestartWithSpool(t *testing.T) {
	s1, dir, port := logtest.StoppableServer(t)
	spool := t.TempDir()
	p := logtest.NewPublisher(t, publish.Config{URL: s1.URL(), Deployment: "r2", SpoolDir: spool})
	w := p.Writer("stdout", "")
	const total = 20000
	logtest.WriteLines(w, 1, total/2)
	s1.Shutdown()
	logtest.WriteLines(w, total/2+1, total*3/4)
	s2 := logtest.StartServer(t, natsserver.Config{StoreDir: dir, Port: port})
	logtest.WriteLines(w, total*3/4+1, total)
	logtest.ClosePublisher(t, p)
	store := logtest.NewStore(t, "r2")
	a := logtest.StartArchiver(t, s2.URL(), store)
	logtest.WaitFor(t, a, "r2", total)
	logtest.CheckTexts(t, store, "r2", total)
	if got := logtest.SubjectCount(t, s2.URL(), "r2"); got != total {
		t.Errorf("stream holds %d lines, want %d", got, total)
	}
}
