package natslog_test

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
	"go.uber.org/zap/zaptest/observer"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/natslog"
	"github.com/slipway-ci/slipway/natsserver"
)

const project = "demo"

func startArchiver(t testing.TB, url string, store *memStore) *natslog.Archiver {
	t.Helper()
	a, err := natslog.StartArchiver(t.Context(), natslog.ArchiverConfig{URL: url, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

// restartProofArchiver starts an archiver that stays up across a NATS
// restart: lines whose delivery the restart cut come again after a second.
func restartProofArchiver(t testing.TB, url string, store *memStore) *natslog.Archiver {
	t.Helper()
	a, err := natslog.StartArchiver(t.Context(), natslog.ArchiverConfig{URL: url, Store: store, AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

func newPublisher(t testing.TB, cfg natslog.PublisherConfig) *natslog.Publisher {
	t.Helper()
	if cfg.Project == "" {
		cfg.Project = project
	}
	p, err := natslog.NewPublisher(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func closePublisher(t testing.TB, p *natslog.Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, a *natslog.Archiver, deployment string, n int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := a.WaitFor(ctx, deployment, n); err != nil {
		t.Fatal(err)
	}
}

// storedLines returns the deployment's archived lines and checks that they
// are numbered 1..len without gaps.
func storedLines(t testing.TB, store *memStore, deployment string) []slipway.LogLine {
	t.Helper()
	lines, err := store.LogLines(t.Context(), deployment, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		if l.N != int64(i+1) {
			t.Fatalf("line %d of %s has N=%d, want %d", i, deployment, l.N, i+1)
		}
		if l.Deployment != deployment {
			t.Fatalf("line %d: deployment %q, want %q", l.N, l.Deployment, deployment)
		}
	}
	return lines
}

func texts(lines []slipway.LogLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out
}

// subjectCount is how many lines the stream holds for a deployment. It
// fails the test if a line is there twice (JetStream's dedup by message id
// must keep a republished message out).
func subjectCount(t testing.TB, url, deployment string) uint64 {
	t.Helper()
	lines, _ := testenv.StreamLines(t, url, project, deployment)
	seen := make(map[int64]bool, len(lines))
	for _, l := range lines {
		if seen[l.N] {
			t.Fatalf("the stream holds line %d of %s twice", l.N, deployment)
		}
		seen[l.N] = true
	}
	return uint64(len(lines))
}

func TestSubject(t *testing.T) {
	if got, want := natslog.Subject("web", "d123"), "slipway.logs.web.d123"; got != want {
		t.Errorf("Subject(%q, %q) = %q, want %q", "web", "d123", got, want)
	}
}

func TestNewPublisherRejectsBadSubject(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	for _, dep := range []string{"", "a.b", "a*", "a>", "a b"} {
		_, err := natslog.NewPublisher(t.Context(), natslog.PublisherConfig{URL: s.URL(), Project: project, Deployment: dep})
		if slipway.ErrorCode(err) != slipway.EINVALID {
			t.Errorf("NewPublisher(deployment %q) error = %v, want code %s", dep, err, slipway.EINVALID)
		}
	}
}

func TestPublishThousandLines(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := newMemStore()
	a := startArchiver(t, s.URL(), store)
	var stdout bytes.Buffer
	p := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "d1", Stdout: &stdout})
	p.SetStep("build")
	for i := 1; i <= 1000; i++ {
		p.Line("stdout", fmt.Sprintf("line %d", i))
	}
	closePublisher(t, p)
	if err := p.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitFor(t, a, "d1", 1000)

	lines := storedLines(t, store, "d1")
	if len(lines) != 1000 {
		t.Fatalf("stored %d lines, want 1000", len(lines))
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %d", i+1); l.Text != want || l.Step != "build" || l.Stream != "stdout" || l.Time.IsZero() {
			t.Fatalf("line %d = %+v, want text %q, step build, stream stdout", i+1, l, want)
		}
	}
	if _, dups := store.counts(); dups != 0 {
		t.Errorf("store saw %d duplicate writes, want 0", dups)
	}
	if got := subjectCount(t, s.URL(), "d1"); got != 1000 {
		t.Errorf("stream holds %d lines, want 1000", got)
	}
	if !strings.HasPrefix(stdout.String(), "[build] line 1\n[build] line 2\n") || strings.Count(stdout.String(), "\n") != 1000 {
		t.Errorf("stdout = %.60q..., want 1000 lines starting with %q", stdout.String(), "[build] line 1\n")
	}
}

func TestSecondPublisherContinuesNumbering(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := newMemStore()
	a := startArchiver(t, s.URL(), store)

	p1 := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "d2"})
	for i := 1; i <= 1000; i++ {
		p1.Line("stdout", fmt.Sprintf("first %d", i))
	}
	closePublisher(t, p1)

	p2 := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "d2"})
	if got := p2.LastLine(); got != 1000 {
		t.Fatalf("second publisher starts after line %d, want 1000", got)
	}
	p2.Line("stdout", "second 1")
	closePublisher(t, p2)

	waitFor(t, a, "d2", 1001)
	lines := storedLines(t, store, "d2")
	if len(lines) != 1001 || lines[1000].Text != "second 1" {
		t.Fatalf("stored %d lines, last %q; want 1001, last %q", len(lines), lines[len(lines)-1].Text, "second 1")
	}
	// Another deployment starts at 1.
	p3 := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "d3"})
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
		if _, err := js.Publish(t.Context(), natslog.Subject(project, "d9"), data); err != nil {
			t.Fatal(err)
		}
	}
	p := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "d9"})
	if got := p.LastLine(); got != 4 {
		t.Errorf("LastLine() = %d, want 4", got)
	}
}

func TestStreamSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	s1, err := natsserver.Start(natsserver.Config{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t, natslog.PublisherConfig{URL: s1.URL(), Deployment: "d4"})
	for i := 1; i <= 500; i++ {
		p.Line("stdout", fmt.Sprintf("line %d", i))
	}
	closePublisher(t, p)
	s1.Shutdown()

	s2 := logtest.StartServer(t, natsserver.Config{StoreDir: dir})
	store := newMemStore()
	a := startArchiver(t, s2.URL(), store)
	waitFor(t, a, "d4", 500)
	if lines := storedLines(t, store, "d4"); len(lines) != 500 || lines[499].Text != "line 500" {
		t.Fatalf("stored %d lines after restart, want 500", len(lines))
	}
}

func TestPublisherRidesOutServerRestart(t *testing.T) {
	s1, dir, port := logtest.StoppableServer(t)
	store := newMemStore()
	a := restartProofArchiver(t, s1.URL(), store)
	var stdout bytes.Buffer
	p := newPublisher(t, natslog.PublisherConfig{URL: s1.URL(), Deployment: "d5", Stdout: &stdout})
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
	closePublisher(t, p)
	waitFor(t, a, "d5", 600)
	lines := storedLines(t, store, "d5")
	if len(lines) != 600 {
		t.Fatalf("stored %d lines, want 600", len(lines))
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %d", i+1); l.Text != want {
			t.Fatalf("line %d = %q, want %q", i+1, l.Text, want)
		}
	}
	if got := subjectCount(t, s2.URL(), "d5"); got != 600 {
		t.Errorf("stream holds %d lines, want 600 (republished messages must be deduplicated)", got)
	}
	if n := strings.Count(stdout.String(), "\n"); n != 600 {
		t.Errorf("stdout got %d lines, want 600", n)
	}
}

