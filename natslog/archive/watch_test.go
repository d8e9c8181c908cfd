package archive_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/natslog"
	"github.com/slipway-ci/slipway/natslog/archive"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
)

func newWatcher(t *testing.T, url string, store slipway.Store, cfg archive.WatcherConfig) *archive.Watcher {
	t.Helper()
	cfg.URL, cfg.Store = url, store
	w, err := archive.NewWatcher(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// collector runs FollowLog in the background and gathers what it emits.
type collector struct {
	mu    sync.Mutex
	lines []slipway.LogLine
	done  chan error
}

func follow(t *testing.T, w *archive.Watcher, deployment string, from int64) *collector {
	t.Helper()
	c := &collector{done: make(chan error, 1)}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	go func() {
		defer cancel()
		c.done <- w.FollowLog(ctx, deployment, from, func(l slipway.LogLine) error {
			c.mu.Lock()
			c.lines = append(c.lines, l)
			c.mu.Unlock()
			return nil
		})
	}()
	return c
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// last returns the number of the last line emitted, or 0.
func (c *collector) last() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lines) == 0 {
		return 0
	}
	return int(c.lines[len(c.lines)-1].N)
}

// wait waits for FollowLog to return and checks that it emitted exactly
// the lines from..to, in order.
func (c *collector) wait(t *testing.T, from, to int64, within time.Duration) {
	t.Helper()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("FollowLog: %v", err)
		}
	case <-time.After(within):
		t.Fatalf("FollowLog did not return within %s (%d lines so far)", within, c.count())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if want := int(to - from + 1); len(c.lines) != want {
		t.Errorf("FollowLog emitted %d lines, want %d (%d..%d)", len(c.lines), want, from, to)
	}
	for i, l := range c.lines {
		if l.N != from+int64(i) {
			t.Fatalf("line %d emitted has N=%d, want %d: lines must come once each, in order", i, l.N, from+int64(i))
		}
		if want := fmt.Sprintf("line %d", l.N); l.Text != want {
			t.Errorf("line %d = %q, want %q", l.N, l.Text, want)
		}
	}
}

