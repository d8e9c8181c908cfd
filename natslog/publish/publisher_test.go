package publish_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natslog"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/redact"
)

func TestNewPublisherRejectsBadSubject(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	for _, dep := range []string{"", "a.b", "a*", "a>", "a b"} {
		_, err := publish.New(t.Context(), publish.Config{URL: s.URL(), Project: logtest.Project, Deployment: dep})
		if slipway.ErrorCode(err) != slipway.EINVALID {
			t.Errorf("NewPublisher(deployment %q) error = %v, want code %s", dep, err, slipway.EINVALID)
		}
	}
}

func TestPublishThousandLines(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "d1")
	a := logtest.StartArchiver(t, s.URL(), store)
	var stdout bytes.Buffer
	p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "d1", Stdout: &stdout})
	p.SetStep("build")
	for i := 1; i <= 1000; i++ {
		p.Line("stdout", fmt.Sprintf("line %d", i))
	}
	logtest.ClosePublisher(t, p)
	if err := p.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	logtest.WaitFor(t, a, "d1", 1000)

	lines := logtest.StoredLines(t, store, "d1")
	if len(lines) != 1000 {
		t.Fatalf("stored %d lines, want 1000", len(lines))
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %d", i+1); l.Text != want || l.Step != "build" || l.Stream != "stdout" || l.Time.IsZero() {
			t.Fatalf("line %d = %+v, want text %q, step build, stream stdout", i+1, l, want)
		}
	}
	if _, dups := store.Counts(); dups != 0 {
		t.Errorf("store saw %d duplicate writes, want 0", dups)
	}
	if got := logtest.SubjectCount(t, s.URL(), "d1"); got != 1000 {
		t.Errorf("stream holds %d lines, want 1000", got)
	}
	if !strings.HasPrefix(stdout.String(), "[build] line 1\n[build] line 2\n") || strings.Count(stdout.String(), "\n") != 1000 {
		t.Errorf("stdout = %.60q..., want 1000 lines starting with %q", stdout.String(), "[build] line 1\n")
	}
}

func TestSecondPublisherContinuesNumbering(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "d2", "d3")
	a := logtest.StartArchiver(t, s.URL(), store)

	p1 := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "d2"})
	for i := 1; i <= 1000; i++ {
		p1.Line("stdout", fmt.Sprintf("first %d", i))
	}
	logtest.ClosePublisher(t, p1)

	p2 := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "d2"})
	if got := p2.LastLine(); got != 1000 {
		t.Fatalf("second publisher starts after line %d, want 1000", got)
	}
	p2.Line("stdout", "second 1")
	logtest.ClosePublisher(t, p2)

	logtest.WaitFor(t, a, "d2", 1001)
	lines := logtest.StoredLines(t, store, "d2")
	if len(lines) != 1001 || lines[1000].Text != "second 1" {
		t.Fatalf("stored %d lines, last %q; want 1001, last %q", len(lines), lines[len(lines)-1].Text, "second 1")
	}
	// Another deployment starts at 1.
	p3 := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "d3"})
	if got := p3.LastLine(); got != 0 {
		t.Errorf("new deployment starts after line %d, want 0", got)
	}
}

func TestLastLineAfterOutOfOrderStore(t *testing.T) {
	// A line republished late lands after a higher one; the next publisher
	// must still continue after the highest number.
	s := logtest.StartServer(t, natsserver.Config{})
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, n := range []int64{1, 2, 4, 3} {
		data := fmt.Appendf(nil, `{"deployment":"d9","n":%d,"time":"2026-01-01T00:00:00Z","stream":"stdout","text":"x"}`, n)
		if _, err := js.Publish(t.Context(), natslog.Subject(logtest.Project, "d9"), data); err != nil {
			t.Fatal(err)
		}
	}
	p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "d9"})
	if got := p.LastLine(); got != 4 {
		t.Errorf("LastLine() = %d, want 4", got)
	}
}

