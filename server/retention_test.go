package server

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/internal/testenv"
	"github.com/slipway-ci/slipway/sqlite"
)

// The pruner applies retention at once, then again every interval, and
// stops when told.
func TestLogPruner(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	p := &slipway.Project{Name: "app", Repo: "file:///r", LogRetention: slipway.LogRetention{MaxAge: 24 * time.Hour}}
	if err := db.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	ended := func(age time.Duration) *slipway.Deployment {
		at := time.Now().Add(-age)
		d, _, err := db.CreateDeployment(ctx, &slipway.Deployment{Project: "app", CreatedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.AppendLogLines(ctx, []slipway.LogLine{{Deployment: d.ID, N: 1, Time: at, Text: "hello"}}); err != nil {
			t.Fatal(err)
		}
		if err := db.FinishDeployment(ctx, d.ID, slipway.DeploymentResult{Status: slipway.StatusSucceeded}, at); err != nil {
			t.Fatal(err)
		}
		return d
	}
	waitPruned := func(id string) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, "deployment "+id+"'s log pruned", func() bool {
			d, err := db.Deployment(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return d.LogPruned
		})
	}
	first := ended(48 * time.Hour)
	stop := startLogPruner(ctx, db, 50*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer stop()
	waitPruned(first.ID) // the pass at start
	second := ended(72 * time.Hour)
	waitPruned(second.ID) // a later pass
	stop()
	stop() // safe twice
	third := ended(72 * time.Hour)
	// Time must pass for the test: four of the stopped pruner's intervals,
	// in which it would have pruned third.
	time.Sleep(200 * time.Millisecond)
	if d, _ := db.Deployment(ctx, third.ID); d.LogPruned {
		t.Error("the pruner ran after it was stopped")
	}
}