// Followers that join before, during and after the archiving of a build's
// log each see every line once, in order, and stop when the deployment
// ends.
func TestFollowReplayThenLive(t *testing.T) {
	srv := logtest.StartServer(t, natsserver.Config{})
	db, d := logtest.SQLiteDeployment(t)
	a, err := archive.Start(t.Context(), archive.Config{URL: srv.URL(), Store: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	w := newWatcher(t, srv.URL(), db, archive.WatcherConfig{})
	p := logtest.NewPublisher(t, publish.Config{URL: srv.URL(), Deployment: d.ID})

	early := follow(t, w, d.ID, 0)
	const half, total = 3000, 6000
	for n := 1; n <= half; n++ {
		p.Line("stdout", fmt.Sprintf("line %d", n))
	}
	logtest.WaitFor(t, a, d.ID, 2000) // part of it archived, the rest on its way
	mid := follow(t, w, d.ID, 1)
	fromMiddle := follow(t, w, d.ID, 1500)
	for n := half + 1; n <= total; n++ {
		p.Line("stdout", fmt.Sprintf("line %d", n))
		if n == half+1000 {
			// Let the followers catch up with the live end.
			for _, c := range []*collector{early, mid, fromMiddle} {
				testenv.WaitFor(t, time.Minute, fmt.Sprintf("a follower at line %d", n), func() bool { return c.last() == n })
			}
		}
	}
	logtest.ClosePublisher(t, p)
	select {
	case err := <-early.done:
		t.Fatalf("FollowLog returned before the deployment ended: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := db.FinishDeployment(t.Context(), d.ID, slipway.DeploymentResult{Status: slipway.StatusSucceeded}, time.Now()); err != nil {
		t.Fatal(err)
	}
	early.wait(t, 1, total, 30*time.Second)
	mid.wait(t, 1, total, 30*time.Second)
	fromMiddle.wait(t, 1500, total, 30*time.Second)

	// After the end: the whole log, at once.
	start := time.Now()
	late := follow(t, w, d.ID, 0)
	late.wait(t, 1, total, 30*time.Second)
	t.Logf("a follow of the finished %d-line log took %s", total, time.Since(start))
}

// publishRaw puts a line on the stream as a publisher would.
func publishRaw(t *testing.T, url string, d *slipway.Deployment, n int64) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(slipway.LogLine{Deployment: d.ID, N: n, Time: time.Now(), Stream: "stdout", Text: fmt.Sprintf("line %d", n)})
	if _, err := js.Publish(natslog.Subject(d.Project, d.ID), data); err != nil {
		t.Fatal(err)
	}
}

// A log whose lines exist only in the store (the stream expired them) is
// replayed whole, and the follow ends at once.
func TestFollowStoredOnly(t *testing.T) {
	srv := logtest.StartServer(t, natsserver.Config{})
	db, d := logtest.SQLiteDeployment(t)
	var lines []slipway.LogLine
	for n := int64(1); n <= 2500; n++ {
		lines = append(lines, slipway.LogLine{Deployment: d.ID, N: n, Time: time.Now(), Text: fmt.Sprintf("line %d", n)})
	}
	if err := db.AppendLogLines(t.Context(), lines); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishDeployment(t.Context(), d.ID, slipway.DeploymentResult{Status: slipway.StatusFailed}, time.Now()); err != nil {
		t.Fatal(err)
	}
	w := newWatcher(t, srv.URL(), db, archive.WatcherConfig{})
	follow(t, w, d.ID, 0).wait(t, 1, 2500, 5*time.Second)
	follow(t, w, d.ID, 2400).wait(t, 2400, 2500, 5*time.Second)

	// Without NATS the store is polled instead, whether the watcher
	// noticed that NATS is gone before the follow starts or only while
	// it follows the stream.
	srv.Shutdown()
	follow(t, w, d.ID, 2001).wait(t, 2001, 2500, 30*time.Second)
	follow(t, w, d.ID, 2201).wait(t, 2201, 2500, 30*time.Second)

	err := w.FollowLog(t.Context(), "d-nope", 0, func(slipway.LogLine) error { return nil })
	if slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("FollowLog of an unknown deployment = %v, want not_found", err)
	}
}

// A line missing from the stream holds back the lines after it only for
// GapTimeout; lines that arrive out of order are put in order.
func TestFollowGapsAndOrder(t *testing.T) {
	srv := logtest.StartServer(t, natsserver.Config{})
	db, d := logtest.SQLiteDeployment(t)
	w := newWatcher(t, srv.URL(), db, archive.WatcherConfig{GapTimeout: 500 * time.Millisecond, PollInterval: 100 * time.Millisecond})
	c := follow(t, w, d.ID, 0)
	for _, n := range []int64{2, 1, 3, 5, 6} { // 4 never comes
		publishRaw(t, srv.URL(), d, n)
	}
	testenv.WaitFor(t, 10*time.Second, "lines 1..3", func() bool { return c.count() >= 3 })
	// Time must pass for the test: 200 ms of GapTimeout's 500 in which
	// line 5 must not come out.
	time.Sleep(200 * time.Millisecond)
	if n := c.count(); n != 3 {
		t.Errorf("before the gap timed out: %d lines, want 1..3", n)
	}
	testenv.WaitFor(t, 10*time.Second, "lines 5 and 6 after the gap timed out", func() bool { return c.count() >= 5 })
	if err := db.FinishDeployment(t.Context(), d.ID, slipway.DeploymentResult{Status: slipway.StatusSucceeded}, time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FollowLog did not end")
	}
	var ns []int64
	for _, l := range c.lines {
		ns = append(ns, l.N)
	}
	if fmt.Sprint(ns) != "[1 2 3 5 6]" {
		t.Errorf("lines = %v, want [1 2 3 5 6]", ns)
	}
}

// A cancelled deployment's last lines, flushed by its agent just after the
// cancellation was recorded, still reach followers.
func TestFollowCancelledSettles(t *testing.T) {
	srv := logtest.StartServer(t, natsserver.Config{})
	db, d := logtest.SQLiteDeployment(t)
	w := newWatcher(t, srv.URL(), db, archive.WatcherConfig{Settle: time.Second})
	publishRaw(t, srv.URL(), d, 1)
	c := follow(t, w, d.ID, 0)
	notifying := w.NotifyingStore(db)
	if err := notifying.FinishDeployment(t.Context(), d.ID, slipway.DeploymentResult{Status: slipway.StatusCancelled}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Part of the scenario: line 2 comes late, within Settle.
	time.Sleep(300 * time.Millisecond)
	publishRaw(t, srv.URL(), d, 2)
	c.wait(t, 1, 2, 10*time.Second)
}

// A deployment the server recorded with a complete log ends a follow once
// every line up to its last is out, taking from the store what the stream
// did not deliver, and a stopped one does not wait Settle for late lines.
func TestFollowEndsWithTheRecordedLog(t *testing.T) {
	srv := logtest.StartServer(t, natsserver.Config{})
	db, d := logtest.SQLiteDeployment(t)
	w := newWatcher(t, srv.URL(), db, archive.WatcherConfig{Settle: time.Hour})
	publishRaw(t, srv.URL(), d, 1)
	c := follow(t, w, d.ID, 0)
	testenv.WaitFor(t, 10*time.Second, "line 1", func() bool { return c.count() >= 1 })
	// Lines 2 and 3 are in the store (archived), not in this stream.
	now := time.Now()
	if err := db.AppendLogLines(t.Context(), []slipway.LogLine{
		{Deployment: d.ID, N: 2, Time: now, Stream: "stdout", Text: "line 2"},
		{Deployment: d.ID, N: 3, Time: now, Stream: "stdout", Text: "line 3"},
	}); err != nil {
		t.Fatal(err)
	}
	r := slipway.DeploymentResult{Status: slipway.StatusCancelled, LogComplete: new(true), LogLines: 3}
	if err := w.NotifyingStore(db).FinishDeployment(t.Context(), d.ID, r, now); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 1, 3, 30*time.Second)
}

// The log of a deployment whose lines log retention deleted is not served
// again from the stream, which may keep them longer.
func TestFollowPrunedServesNothing(t *testing.T) {
	srv := logtest.StartServer(t, natsserver.Config{})
	db, d := logtest.SQLiteDeployment(t)
	w := newWatcher(t, srv.URL(), db, archive.WatcherConfig{})
	publishRaw(t, srv.URL(), d, 1)
	if err := db.AppendLogLines(t.Context(), []slipway.LogLine{{Deployment: d.ID, N: 1, Time: time.Now(), Stream: "stdout", Text: "line 1"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishDeployment(t.Context(), d.ID, slipway.DeploymentResult{Status: slipway.StatusSucceeded}, time.Now().Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetLogRetention(t.Context(), logtest.Project, slipway.LogRetention{MaxAge: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PruneLogs(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Deployment(t.Context(), d.ID); err != nil || !got.LogPruned {
		t.Fatalf("after PruneLogs: %+v, %v; want the log pruned", got, err)
	}
	c := follow(t, w, d.ID, 0)
	c.wait(t, 1, 0, 30*time.Second)
}

// NATS going away while a follow reads the stream does not leave it
// hanging: once the deployment ended it finishes from the store.
func TestFollowWhenNATSGoesAway(t *testing.T) {
	srv := logtest.StartServer(t, natsserver.Config{})
	db, d := logtest.SQLiteDeployment(t)
	w := newWatcher(t, srv.URL(), db, archive.WatcherConfig{GapTimeout: 500 * time.Millisecond, PollInterval: 100 * time.Millisecond})
	publishRaw(t, srv.URL(), d, 1)
	c := follow(t, w, d.ID, 0)
	testenv.WaitFor(t, 10*time.Second, "line 1", func() bool { return c.count() >= 1 })
	srv.Shutdown()
	// Line 2 reached the store (by an archiver, say) before NATS went.
	if err := db.AppendLogLines(t.Context(), []slipway.LogLine{{Deployment: d.ID, N: 2, Time: time.Now(), Text: "line 2"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishDeployment(t.Context(), d.ID, slipway.DeploymentResult{Status: slipway.StatusFailed}, time.Now()); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 1, 2, 30*time.Second)
}

// A follow from a line in the middle of a message starts exactly there,
// and a log of batches mixed with single-line messages (as an earlier
// version published) is read whole, by the Watcher and the Archiver.
func TestFollowFromMiddleOfBatch(t *testing.T) {
	srv := logtest.StartServer(t, natsserver.Config{})
	db, d := logtest.SQLiteDeployment(t)
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
	publish(logtest.BatchJSON(d.ID, 1, 10))
	publish(logtest.LineJSON(d.ID, 11))
	publish(logtest.LineJSON(d.ID, 12))
	publish(logtest.BatchJSON(d.ID, 13, 20))

	w := newWatcher(t, srv.URL(), db, archive.WatcherConfig{})
	fromMiddle := follow(t, w, d.ID, 5)
	fromLater := follow(t, w, d.ID, 16)
	fromStart := follow(t, w, d.ID, 1)
	if err := db.FinishDeployment(t.Context(), d.ID, slipway.DeploymentResult{Status: slipway.StatusSucceeded}, time.Now()); err != nil {
		t.Fatal(err)
	}
	fromMiddle.wait(t, 5, 20, 30*time.Second)
	fromLater.wait(t, 16, 20, 30*time.Second)
	fromStart.wait(t, 1, 20, 30*time.Second)

	a, err := archive.Start(t.Context(), archive.Config{URL: srv.URL(), Store: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	logtest.WaitFor(t, a, d.ID, 20)
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