func TestPublisherRidesOutServerRestart(t *testing.T) {
	s1, dir, port := logtest.StoppableServer(t)
	store := logtest.NewStore(t, "d5")
	a := logtest.RestartProofArchiver(t, s1.URL(), store)
	var stdout bytes.Buffer
	p := logtest.NewPublisher(t, publish.Config{URL: s1.URL(), Deployment: "d5", Stdout: &stdout})
	for i := 1; i <= 300; i++ {
		p.Line("stdout", fmt.Sprintf("line %d", i))
	}
	s1.Shutdown()

	// The server is gone: writing must not block the build.
	start := time.Now()
	for i := 301; i <= 600; i++ {
		p.Line("stdout", fmt.Sprintf("line %d", i))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("writing 300 lines without a server took %s", d)
	}

	s2 := logtest.StartServer(t, natsserver.Config{StoreDir: dir, Port: port})
	logtest.ClosePublisher(t, p)
	logtest.WaitFor(t, a, "d5", 600)
	lines := logtest.StoredLines(t, store, "d5")
	if len(lines) != 600 {
		t.Fatalf("stored %d lines, want 600", len(lines))
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %d", i+1); l.Text != want {
			t.Fatalf("line %d = %q, want %q", i+1, l.Text, want)
		}
	}
	if got := logtest.SubjectCount(t, s2.URL(), "d5"); got != 600 {
		t.Errorf("stream holds %d lines, want 600 (republished messages must be deduplicated)", got)
	}
	if n := strings.Count(stdout.String(), "\n"); n != 600 {
		t.Errorf("stdout got %d lines, want 600", n)
	}
}

// The publisher's own trouble reaches the service log it was given (the
// agent gives its own, which goes to agent.log), with the project and
// deployment: NATS going away and coming back, lines left in the spool at
// close, and the next publisher sending them.
func TestPublisherWarningsReachItsLogger(t *testing.T) {
	s1, dir, port := logtest.StoppableServer(t)
	spool := t.TempDir()
	logger, log := logtest.NewServiceLog()
	p := logtest.NewPublisher(t, publish.Config{URL: s1.URL(), Deployment: "w1", SpoolDir: spool, Logger: logger})
	p.Line("stdout", "line 1")
	s1.Shutdown()
	rec := log.Wait(t, "log stream disconnected", 30*time.Second)
	for _, want := range []string{"level=WARN", "project=" + logtest.Project, "deployment=w1"} {
		if !strings.Contains(rec, want) {
			t.Errorf("record %q lacks %q", rec, want)
		}
	}
	p.Line("stdout", "line 2")
	s2 := logtest.StartServer(t, natsserver.Config{StoreDir: dir, Port: port})
	log.Wait(t, "log stream reconnected", 30*time.Second)

	s2.Shutdown()
	p.Line("stdout", "line 3")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close with NATS down and a spool = %v, want nil", err)
	}
	rec = log.Wait(t, "log lines kept in the spool for the next publisher", time.Second)
	if !strings.Contains(rec, "level=WARN") || !strings.Contains(rec, "deployment=w1") {
		t.Errorf("record %q: want a warning naming deployment w1", rec)
	}

	s3 := logtest.StartServer(t, natsserver.Config{StoreDir: dir, Port: port})
	store := logtest.NewStore(t, "w1", "w2")
	a := logtest.StartArchiver(t, s3.URL(), store)
	logger2, log2 := logtest.NewServiceLog()
	p2 := logtest.NewPublisher(t, publish.Config{URL: s3.URL(), Deployment: "w2", SpoolDir: spool, Logger: logger2})
	log2.Wait(t, "sending log lines left in the spool", time.Second)
	logtest.ClosePublisher(t, p2)
	logtest.WaitFor(t, a, "w1", 3)
	logtest.CheckTexts(t, store, "w1", 3)
}