// TestFullBufferDropsLinesWithoutGaps: past the memory buffer (no spool)
// or the spool's bound, lines only reach stdout, and one line says how many
// were dropped; the numbering has no gap.
func TestFullBufferDropsLinesWithoutGaps(t *testing.T) {
	tests := []struct {
		name  string
		cfg   natslog.PublisherConfig
		bound int64 // spool bytes, if a spool
	}{
		{"memory buffer", natslog.PublisherConfig{MaxBufferBytes: 8 << 10}, 0},
		{"spool", natslog.PublisherConfig{SpoolDir: t.TempDir(), MaxSpoolBytes: 32 << 10}, 32 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s1, dir, port := logtest.StoppableServer(t)
			var stdout bytes.Buffer
			cfg := tt.cfg
			core, seen := observer.New(zapcore.WarnLevel)
			cfg.URL, cfg.Deployment, cfg.Stdout, cfg.Logger = s1.URL(), "d6", &stdout, zap.New(core)
			p := newPublisher(t, cfg)
			s1.Shutdown()
			// The client learns of the shutdown asynchronously; lines
			// written before that go to memory, not the spool.
			for deadline := time.Now().Add(30 * time.Second); seen.FilterMessage("log stream disconnected").Len() == 0; {
				if time.Now().After(deadline) {
					t.Fatal("the publisher never noticed the server shut down")
				}
				time.Sleep(10 * time.Millisecond)
			}
			const total = 2000
			for i := 1; i <= total; i++ {
				p.Line("stdout", fmt.Sprintf("line %d", i))
			}
			if n := strings.Count(stdout.String(), "\n"); n != total {
				t.Errorf("stdout got %d lines, want all %d", n, total)
			}
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
			closePublisher(t, p)
			store := newMemStore()
			a := startArchiver(t, s2.URL(), store)
			waitFor(t, a, "d6", accepted+1)
			lines := storedLines(t, store, "d6")
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
	store := newMemStore()
	a := startArchiver(t, s.URL(), store)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dep := fmt.Sprintf("split%d", i)
			p := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: dep})
			w := p.Writer("stderr", "compile")
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", len(s), n, err)
				}
			}
			closePublisher(t, p) // flushes the writer's partial line
			waitFor(t, a, dep, int64(len(tt.want)))
			lines := storedLines(t, store, dep)
			got := texts(lines)
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
	store := newMemStore()
	a := startArchiver(t, s.URL(), store)
	var stdout bytes.Buffer
	p := newPublisher(t, natslog.PublisherConfig{
		URL: s.URL(), Deployment: "d7", Stdout: &stdout,
		Redact: func(s string) string { return strings.ReplaceAll(s, "hunter2", "***") },
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
	closePublisher(t, p)
	p.Line("stdout", "after close") // stdout only

	waitFor(t, a, "d7", 5)
	got := storedLines(t, store, "d7")
	want := []slipway.LogLine{
		{N: 1, Stream: "stdout", Step: "fetch", Text: "password ***"},
		{N: 2, Stream: "stdout", Step: "fetch", Text: "partial"},
		{N: 3, Stream: "stderr", Text: "two"},
		{N: 4, Stream: "stderr", Text: "lines"},
		{N: 5, Stream: "stdout", Step: "push", Text: "pushed digest=sha256:abc"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines %q, want %d", len(got), texts(got), len(want))
	}
	for i := range want {
		g := got[i]
		if g.Stream != want[i].Stream || g.Step != want[i].Step || g.Text != want[i].Text {
			t.Errorf("line %d = {%s %s %q}, want {%s %s %q}", i+1, g.Stream, g.Step, g.Text, want[i].Stream, want[i].Step, want[i].Text)
		}
	}
	wantStdout := "[fetch] password ***\n[fetch] partial\ntwo\nlines\n[push] pushed digest=sha256:abc\nafter close\n"
	if stdout.String() != wantStdout {
		t.Errorf("stdout = %q, want %q", stdout.String(), wantStdout)
	}
}

func TestArchiverRestartDoesNotDuplicate(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := newMemStore()
	a1 := startArchiver(t, s.URL(), store)
	p1 := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "d8"})
	for i := 1; i <= 200; i++ {
		p1.Line("stdout", fmt.Sprintf("line %d", i))
	}
	closePublisher(t, p1)
	waitFor(t, a1, "d8", 200)
	a1.Stop()
	a1.Stop()
	if err := a1.WaitFor(t.Context(), "d8", 201); err == nil {
		t.Error("WaitFor on a stopped archiver for a missing line succeeded")
	}
	waitConsumerSettled(t, s.URL(), "slipway-archiver")

	a2 := startArchiver(t, s.URL(), store)
	p2 := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "d8"})
	for i := 201; i <= 300; i++ {
		p2.Line("stdout", fmt.Sprintf("line %d", i))
	}
	closePublisher(t, p2)
	waitFor(t, a2, "d8", 300)
	if lines := storedLines(t, store, "d8"); len(lines) != 300 {
		t.Fatalf("stored %d lines, want 300", len(lines))
	}
	if writes, dups := store.counts(); writes != 300 || dups != 0 {
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
	store := newMemStore()
	store.refuse["gone"] = true
	a := startArchiver(t, s.URL(), store)

	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	publish := func(dep, data string) {
		t.Helper()
		if _, err := js.Publish(t.Context(), natslog.Subject(project, dep), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	publish("bad", "not json")
	publish("bad", `{"deployment":"other","n":1,"text":"x"}`)
	publish("bad", `{"deployment":"bad","n":0,"text":"x"}`)
	publish("gone", `{"deployment":"gone","n":1,"text":"x"}`)
	publish("bad", `{"deployment":"bad","n":1,"text":"good"}`)
	waitFor(t, a, "bad", 1)
	if lines := storedLines(t, store, "bad"); len(lines) != 1 || lines[0].Text != "good" {
		t.Fatalf("stored %q, want only the good line", texts(lines))
	}
	waitConsumerSettled(t, s.URL(), "slipway-archiver")

	// A store that fails for a while: the line is retried, not lost.
	store.mu.Lock()
	store.failNext = 3
	store.mu.Unlock()
	publish("bad", `{"deployment":"bad","n":2,"text":"late"}`)
	waitFor(t, a, "bad", 2)
	waitConsumerSettled(t, s.URL(), "slipway-archiver")
}

func TestConcurrentWriters(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	store := newMemStore()
	a := startArchiver(t, s.URL(), store)
	p := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "d10"})
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
	closePublisher(t, p)
	waitFor(t, a, "d10", 1000)
	lines := storedLines(t, store, "d10")
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
	p, err := natslog.NewPublisher(b.Context(), natslog.PublisherConfig{URL: s.URL(), Project: project, Deployment: "bench"})
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
	p := newPublisher(t, natslog.PublisherConfig{URL: s.URL(), Deployment: "d11"})
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
