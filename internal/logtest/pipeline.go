package logtest

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/natslog/archive"
	"github.com/slipway-ci/slipway/natslog/publish"
	"github.com/slipway-ci/slipway/sqlite"
)

// StartArchiver starts an archiver into store that stops when the test
// ends.
func StartArchiver(t testing.TB, url string, store slipway.Store) *archive.Archiver {
	t.Helper()
	return startArchiver(t, archive.Config{URL: url, Store: store})
}

// RestartProofArchiver starts an archiver that stays up across a NATS
// restart: lines whose delivery the restart cut come again after a second.
func RestartProofArchiver(t testing.TB, url string, store slipway.Store) *archive.Archiver {
	t.Helper()
	return startArchiver(t, archive.Config{URL: url, Store: store, AckWait: time.Second})
}

func startArchiver(t testing.TB, cfg archive.Config) *archive.Archiver {
	t.Helper()
	a, err := archive.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

// NewPublisher starts a publisher (of Project unless cfg names another)
// that is closed when the test ends, if the test did not close it.
func NewPublisher(t testing.TB, cfg publish.Config) *publish.Publisher {
	t.Helper()
	if cfg.Project == "" {
		cfg.Project = Project
	}
	p, err := publish.New(t.Context(), cfg)
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

// ClosePublisher closes p, waiting up to 30 s for NATS to take its lines.
func ClosePublisher(t testing.TB, p *publish.Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// WaitFor waits up to 30 s for lines 1..n of deployment to be archived.
func WaitFor(t testing.TB, a *archive.Archiver, deployment string, n int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := a.WaitFor(ctx, deployment, n); err != nil {
		t.Fatal(err)
	}
}

// StoredLines returns the deployment's archived lines and checks that they
// are numbered 1..len without gaps.
func StoredLines(t testing.TB, store slipway.Store, deployment string) []slipway.LogLine {
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

// CheckTexts fails unless the deployment's stored lines are exactly
// "line 1".."line n" (StoredLines already checks the numbering).
func CheckTexts(t testing.TB, store slipway.Store, deployment string, n int) {
	t.Helper()
	lines := StoredLines(t, store, deployment)
	if len(lines) != n {
		t.Fatalf("%s: stored %d lines, want %d", deployment, len(lines), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %d", i+1); l.Text != want {
			t.Fatalf("%s: line %d = %q, want %q", deployment, i+1, l.Text, want)
		}
	}
}

// Texts returns the lines' texts.
func Texts(lines []slipway.LogLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out
}

// SubjectCount is how many lines the stream holds for a deployment of
// Project. It fails the test if a line is there twice (JetStream's dedup
// by message id must keep a republished message out).
func SubjectCount(t testing.TB, url, deployment string) uint64 {
	t.Helper()
	lines, _ := testenv.StreamLines(t, url, Project, deployment)
	seen := make(map[int64]bool, len(lines))
	for _, l := range lines {
		if seen[l.N] {
			t.Fatalf("the stream holds line %d of %s twice", l.N, deployment)
		}
		seen[l.N] = true
	}
	return uint64(len(lines))
}

// WriteLines writes "line from".."line to", one per line.
func WriteLines(w io.Writer, from, to int) {
	for i := from; i <= to; i++ {
		fmt.Fprintf(w, "line %d\n", i)
	}
}

// LineJSON is line n of deployment ("line n") as a publisher writes it.
func LineJSON(deployment string, n int64) string {
	return fmt.Sprintf(`{"deployment":%q,"n":%d,"time":"2026-01-01T00:00:00Z","stream":"stdout","text":"line %d"}`, deployment, n, n)
}

// BatchJSON is lines from..to of deployment as one message.
func BatchJSON(deployment string, from, to int64) string {
	parts := make([]string, 0, to-from+1)
	for n := from; n <= to; n++ {
		parts = append(parts, LineJSON(deployment, n))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// SQLiteDeployment opens a real store with project Project and one
// building deployment.
func SQLiteDeployment(t testing.TB) (*sqlite.DB, *slipway.Deployment) {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	if err := db.CreateProject(ctx, &slipway.Project{Name: Project, Repo: "file:///r"}); err != nil {
		t.Fatal(err)
	}
	d, _, err := db.CreateDeployment(ctx, &slipway.Deployment{Project: Project, Status: slipway.StatusQueued})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.MarkBuilding(ctx, d.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	return db, d
}
