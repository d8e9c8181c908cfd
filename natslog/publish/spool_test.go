package publish_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
)

// spoolFiles lists the spool segments in dir.
func spoolFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "spool-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// spoolSize is the size of the spool segments in dir.
func spoolSize(t testing.TB, dir string) int64 {
	t.Helper()
	var size int64
	for _, f := range spoolFiles(t, dir) {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		size += st.Size()
	}
	return size
}

// TestSpoolWhileNATSIsDown: NATS stops mid-build and many lines are
// written; they wait on disk and, once NATS is back, every line reaches the
// stream and the store exactly once, in order.
func TestSpoolWhileNATSIsDown(t *testing.T) {
	s1, dir, port := logtest.StoppableServer(t)
	spool := t.TempDir()
	store := logtest.NewStore(t, "s1")
	a := logtest.RestartProofArchiver(t, s1.URL(), store)
	var stdout bytes.Buffer
	p := logtest.NewPublisher(t, publish.Config{URL: s1.URL(), Deployment: "s1", Stdout: &stdout, SpoolDir: spool,
		MaxBufferBytes: 64 << 10})
	w := p.Writer("stdout", "build")
	const before, total = 500, 20000
	logtest.WriteLines(w, 1, before)
	s1.Shutdown()
	logtest.WriteLines(w, before+1, total)
	if files := spoolFiles(t, spool); len(files) == 0 {
		t.Fatalf("no spool segment in %s while NATS is down", spool)
	}
	if n := strings.Count(stdout.String(), "\n"); n != total {
		t.Errorf("stdout got %d lines while NATS was down, want %d", n, total)
	}

	s2 := logtest.StartServer(t, natsserver.Config{StoreDir: dir, Port: port})
	logtest.ClosePublisher(t, p)
	logtest.WaitFor(t, a, "s1", total)
	logtest.CheckTexts(t, store, "s1", total)
	if got := logtest.SubjectCount(t, s2.URL(), "s1"); got != total {
		t.Errorf("stream holds %d messages, want %d (each line exactly once)", got, total)
	}
	if files := spoolFiles(t, spool); len(files) != 0 {
		t.Errorf("spool segments left after every line was sent: %v", files)
	}
}

// TestSpoolOutlivesPublisher: the publisher exits while NATS is down; the
// lines it could not send stay on disk and the next publisher started on
// the same spool directory sends them first, for its own deployment (whose
// numbering continues after them) or another one of the project.
func TestSpoolOutlivesPublisher(t *testing.T) {
	for _, next := range []string{"o1", "o2"} {
		t.Run("next deployment "+next, func(t *testing.T) {
			s1, dir, port := logtest.StoppableServer(t)
			spool := t.TempDir()
			p1 := logtest.NewPublisher(t, publish.Config{URL: s1.URL(), Deployment: "o1", SpoolDir: spool})
			w := p1.Writer("stdout", "")
			const before, total = 200, 3000
			logtest.WriteLines(w, 1, before)
			s1.Shutdown()
			logtest.WriteLines(w, before+1, total)
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			if err := p1.Close(ctx); err != nil {
				t.Fatalf("Close with NATS down and a spool = %v, want nil (lines kept on disk)", err)
			}
			if files := spoolFiles(t, spool); len(files) == 0 {
				t.Fatal("no spool segment left after Close gave up")
			}

			s2 := logtest.StartServer(t, natsserver.Config{StoreDir: dir, Port: port})
			store := logtest.NewStore(t, "o1", "o2")
			a := logtest.StartArchiver(t, s2.URL(), store)
			p2 := logtest.NewPublisher(t, publish.Config{URL: s2.URL(), Deployment: next, SpoolDir: spool})
			first := int64(1)
			if next == "o1" {
				first = total + 1
			}
			if got := p2.LastLine(); got != first-1 {
				t.Errorf("next publisher for %s starts after line %d, want %d", next, got, first-1)
			}
			for i := first; i < first+10; i++ {
				p2.Line("stdout", fmt.Sprintf("line %d", i))
			}
			logtest.ClosePublisher(t, p2)
			if next == "o1" {
				logtest.WaitFor(t, a, "o1", total+10)
				logtest.CheckTexts(t, store, "o1", total+10)
			} else {
				logtest.WaitFor(t, a, "o1", total)
				logtest.WaitFor(t, a, "o2", 10)
				logtest.CheckTexts(t, store, "o1", total)
				logtest.CheckTexts(t, store, "o2", 10)
			}
			if got, want := logtest.SubjectCount(t, s2.URL(), "o1"), uint64(total); next == "o2" && got != want {
				t.Errorf("stream holds %d lines of o1, want %d", got, want)
			}
			if files := spoolFiles(t, spool); len(files) != 0 {
				t.Errorf("spool segments left: %v", files)
			}
		})
	}
}

// TestSpoolSkipsDamagedRecords: a segment cut short by a crash, or with a
// record that is not a line, still delivers every good line.
func TestSpoolSkipsDamagedRecords(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	spool := t.TempDir()
	seg := `demo {"deployment":"x1","n":1,"time":"2026-01-01T00:00:00Z","stream":"stdout","text":"line 1"}
not a record
demo {"deployment":"x1","n":2,"time":"2026-01-01T00:00:00Z","stream":"stdout","text":"line 2"}
demo {"deployment":"x1","n":3,"time":"2026-01-01T00:00:00Z","stre`
	if err := os.WriteFile(filepath.Join(spool, "spool-1.log"), []byte(seg), 0o644); err != nil {
		t.Fatal(err)
	}
	store := logtest.NewStore(t, "x1", "x2")
	a := logtest.StartArchiver(t, s.URL(), store)
	p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "x2", SpoolDir: spool})
	logtest.ClosePublisher(t, p)
	logtest.WaitFor(t, a, "x1", 2)
	logtest.CheckTexts(t, store, "x1", 2)
	if files := spoolFiles(t, spool); len(files) != 0 {
		t.Errorf("spool segments left: %v", files)
	}
}
