package sqlite

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

func TestSearchLogLines(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "app", "https://github.com/acme/app")
	d := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	other := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	texts := []struct{ step, text string }{
		{"fetch", "fetching 0123abc from file:///srv/app"},
		{"build", "STEP 1/3: FROM base"},
		{"build", "STEP 2/3: RUN npm ci"},
		{"build", "npm WARN deprecated glob@7.2.3: Glob versions prior to v9"},
		{"build", "\x1b[31mERROR\x1b[0m: TS2304 Cannot find name 'x' (50% done)"},
		{"build", "STEP 3/3: COPY . ."},
		{"push", "pushing 127.0.0.1:8080/app:0123abc"},
		{"push", `quoted "phrase here" ok`},
	}
	var lines []slipway.LogLine
	for i, x := range texts {
		lines = append(lines, slipway.LogLine{Deployment: d.ID, N: int64(i + 1), Time: time.Now(), Stream: "stdout", Step: x.step, Text: x.text})
	}
	if err := db.AppendLogLines(ctx, lines); err != nil {
		t.Fatal(err)
	}
	// The other deployment has the same text: a search never crosses over.
	otherLines := slices.Clone(lines)
	for i := range otherLines {
		otherLines[i].Deployment = other.ID
	}
	if err := db.AppendLogLines(ctx, otherLines); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		q    slipway.LogQuery
		want []int64
	}{
		{"all", slipway.LogQuery{}, []int64{1, 2, 3, 4, 5, 6, 7, 8}},
		{"one word", slipway.LogQuery{Search: "step"}, []int64{2, 3, 6}},
		{"ignores case", slipway.LogQuery{Search: "GLOB"}, []int64{4}},
		{"substring", slipway.LogQuery{Search: "0123ab"}, []int64{1, 7}},
		{"every term", slipway.LogQuery{Search: "step npm"}, []int64{3}},
		{"short term", slipway.LogQuery{Search: "ci"}, []int64{3}},
		{"short and long", slipway.LogQuery{Search: "3/3 ."}, []int64{6}},
		{"wildcards are literal", slipway.LogQuery{Search: "50%"}, []int64{5}},
		{"underscore literal", slipway.LogQuery{Search: "a_b"}, nil},
		{"inside colour codes", slipway.LogQuery{Search: "error"}, []int64{5}},
		{"quoted phrase", slipway.LogQuery{Search: `"phrase here"`}, []int64{8}},
		{"quote inside", slipway.LogQuery{Search: `"phrase`}, []int64{8}},
		{"no match", slipway.LogQuery{Search: "nothing like it"}, nil},
		{"step", slipway.LogQuery{Step: "push"}, []int64{7, 8}},
		{"step and search", slipway.LogQuery{Step: "build", Search: "step"}, []int64{2, 3, 6}},
		{"from", slipway.LogQuery{Search: "step", From: 3}, []int64{3, 6}},
		{"limit", slipway.LogQuery{Search: "step", Limit: 2}, []int64{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			q.Deployment = d.ID
			got, err := db.SearchLogLines(ctx, q)
			if err != nil {
				t.Fatalf("SearchLogLines(%+v): %v", q, err)
			}
			var ns []int64
			for _, l := range got {
				if l.Deployment != d.ID {
					t.Errorf("line of deployment %s in a search of %s", l.Deployment, d.ID)
				}
				ns = append(ns, l.N)
			}
			if !slices.Equal(ns, tt.want) {
				t.Errorf("SearchLogLines(%+v) = lines %v, want %v", q, ns, tt.want)
			}
			// The index agrees with the reference matcher.
			var ref []int64
			for _, l := range lines {
				if l.N >= q.From && slipway.MatchLogLine(l, q) && (q.Limit <= 0 || len(ref) < q.Limit) {
					ref = append(ref, l.N)
				}
			}
			if !slices.Equal(ns, ref) {
				t.Errorf("SearchLogLines(%+v) = %v, MatchLogLine selects %v", q, ns, ref)
			}
		})
	}
}

