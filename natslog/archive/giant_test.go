package archive_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/logtest"
	"github.com/slipway-ci/slipway/natslog/archive"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/natsserver"
	"github.com/slipway-ci/slipway/sqlite"
)

// TestGiantBinaryOutputReachesSQLite writes what the fault suite's
// giant-binary-output build prints (6 MB of random bytes, then a 2 MB line,
// then a marker) through a LineWriter, closes the publisher, and requires
// the archiver to store every line in a real SQLite store.
func TestGiantBinaryOutputReachesSQLite(t *testing.T) {
	s := logtest.StartServer(t, natsserver.Config{})
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	if err := db.CreateProject(ctx, &slipway.Project{Name: logtest.Project, Repo: "file:///x", Branch: "main", Dockerfile: "Dockerfile", Context: "."}); err != nil {
		t.Fatal(err)
	}
	d, _, err := db.CreateDeployment(ctx, &slipway.Deployment{Project: logtest.Project})
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Start(ctx, archive.Config{URL: s.URL(), Store: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	var stdout bytes.Buffer
	p := logtest.NewPublisher(t, publish.Config{URL: s.URL(), Deployment: d.ID, Stdout: &stdout, SpoolDir: t.TempDir()})
	out := make([]byte, 6_000_000)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(out)
	out = append(out, bytes.Repeat([]byte{'a'}, 2_000_000)...)
	out = append(out, "\ngiant-output-done\n"...)
	w := p.Writer("stdout", "build")
	for b := out; len(b) > 0; {
		n := min(len(b), 4096)
		_, _ = w.Write(b[:n])
		b = b[n:]
	}
	last := p.LastLine()
	start := time.Now()
	logtest.ClosePublisher(t, p)
	closed := time.Since(start)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := a.WaitFor(wctx, d.ID, last); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d lines (%d bytes on stdout); publisher closed in %s, archived %s after", last, stdout.Len(), closed.Round(time.Millisecond), (time.Since(start) - closed).Round(time.Millisecond))
	lines, err := db.LogLines(ctx, d.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(lines)) != last || int64(len(lines)) != int64(strings.Count(stdout.String(), "\n")) {
		t.Fatalf("stored %d lines, published %d, stdout %d", len(lines), last, strings.Count(stdout.String(), "\n"))
	}
	if got := lines[len(lines)-1].Text; got != "giant-output-done" {
		t.Errorf("last line %q, want the end marker", got)
	}
}
