package sqlite

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// waitIndexed waits until the background indexer has reached every stored
// line.
func waitIndexed(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var upto, max int64
		if err := db.read.QueryRowContext(t.Context(), `SELECT (SELECT indexed_upto FROM log_index), COALESCE((SELECT MAX(rowid) FROM log_lines), 0)`).Scan(&upto, &max); err != nil {
			t.Fatal(err)
		}
		if upto >= max {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the indexer is at %d of %d after 60s", upto, max)
		}
		db.indexer.poke()
		time.Sleep(20 * time.Millisecond)
	}
}

// inIndex counts the rows of the search index matching word.
func inIndex(t *testing.T, db *DB, word string) int {
	t.Helper()
	var n int
	if err := db.read.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM log_lines_fts WHERE log_lines_fts MATCH ?`, ftsPhrase(word)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkIndex runs FTS5's integrity check, which for an external-content
// table also compares the index with log_lines.
func checkIndex(t *testing.T, db *DB) {
	t.Helper()
	if _, err := db.write.ExecContext(t.Context(), `INSERT INTO log_lines_fts (log_lines_fts, rank) VALUES ('integrity-check', 1)`); err != nil {
		t.Errorf("search index integrity check: %v", err)
	}
}

// logDeployment stores a deployment of project with lines lines of text
// "<word> <n> <padding>", created at created and, unless status is not
// terminal, finished at finished.
func logDeployment(t *testing.T, db *DB, project, word string, lines, pad int, status slipway.Status, created, finished time.Time) *slipway.Deployment {
	t.Helper()
	d := mustCreateDeployment(t, db, &slipway.Deployment{Project: project, CreatedAt: created})
	var ls []slipway.LogLine
	for n := 1; n <= lines; n++ {
		text := fmt.Sprintf("%s %d ", word, n)
		text += strings.Repeat("x", max(0, pad-len(text)))
		ls = append(ls, slipway.LogLine{Deployment: d.ID, N: int64(n), Time: created, Stream: "stdout", Step: "build", Text: text})
	}
	if err := db.AppendLogLines(t.Context(), ls); err != nil {
		t.Fatal(err)
	}
	switch {
	case status == slipway.StatusBuilding:
		if err := db.MarkBuilding(t.Context(), d.ID, created); err != nil {
			t.Fatal(err)
		}
	case status.Terminal():
		if err := db.FinishDeployment(t.Context(), d.ID, slipway.DeploymentResult{Status: status}, finished); err != nil {
			t.Fatal(err)
		}
	}
	return mustDeployment(t, db, d.ID)
}

func lineCount(t *testing.T, db *DB, id string) int {
	t.Helper()
	ls, err := db.LogLines(t.Context(), id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(ls)
}

func TestPruneLogsByAge(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	now := time.Now().UTC()
	day := 24 * time.Hour
	mustCreateProject(t, db, "app", "file:///app")
	mustCreateProject(t, db, "keep", "file:///keep") // no retention: keeps everything
	if _, err := db.SetLogRetention(ctx, "app", slipway.LogRetention{MaxAge: 7 * day}); err != nil {
		t.Fatal(err)
	}
	old := logDeployment(t, db, "app", "oldneedle", 50, 40, slipway.StatusSucceeded, now.Add(-10*day), now.Add(-10*day+time.Minute))
	failed := logDeployment(t, db, "app", "failedneedle", 50, 40, slipway.StatusFailed, now.Add(-9*day), now.Add(-9*day))
	recent := logDeployment(t, db, "app", "recentneedle", 50, 40, slipway.StatusSucceeded, now.Add(-2*day), now.Add(-2*day))
	// Queued or building for weeks: its log is never touched.
	running := logDeployment(t, db, "app", "runningneedle", 50, 40, slipway.StatusBuilding, now.Add(-30*day), time.Time{})
	queued := logDeployment(t, db, "app", "queuedneedle", 50, 40, slipway.StatusQueued, now.Add(-30*day), time.Time{})
	other := logDeployment(t, db, "keep", "otherneedle", 50, 40, slipway.StatusSucceeded, now.Add(-300*day), now.Add(-300*day))
	waitIndexed(t, db)
	if n := inIndex(t, db, "oldneedle"); n != 50 {
		t.Fatalf("before pruning the index has %d lines of the old deployment, want 50", n)
	}

	res, err := db.PruneLogs(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deployments != 2 || res.Lines != 100 || res.Bytes != 100*40 {
		t.Errorf("PruneLogs = %+v, want 2 deployments, 100 lines, 4000 bytes", res)
	}
	for _, tt := range []struct {
		d      *slipway.Deployment
		word   string
		pruned bool
	}{
		{old, "oldneedle", true},
		{failed, "failedneedle", true},
		{recent, "recentneedle", false},
		{running, "runningneedle", false},
		{queued, "queuedneedle", false},
		{other, "otherneedle", false},
	} {
		d := mustDeployment(t, db, tt.d.ID)
		lines, indexed := lineCount(t, db, d.ID), inIndex(t, db, tt.word)
		want := 50
		if tt.pruned {
			want = 0
		}
		if d.LogPruned != tt.pruned || lines != want || indexed != want {
			t.Errorf("%s: LogPruned %v, %d lines, %d in the index; want %v, %d, %d", tt.word, d.LogPruned, lines, indexed, tt.pruned, want, want)
		}
		if d.Status != tt.d.Status {
			t.Errorf("%s: status %s after pruning, want %s", tt.word, d.Status, tt.d.Status)
		}
		got, err := db.SearchLogLines(ctx, slipway.LogQuery{Deployment: d.ID, Search: tt.word})
		if err != nil || len(got) != want {
			t.Errorf("search %q = %d lines, %v; want %d", tt.word, len(got), err, want)
		}
	}
	checkIndex(t, db)

	// A second pass has nothing left to do.
	if res, err := db.PruneLogs(ctx, now); err != nil || res.Deployments != 0 {
		t.Errorf("second PruneLogs = %+v, %v; want nothing pruned", res, err)
	}
	// Once it ends, the long-running deployment's old log goes too.
	if err := db.FinishDeployment(ctx, running.ID, slipway.DeploymentResult{Status: slipway.StatusCancelled}, now.Add(-8*day)); err != nil {
		t.Fatal(err)
	}
	if res, err := db.PruneLogs(ctx, now); err != nil || res.Deployments != 1 || lineCount(t, db, running.ID) != 0 {
		t.Errorf("PruneLogs after the deployment ended = %+v, %v; want its log pruned", res, err)
	}
}

func TestPruneLogsBySize(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	now := time.Now().UTC()
	mustCreateProject(t, db, "app", "file:///app")
	// 100 lines of 100 bytes: 10,000 bytes of log each.
	running := logDeployment(t, db, "app", "runningneedle", 100, 100, slipway.StatusBuilding, now.Add(-5*time.Hour), time.Time{})
	d1 := logDeployment(t, db, "app", "firstneedle", 100, 100, slipway.StatusSucceeded, now.Add(-4*time.Hour), now.Add(-4*time.Hour))
	d2 := logDeployment(t, db, "app", "secondneedle", 100, 100, slipway.StatusFailed, now.Add(-3*time.Hour), now.Add(-3*time.Hour))
	d3 := logDeployment(t, db, "app", "thirdneedle", 100, 100, slipway.StatusSucceeded, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
	waitIndexed(t, db)

	// 40,000 bytes stored, the limit 25,000: the two oldest ended logs go
	// (the running one is older, but stays), leaving 20,000.
	if _, err := db.SetLogRetention(ctx, "app", slipway.LogRetention{MaxBytes: 25000}); err != nil {
		t.Fatal(err)
	}
	res, err := db.PruneLogs(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deployments != 2 || res.Bytes != 20000 {
		t.Errorf("PruneLogs = %+v, want 2 deployments, 20000 bytes", res)
	}
	for _, tt := range []struct {
		d      *slipway.Deployment
		word   string
		pruned bool
	}{
		{running, "runningneedle", false},
		{d1, "firstneedle", true},
		{d2, "secondneedle", true},
		{d3, "thirdneedle", false},
	} {
		d := mustDeployment(t, db, tt.d.ID)
		want := 100
		if tt.pruned {
			want = 0
		}
		if lines, indexed := lineCount(t, db, d.ID), inIndex(t, db, tt.word); d.LogPruned != tt.pruned || lines != want || indexed != want {
			t.Errorf("%s: LogPruned %v, %d lines, %d in the index; want %v, %d, %d", tt.word, d.LogPruned, lines, indexed, tt.pruned, want, want)
		}
	}
	checkIndex(t, db)

	// Under the limit: nothing more goes, even with a running deployment
	// over it on its own.
	if _, err := db.SetLogRetention(ctx, "app", slipway.LogRetention{MaxBytes: 5000}); err != nil {
		t.Fatal(err)
	}
	if res, err := db.PruneLogs(ctx, now); err != nil || res.Deployments != 1 {
		t.Errorf("PruneLogs at 5000 bytes = %+v, %v; want the last ended log pruned", res, err)
	}
	if n := lineCount(t, db, running.ID); n != 100 {
		t.Errorf("the running deployment has %d lines after pruning, want 100", n)
	}
}

// Pruning the newest lines must not let later lines slip past the
// indexer: SQLite reuses rowids above the largest one left.
func TestPruneLogsThenIndexNewLines(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	now := time.Now().UTC()
	mustCreateProject(t, db, "app", "file:///app")
	logDeployment(t, db, "app", "keptneedle", 20, 40, slipway.StatusSucceeded, now.Add(-3*time.Hour), now.Add(-3*time.Hour))
	last := logDeployment(t, db, "app", "lastneedle", 500, 40, slipway.StatusSucceeded, now.Add(-2*time.Hour), now.Add(-2*time.Hour))
	waitIndexed(t, db)
	if _, err := db.SetLogRetention(ctx, "app", slipway.LogRetention{MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PruneLogs(ctx, now); err != nil {
		t.Fatal(err)
	}
	if !mustDeployment(t, db, last.ID).LogPruned {
		t.Fatal("the last deployment's log was not pruned")
	}
	fresh := logDeployment(t, db, "app", "freshneedle", 300, 40, slipway.StatusBuilding, now, time.Time{})
	waitIndexed(t, db)
	if n := inIndex(t, db, "freshneedle"); n != 300 {
		t.Errorf("the index has %d of the 300 lines stored after pruning", n)
	}
	if got, err := db.SearchLogLines(ctx, slipway.LogQuery{Deployment: fresh.ID, Search: "freshneedle"}); err != nil || len(got) != 300 {
		t.Errorf("search after pruning = %d lines, %v; want 300", len(got), err)
	}
	checkIndex(t, db)
}

func TestSetLogRetention(t *testing.T) {
	db, path := openTest(t)
	ctx := t.Context()
	p := &slipway.Project{Name: "app", Repo: "file:///app", LogRetention: slipway.LogRetention{MaxAge: 30 * 24 * time.Hour, MaxBytes: 500e6}}
	if err := db.CreateProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := db.Project(ctx, "app")
	if err != nil || got.LogRetention != p.LogRetention {
		t.Fatalf("Project = %+v, %v; want retention %+v", got, err, p.LogRetention)
	}
	got, err = db.SetLogRetention(ctx, "app", slipway.LogRetention{MaxBytes: 2e9})
	if err != nil || got.LogRetention != (slipway.LogRetention{MaxBytes: 2e9}) {
		t.Errorf("SetLogRetention = %+v, %v", got, err)
	}
	if _, err := db.SetLogRetention(ctx, "nope", slipway.LogRetention{}); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("SetLogRetention(unknown) = %v, want ENOTFOUND", err)
	}
	if _, err := db.SetLogRetention(ctx, "app", slipway.LogRetention{MaxAge: -time.Hour}); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("SetLogRetention(negative) = %v, want EINVALID", err)
	}
	// Kept across a reopen.
	db.Close()
	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if got, err := db2.Project(ctx, "app"); err != nil || got.LogRetention != (slipway.LogRetention{MaxBytes: 2e9}) {
		t.Errorf("after reopening: %+v, %v", got, err)
	}
}

func TestDeleteProject(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "gone", "https://github.com/acme/gone")
	mustCreateProject(t, db, "kept", "https://github.com/acme/kept")
	t0 := time.Now().Add(-time.Hour)
	logDeployment(t, db, "gone", "goneword", 5, 0, slipway.StatusSucceeded, t0, t0)
	kept := logDeployment(t, db, "kept", "keptword", 5, 0, slipway.StatusSucceeded, t0, t0)
	waitIndexed(t, db)
	// Lines past the indexer's mark too.
	running := logDeployment(t, db, "gone", "goneword", 3, 0, slipway.StatusBuilding, t0, t0)
	if _, err := db.SetSecret(ctx, "gone", "token", []byte("s3cr3t-value")); err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertMachine(ctx, &slipway.Machine{Project: "gone", Provider: "process", State: slipway.MachineAsleep}); err != nil {
		t.Fatal(err)
	}

	err := db.DeleteProject(ctx, "gone")
	wantCode(t, "DeleteProject with a deployment building", err, slipway.ECONFLICT, "")
	if _, err := db.Project(ctx, "gone"); err != nil {
		t.Fatalf("a refused DeleteProject removed the project: %v", err)
	}
	if err := db.FinishDeployment(ctx, running.ID, slipway.DeploymentResult{Status: slipway.StatusCancelled}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteProject(ctx, "gone"); err != nil {
		t.Fatalf("DeleteProject: %v", err)
	}
	wantCode(t, "Project after DeleteProject", func() error { _, err := db.Project(ctx, "gone"); return err }(), slipway.ENOTFOUND, "")
	wantCode(t, "DeleteProject again", db.DeleteProject(ctx, "gone"), slipway.ENOTFOUND, `project "gone" not found`)
	if ds, err := db.Deployments(ctx, "gone", 0); err != nil || len(ds) != 0 {
		t.Errorf("deployments after DeleteProject: %v, %v", ids(ds), err)
	}
	for table, q := range map[string]string{
		"log_lines":       `SELECT COUNT(*) FROM log_lines WHERE text LIKE 'goneword%'`,
		"machines":        `SELECT COUNT(*) FROM machines WHERE project = 'gone'`,
		"project_secrets": `SELECT COUNT(*) FROM project_secrets WHERE project = 'gone'`,
	} {
		var n int
		if err := db.read.QueryRowContext(ctx, q).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s keeps %d rows of the deleted project (%v)", table, n, err)
		}
	}
	if n := inIndex(t, db, "goneword"); n != 0 {
		t.Errorf("the search index keeps %d lines of the deleted project", n)
	}
	waitIndexed(t, db)
	checkIndex(t, db)
	if got, err := db.SearchLogLines(ctx, slipway.LogQuery{Deployment: kept.ID, Search: "keptword"}); err != nil || len(got) != 5 {
		t.Errorf("the other project's log after the deletion: %d lines, %v; want 5", len(got), err)
	}
	// The name is free again.
	mustCreateProject(t, db, "gone", "https://github.com/acme/gone")
}