// TestFullBufferDropsLinesWithoutGaps: past the memory buffer (no spool)
// or the spool's bound, lines only reach stdout, and one line says how many
// were dropped; the numbering has no gap.
func TestFullBufferDropsLinesWithoutGaps(t *testing.T) {
	tests := []struct {
		name  string
		cfg   publish.Config
		bound int64 // spool bytes, if a spool
	}{
		{"memory buffer", publish.Config{MaxBufferBytes: 8 << 10}, 0},
		{"spool", publish.Config{SpoolDir: t.TempDir(), MaxSpoolBytes: 32 << 10}, 32 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s1, dir, port := logtest.StoppableServer(t)
			var stdout bytes.Buffer
			cfg := tt.cfg
			var log *logtest.ServiceLog
			cfg.URL, cfg.Deployment, cfg.Stdout = s1.URL(), "d6", &stdout
			cfg.Logger, log = logtest.NewServiceLog()
			p := logtest.NewPublisher(t, cfg)
			s1.Shutdown()
			// The client learns of the shutdown asynchronously; lines
			// written before that go to memory, not the spool.
			log.Wait(t, "log stream disconnected", 30*time.Second)
			const total = 2000
			for i := 1; i <= total; i++ {
				p.Line("stdout", fmt.Sprintf("line %d", i))
			}
			if n := strings.Count(stdout.String(), "\n"); n != total {
				t.Errorf("stdout got %d lines, want all %d", n, total)
			}
			log.Wait(t, "log stream buffer full: dropping lines", time.Second)
			accepted := p.LastLine()
			if accepted == 0 || accepted >= total {
				t.Fatalf("accepted %d lines with a full buffer and no server, want some but not all", accepted)
			}
			if tt.bound > 0 {
				if size := spoolSize(t, cfg.SpoolDir); size > tt.bound {
					t.Errorf("spool holds %d bytes, bound is %d", size, tt.bound)
				}
			}

			s2 := logtest.StartServer(t, natsserver.Config{StoreDir: dir, Port: port})
			logtest.ClosePublisher(t, p)
			store := logtest.NewStore(t, "d6")
			a := logtest.StartArchiver(t, s2.URL(), store)
			logtest.WaitFor(t, a, "d6", accepted+1)
			lines := logtest.StoredLines(t, store, "d6")
			if int64(len(lines)) != accepted+1 {
				t.Fatalf("stored %d lines, want %d accepted + 1 notice", len(lines), accepted)
			}
			notice := lines[len(lines)-1].Text
			if want := fmt.Sprintf("%d log lines were not published", total-accepted); !strings.Contains(notice, want) {
				t.Errorf("last line = %q, want it to say %q", notice, want)
			}
		})
	}
}

func TestWriterSplitsLines(t *testing.T) {
	long := strings.Repeat("x", 40000)
	euros := strings.Repeat("€", 6000) // 18000 bytes; 16384 is not a rune boundary
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"lf", []string{"a\nb\n"}, []string{"a", "b"}},
		{"crlf", []string{"a\r\nb\r\n"}, []string{"a", "b"}},
		{"crlf split across writes", []string{"a\r", "\nb\r\n"}, []string{"a", "b"}},
		{"line across writes", []string{"he", "llo\nwor", "ld\n"}, []string{"hello", "world"}},
		{"empty lines", []string{"\n\n"}, []string{"", ""}},
		{"partial line flushed on close", []string{"a\nb"}, []string{"a", "b"}},
		{"partial line with cr", []string{"a\r"}, []string{"a"}},
		{"long line", []string{long + "\n"}, []string{long[:16384], long[16384:32768], long[32768:]}},
		{"long line in small writes", chunks(long+"\nend\n", 1000), []string{long[:16384], long[16384:32768], long[32768:], "end"}},
		{"long line without newline", []string{long}, []string{long[:16384], long[16384:32768], long[32768:]}},
		{"long multibyte line", []string{euros + "\n"}, []string{euros[:16383], euros[16383:]}},
		{"invalid utf-8", []string{"ok\xff\xfeok\n", "\xc3\n"}, []string{"ok\uFFFDok", "\uFFFD"}},
	}
	s := logtest.StartServer(t, natsserver.Config{})
	var deps []string
	for i := range tests {
		deps = append(deps, fmt.Sprintf("split%d", i))
	}
	store := logtest.NewStore(t, deps...)
	a := logtest.StartArchiver(t, s.URL(), store)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dep := fmt.Sprintf("split%d", i)
			p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: dep})
			w := p.Writer("stderr", "compile")
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", len(s), n, err)
				}
			}
			logtest.ClosePublisher(t, p) // flushes the writer's partial line
			logtest.WaitFor(t, a, dep, int64(len(tt.want)))
			lines := logtest.StoredLines(t, store, dep)
			got := logtest.Texts(lines)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d lines %.80q, want %d %.80q", len(got), got, len(tt.want), tt.want)
			}
			for j := range got {
				if got[j] != tt.want[j] {
					t.Errorf("line %d = %.60q (%d bytes), want %.60q (%d bytes)", j+1, got[j], len(got[j]), tt.want[j], len(tt.want[j]))
				}
				if !utf8.ValidString(got[j]) || len(got[j]) > natslog.MaxLineBytes {
					t.Errorf("line %d: %d bytes, valid UTF-8 %v", j+1, len(got[j]), utf8.ValidString(got[j]))
				}
				if lines[j].Stream != "stderr" || lines[j].Step != "compile" {
					t.Errorf("line %d: stream %q step %q, want stderr compile", j+1, lines[j].Stream, lines[j].Step)
				}
			}
		})
	}
}

