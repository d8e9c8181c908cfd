package applog_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/applog"
	"github.com/slipway-ci/slipway/apps"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

const secret = "hunter2-Secret"

// files is a Source whose apps write to log files in a directory, one
// per container as podman lays them out (<dir>/<name>/userdata/ctr.log).
type files struct{ dir string }

func (f files) path(inst *apps.Instance) string {
	return filepath.Join(f.dir, inst.Name, "userdata", "ctr.log")
}

func (f files) LogSource(_ context.Context, inst *apps.Instance) (string, func(string) string, error) {
	p := f.path(inst)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", nil, err
	}
	return p, func(s string) string { return strings.ReplaceAll(s, secret, "***") }, nil
}

// write appends k8s-file lines to inst's log: each "stdout text" or
// "stderr text", "P" after the stream for a partial line.
func (f files) write(t testing.TB, inst *apps.Instance, lines ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(f.path(inst)), 0o755); err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(f.path(inst), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	for _, l := range lines {
		stream, text, _ := strings.Cut(l, " ")
		tag := "F"
		if p, ok := strings.CutPrefix(text, "P "); ok {
			tag, text = "P", p
		}
		fmt.Fprintf(fh, "%s %s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), stream, tag, text)
	}
}

func start(t *testing.T, url string, src applog.Source, store slipway.AppLogStore) *applog.Pipeline {
	t.Helper()
	p, err := applog.Start(t.Context(), applog.Config{URL: url, Source: src, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// waitStored waits until the project's store holds n app lines, and
// returns them.
func waitStored(t *testing.T, store slipway.AppLogStore, project string, n int) []slipway.AppLogLine {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines, err := store.AppLogLines(t.Context(), slipway.AppLogQuery{Project: project})
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) >= n || time.Now().After(deadline) {
			if len(lines) != n {
				t.Fatalf("stored %d lines of %s, want %d: %+v", len(lines), project, n, lines)
			}
			return lines
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func line(l slipway.AppLogLine) string {
	return fmt.Sprintf("%d %s %s %s", l.N, l.Release, l.Stream, l.Text)
}

func TestCollectArchiveFollow(t *testing.T) {
	ns := logtest.StartServer(t, natsserver.Config{})
	store := sqlitetest.Open(t)
	sqlitetest.AddProject(t, store, slipway.Project{Name: "web"})
	src := files{t.TempDir()}
	p := start(t, ns.URL(), src, store)

	r1 := &apps.Instance{Name: "slipway-app-web-d1", Project: "web", Release: "d1"}
	src.write(t, r1, "stdout before the collector", "stderr P a long ", "stderr line, whole")
	preview := &apps.Instance{Name: "slipway-app-web-pr-3-d9", Project: "web", Release: "d9", Preview: 3}
	src.write(t, preview, "stdout a preview's line")
	p.Add(preview)
	p.Add(r1)
	src.write(t, r1, "stdout the key is "+secret)
	lines := waitStored(t, store, "web", 3)
	want := []string{"1 d1 stdout before the collector", "2 d1 stderr a long line, whole", "3 d1 stdout the key is ***"}
	for i, l := range lines {
		if line(l) != want[i] {
			t.Errorf("line %d = %q, want %q", i+1, line(l), want[i])
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var followed []string
	done := make(chan error, 1)
	go func() {
		done <- p.Follow(ctx, "web", 2, "", func(ls []slipway.AppLogLine) error {
			mu.Lock()
			defer mu.Unlock()
			for _, l := range ls {
				followed = append(followed, line(l))
			}
			return nil
		})
	}()
	// A new release's container, and the old one's file started anew
	// (podman past its size limit: a new file renamed over it).
	r2 := &apps.Instance{Name: "slipway-app-web-d2", Project: "web", Release: "d2"}
	p.Add(r2)
	src.write(t, r2, "stdout two")
	waitStored(t, store, "web", 4)
	tmp := src.path(r1) + ".tmp"
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, src.path(r1)); err != nil {
		t.Fatal(err)
	}
	src.write(t, r1, "stdout after rotation")
	waitStored(t, store, "web", 5)

	deadline := time.Now().Add(10 * time.Second)
	wantFollowed := "3 d1 stdout the key is ***|4 d2 stdout two|5 d1 stdout after rotation"
	for {
		mu.Lock()
		got := strings.Join(followed, "|")
		mu.Unlock()
		if got == wantFollowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("followed %q, want %q", got, wantFollowed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Follow ended with %v after its context, want nil", err)
	}
}

// A restarted collector reads the files from their start: it publishes
// only what it had not, and numbers on.
func TestRestartDoesNotRepeat(t *testing.T) {
	ns := logtest.StartServer(t, natsserver.Config{})
	store := sqlitetest.Open(t)
	sqlitetest.AddProject(t, store, slipway.Project{Name: "web"})
	src := files{t.TempDir()}
	inst := &apps.Instance{Name: "slipway-app-web-d1", Project: "web", Release: "d1"}
	p1 := start(t, ns.URL(), src, store)
	p1.Add(inst)
	src.write(t, inst, "stdout one", "stdout two")
	waitStored(t, store, "web", 2)
	p1.Close()
	p1.Close()

	src.write(t, inst, "stdout three")
	p2 := start(t, ns.URL(), src, store)
	p2.Add(inst)
	lines := waitStored(t, store, "web", 3)
	if got := line(lines[2]); got != "3 d1 stdout three" {
		t.Errorf("after a restart: %q, want %q", got, "3 d1 stdout three")
	}
	time.Sleep(200 * time.Millisecond) // nothing more may come
	waitStored(t, store, "web", 3)
}