// Lines are searchable at once, and the indexer adds them to the search
// index in the background.
func TestIndexerCatchesUp(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "app", "file:///r")
	d := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	var lines []slipway.LogLine
	for n := int64(1); n <= 5000; n++ {
		lines = append(lines, slipway.LogLine{Deployment: d.ID, N: n, Time: time.Now(), Text: fmt.Sprintf("line %d needle-%d", n, n%10)})
	}
	if err := db.AppendLogLines(ctx, lines); err != nil {
		t.Fatal(err)
	}
	got, err := db.SearchLogLines(ctx, slipway.LogQuery{Deployment: d.ID, Search: "needle-7"})
	if err != nil || len(got) != 500 {
		t.Fatalf("search right after storing = %d lines, %v; want 500", len(got), err)
	}
	waitIndexed(t, db)
	var inIndex int
	if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM log_lines_fts WHERE log_lines_fts MATCH '"needle-7"'`).Scan(&inIndex); err != nil || inIndex != 500 {
		t.Errorf("the index has %d lines with needle-7, %v; want 500", inIndex, err)
	}
	got, err = db.SearchLogLines(ctx, slipway.LogQuery{Deployment: d.ID, Search: "needle-7", From: 4000})
	if err != nil || len(got) != 100 || got[0].N != 4007 {
		t.Errorf("search once indexed = %d lines, %v", len(got), err)
	}
}

// A database that had log lines before the search index existed gets them
// indexed by the migration.
func TestSearchIndexesOldLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slipway.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// Back to schema 3 with lines in it, as an older Slipway left it.
	for _, stmt := range []string{
		`DROP TABLE log_lines_fts`, `DROP TABLE api_tokens`, `DROP TABLE log_index`, `DROP TABLE project_secrets`, `DROP TABLE project_env`, `DROP TABLE previews`,
		`DROP TABLE app_log_lines`,
		`ALTER TABLE machines DROP COLUMN isolation`, `ALTER TABLE machines DROP COLUMN builder_user`, `DROP INDEX deployments_project_commit`,
		`DELETE FROM schema_migrations WHERE version > 3`,
	} {
		if _, err := db.write.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	mustCreateProject(t, db, "app", "file:///r")
	d := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	if _, err := db.write.ExecContext(ctx, `INSERT INTO log_lines (deployment, n, time, text) VALUES (?, 1, ?, 'an old needle')`, d.ID, formatTime(time.Now())); err != nil {
		t.Fatal(err)
	}
	// The later migrations' columns go last: the rows above were written with them.
	for _, stmt := range []string{
		`ALTER TABLE projects DROP COLUMN log_retention_seconds`, `ALTER TABLE projects DROP COLUMN log_retention_bytes`,
		`ALTER TABLE deployments DROP COLUMN log_pruned_at`,
		`ALTER TABLE deployments DROP COLUMN log_complete`, `ALTER TABLE deployments DROP COLUMN log_complete_at`,
		`ALTER TABLE deployments DROP COLUMN log_lines`, `ALTER TABLE projects DROP COLUMN build_args`,
		`DROP INDEX projects_hook_id`, `ALTER TABLE projects DROP COLUMN hook_id`,
		`ALTER TABLE projects DROP COLUMN log_max_lines`, `ALTER TABLE projects DROP COLUMN log_max_bytes`,
		`ALTER TABLE projects DROP COLUMN app_memory_bytes`, `ALTER TABLE projects DROP COLUMN app_cpus`,
		`ALTER TABLE projects DROP COLUMN app_health_path`, `ALTER TABLE projects DROP COLUMN app_idle_timeout_ms`,
		`ALTER TABLE projects DROP COLUMN app_stop_after_ms`, `ALTER TABLE projects DROP COLUMN app_port`,
		`ALTER TABLE deployments DROP COLUMN preview`,
		`ALTER TABLE projects DROP COLUMN release_id`,
	} {
		if _, err := db.write.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.SearchLogLines(ctx, slipway.LogQuery{Deployment: d.ID, Search: "needle"})
	if err != nil || len(got) != 1 {
		t.Errorf("search after the migration = %+v, %v; want the old line", got, err)
	}
}

// BenchmarkSearchLogLines searches one deployment of 20 with 20,000 lines each.
func BenchmarkSearchLogLines(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "slipway.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := b.Context()
	if err := db.CreateProject(ctx, &slipway.Project{Name: "app", Repo: "file:///r"}); err != nil {
		b.Fatal(err)
	}
	var target string
	for i := range 20 {
		d, _, err := db.CreateDeployment(ctx, &slipway.Deployment{Project: "app"})
		if err != nil {
			b.Fatal(err)
		}
		target = d.ID
		for start := 0; start < 20000; start += 1000 {
			batch := make([]slipway.LogLine, 0, 1000)
			for n := start; n < start+1000; n++ {
				batch = append(batch, slipway.LogLine{Deployment: d.ID, N: int64(n + 1), Time: time.Now(), Stream: "stdout", Step: "build",
					Text: fmt.Sprintf("STEP %d: RUN npm ci --prefer-offline # build %d line %d of the usual output", n%7, i, n)})
			}
			if err := db.AppendLogLines(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, like := range []string{"%line 12345 %", "%prefer-offline%", "%zzzz%"} {
		b.Run("like "+like, func(b *testing.B) {
			for b.Loop() {
				rows, err := db.read.QueryContext(ctx, `SELECT n, text FROM log_lines WHERE deployment = ? AND text LIKE ? ORDER BY n LIMIT 1000`, target, like)
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
			}
		})
	}
	for _, search := range []string{"line 12345 ", "prefer-offline", "zzzz"} {
		b.Run(search, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.SearchLogLines(ctx, slipway.LogQuery{Deployment: target, Search: search, Limit: 1000}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendLogLines writes batches of 256 lines (the archiver writes up to 1024);
// the full-text index costs most of the time.
func BenchmarkAppendLogLines(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "slipway.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := b.Context()
	if err := db.CreateProject(ctx, &slipway.Project{Name: "app", Repo: "file:///r"}); err != nil {
		b.Fatal(err)
	}
	d, _, _ := db.CreateDeployment(ctx, &slipway.Deployment{Project: "app"})
	n := 0
	for b.Loop() {
		batch := make([]slipway.LogLine, 0, 256)
		for range 256 {
			n++
			batch = append(batch, slipway.LogLine{Deployment: d.ID, N: int64(n), Time: time.Now(), Stream: "stdout", Step: "build",
				Text: fmt.Sprintf("STEP %d: RUN npm ci --prefer-offline # line %d of the usual output", n%7, n)})
		}
		if err := db.AppendLogLines(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

func TestTokens(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := &slipway.APIToken{ID: "t-a", Name: "admin", CreatedAt: t0}
	if err := db.CreateToken(ctx, a, slipway.HashToken("slw_one")); err != nil {
		t.Fatal(err)
	}
	b := &slipway.APIToken{ID: "t-b", Name: "ci"}
	if err := db.CreateToken(ctx, b, slipway.HashToken("slw_two")); err != nil {
		t.Fatal(err)
	}
	if b.CreatedAt.IsZero() {
		t.Errorf("CreateToken left CreatedAt zero")
	}
	wantCode(t, "CreateToken same hash", db.CreateToken(ctx, &slipway.APIToken{ID: "t-c"}, slipway.HashToken("slw_two")), slipway.ECONFLICT, "")
	wantCode(t, "CreateToken same id", db.CreateToken(ctx, &slipway.APIToken{ID: "t-a"}, slipway.HashToken("slw_three")), slipway.ECONFLICT, "")
	wantCode(t, "CreateToken no hash", db.CreateToken(ctx, &slipway.APIToken{ID: "t-d"}, ""), slipway.EINVALID, "")

	got, err := db.TokenByHash(ctx, slipway.HashToken(" slw_one\n"))
	if err != nil || got.ID != "t-a" || got.Name != "admin" || !got.CreatedAt.Equal(t0) || got.LastUsedAt != nil {
		t.Errorf("TokenByHash(one) = %+v, %v", got, err)
	}
	_, err = db.TokenByHash(ctx, slipway.HashToken("slw_wrong"))
	wantCode(t, "TokenByHash wrong", err, slipway.ENOTFOUND, "")

	used := t0.Add(time.Hour)
	if err := db.TouchToken(ctx, "t-a", used); err != nil {
		t.Fatal(err)
	}
	list, err := db.Tokens(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "t-a" || list[1].ID != "t-b" || list[0].LastUsedAt == nil || !list[0].LastUsedAt.Equal(used) {
		t.Errorf("Tokens = %+v, %v", list, err)
	}
	if err := db.DeleteToken(ctx, "t-a"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "DeleteToken again", db.DeleteToken(ctx, "t-a"), slipway.ENOTFOUND, "")
	if _, err := db.TokenByHash(ctx, slipway.HashToken("slw_one")); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("a deleted token still authenticates: %v", err)
	}
}

// TestIndexStepBoundsBytes: one index transaction takes at most
// indexBatchBytes of text (but always at least one line), so indexing big
// binary output never holds the write connection for long, and it says
// whether lines were left for the next step.
func TestIndexStepBoundsBytes(t *testing.T) {
	db, _ := openTest(t)
	db.indexer.close() // step by hand
	ctx := t.Context()
	mustCreateProject(t, db, "app", "file:///r")
	d := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	sizes := []int{3 << 20, 600 << 10, 600 << 10, 10, 10}
	var lines []slipway.LogLine
	for i, size := range sizes {
		lines = append(lines, slipway.LogLine{Deployment: d.ID, N: int64(i + 1), Time: time.Now(), Text: strings.Repeat("x", size)})
	}
	if err := db.AppendLogLines(ctx, lines); err != nil {
		t.Fatal(err)
	}
	upto := func() (n int64) {
		if err := db.read.QueryRowContext(ctx, `SELECT indexed_upto FROM log_index`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	base := upto()
	for _, want := range []struct {
		upto int64
		more bool
	}{{1, true}, {2, true}, {5, false}} {
		more, err := indexStep(ctx, db.write, indexBatch, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if got := upto() - base; got != want.upto || more != want.more {
			t.Fatalf("after a step: indexed %d lines, more %v; want %d, %v", got, more, want.upto, want.more)
		}
	}
	if more, err := indexStep(ctx, db.write, indexBatch, 1<<20); err != nil || more {
		t.Fatalf("step with nothing left = more %v, %v", more, err)
	}
}