func chunks(s string, size int) []string {
	var out []string
	for len(s) > size {
		out = append(out, s[:size])
		s = s[size:]
	}
	return append(out, s)
}

func TestWriterFlushStepAndStdout(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "d7")
	a := logtest.StartArchiver(t, s.URL(), store)
	var stdout bytes.Buffer
	p := logtest.NewPublisher(t, publish.Config{
		URL: s.URL(), Deployment: "d7", Stdout: &stdout,
		Redact: redact.New("hunter2"),
	})
	w := p.Writer("stdout", "")
	p.SetStep("fetch")
	io.WriteString(w, "password hunter2\npartial")
	if err := w.(interface{ Flush() error }).Flush(); err != nil {
		t.Fatal(err)
	}
	p.SetStep("")
	p.Line("stderr", "two\nlines\r\n")
	zap.New(p.Core(zapcore.InfoLevel)).Info("pushed", zap.String("step", "push"), zap.String("digest", "sha256:abc"))
	logtest.ClosePublisher(t, p)
	p.Line("stdout", "after close") // stdout only

	logtest.WaitFor(t, a, "d7", 5)
	got := logtest.StoredLines(t, store, "d7")
	want := []slipway.LogLine{
		{N: 1, Stream: "stdout", Step: "fetch", Text: "password [redacted]"},
		{N: 2, Stream: "stdout", Step: "fetch", Text: "partial"},
		{N: 3, Stream: "stderr", Text: "two"},
		{N: 4, Stream: "stderr", Text: "lines"},
		{N: 5, Stream: "stdout", Step: "push", Text: "pushed digest=sha256:abc"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines %q, want %d", len(got), logtest.Texts(got), len(want))
	}
	for i := range want {
		g := got[i]
		if g.Stream != want[i].Stream || g.Step != want[i].Step || g.Text != want[i].Text {
			t.Errorf("line %d = {%s %s %q}, want {%s %s %q}", i+1, g.Stream, g.Step, g.Text, want[i].Stream, want[i].Step, want[i].Text)
		}
	}
	wantStdout := "[fetch] password [redacted]\n[fetch] partial\ntwo\nlines\n[push] pushed digest=sha256:abc\nafter close\n"
	if stdout.String() != wantStdout {
		t.Errorf("stdout = %q, want %q", stdout.String(), wantStdout)
	}
}

func TestConcurrentWriters(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := logtest.NewStore(t, "d10")
	a := logtest.StartArchiver(t, s.URL(), store)
	p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "d10"})
	var wg sync.WaitGroup
	for _, stream := range []string{"stdout", "stderr"} {
		w := p.Writer(stream, "")
		wg.Go(func() {
			for i := range 500 {
				fmt.Fprintf(w, "%s %d\n", stream, i)
			}
		})
	}
	wg.Wait()
	logtest.ClosePublisher(t, p)
	logtest.WaitFor(t, a, "d10", 1000)
	lines := logtest.StoredLines(t, store, "d10")
	if len(lines) != 1000 {
		t.Fatalf("stored %d lines, want 1000", len(lines))
	}
	next := map[string]int{}
	for _, l := range lines {
		if want := fmt.Sprintf("%s %d", l.Stream, next[l.Stream]); l.Text != want {
			t.Fatalf("line %d = %q, want %q", l.N, l.Text, want)
		}
		next[l.Stream]++
	}
}

// BenchmarkPublish reports how many lines per second one publisher gets
// acknowledged by an embedded server (informational).
func BenchmarkPublish(b *testing.B) {
	s := logtest.StartServer(b, natsserver.Config{})
	p, err := publish.New(b.Context(), publish.Config{URL: s.URL(), Project: logtest.Project, Deployment: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("x", 100)
	b.ResetTimer()
	for range b.N {
		p.Line("stdout", text)
	}
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func TestCloseGivesUpWhenNATSIsGone(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: "d11"})
	s.Shutdown()
	p.Line("stdout", "nobody hears this")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "not acknowledged") {
		t.Errorf("Close() = %v, want an error about unacknowledged lines", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %s with a 300ms deadline", d)
	}
	if err2 := p.Close(t.Context()); err2 != err {
		t.Errorf("second Close() = %v, want the first result %v", err2, err)
	}
}
