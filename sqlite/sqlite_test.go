package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// openTest opens a new database file in a temporary directory.
func openTest(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slipway.db")
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func mustCreateProject(t *testing.T, db *DB, name, repo string) *slipway.Project {
	t.Helper()
	p := &slipway.Project{Name: name, Repo: repo, Branch: "main", Dockerfile: "Dockerfile", Context: "."}
	if err := db.CreateProject(t.Context(), p); err != nil {
		t.Fatalf("CreateProject(%q): %v", name, err)
	}
	return p
}

func mustCreateDeployment(t *testing.T, db *DB, d *slipway.Deployment) *slipway.Deployment {
	t.Helper()
	got, created, err := db.CreateDeployment(t.Context(), d)
	if err != nil || !created {
		t.Fatalf("CreateDeployment(%+v) = created %v, err %v; want created", d, created, err)
	}
	return got
}

func mustDeployment(t *testing.T, db *DB, id string) *slipway.Deployment {
	t.Helper()
	d, err := db.Deployment(t.Context(), id)
	if err != nil {
		t.Fatalf("Deployment(%q): %v", id, err)
	}
	return d
}

// wantCode fails t unless err carries the application error code and, if
// msg is not empty, that message.
func wantCode(t *testing.T, what string, err error, code, msg string) {
	t.Helper()
	if got := slipway.ErrorCode(err); got != code {
		t.Errorf("%s: error %v has code %q, want %q", what, err, got, code)
		return
	}
	if msg != "" && slipway.ErrorMessage(err) != msg {
		t.Errorf("%s: message %q, want %q", what, slipway.ErrorMessage(err), msg)
	}
}

func ids(ds []*slipway.Deployment) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func TestOpenSetsPragmas(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	tests := []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"busy_timeout", "5000"},
		{"foreign_keys", "1"},
		{"synchronous", "1"}, // NORMAL
	}
	pools := []struct {
		name string
		q    rowQueryer
	}{{"write", db.write}, {"read", db.read}}
	for _, tt := range tests {
		for _, pool := range pools {
			var got string
			if err := pool.q.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatalf("%s pool: PRAGMA %s: %v", pool.name, tt.pragma, err)
			}
			if got != tt.want {
				t.Errorf("%s pool: PRAGMA %s = %q, want %q", pool.name, tt.pragma, got, tt.want)
			}
		}
	}
	if _, err := db.read.ExecContext(ctx, `DELETE FROM projects`); err == nil {
		t.Errorf("read pool accepted a write; want it query_only")
	}
}

func TestOpenAwkwardPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%20chars")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "slip way.db")
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	defer db.Close()
	mustCreateProject(t, db, "app", "https://github.com/acme/app")
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file not at %q: %v", path, err)
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "slipway.db")
	if db, err := Open(path); err == nil {
		db.Close()
		t.Fatalf("Open(%q) succeeded; want an error for a missing directory", path)
	}
}

func TestProjects(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	created := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))
	full := &slipway.Project{
		Name: "web", Repo: "https://github.com/acme/web.git", Branch: "prod",
		Dockerfile: "build/Dockerfile", Context: "build", WebhookSecret: "s3cret", CreatedAt: created,
	}
	if err := db.CreateProject(ctx, full); err != nil {
		t.Fatalf("CreateProject: %v", err)
	}
	if !full.CreatedAt.Equal(created) || full.CreatedAt.Location() != time.UTC {
		t.Errorf("CreateProject set CreatedAt = %v, want %v in UTC", full.CreatedAt, created)
	}
	before := time.Now()
	mustCreateProject(t, db, "api", "git@github.com:acme/api.git")

	got, err := db.Project(ctx, "web")
	if err != nil {
		t.Fatalf("Project(web): %v", err)
	}
	if !reflect.DeepEqual(got, full) {
		t.Errorf("Project(web) = %+v, want %+v", got, full)
	}
	api, err := db.Project(ctx, "api")
	if err != nil {
		t.Fatalf("Project(api): %v", err)
	}
	if api.CreatedAt.Before(before.Add(-time.Second)) || api.CreatedAt.After(time.Now()) || api.CreatedAt.Location() != time.UTC {
		t.Errorf("Project(api).CreatedAt = %v, want about now in UTC", api.CreatedAt)
	}

	all, err := db.Projects(ctx)
	if err != nil {
		t.Fatalf("Projects: %v", err)
	}
	var names []string
	for _, p := range all {
		names = append(names, p.Name)
	}
	if want := []string{"api", "web"}; !slices.Equal(names, want) {
		t.Errorf("Projects() names = %q, want %q", names, want)
	}

	errTests := []struct {
		name      string
		err       error
		code, msg string
	}{
		{"duplicate name", db.CreateProject(ctx, &slipway.Project{Name: "web", Repo: "https://example.com/x"}), slipway.ECONFLICT, `project "web" already exists`},
		{"invalid name", db.CreateProject(ctx, &slipway.Project{Name: "Web_1", Repo: "https://example.com/x"}), slipway.EINVALID, ""},
		{"empty name", db.CreateProject(ctx, &slipway.Project{Repo: "https://example.com/x"}), slipway.EINVALID, ""},
		{"nil project", db.CreateProject(ctx, nil), slipway.EINVALID, ""},
		{"unknown project", func() error { _, err := db.Project(ctx, "nope"); return err }(), slipway.ENOTFOUND, `project "nope" not found`},
	}
	for _, tt := range errTests {
		wantCode(t, tt.name, tt.err, tt.code, tt.msg)
	}
	// The failed duplicate must not have overwritten the first project.
	if got, _ := db.Project(ctx, "web"); got == nil || got.Repo != full.Repo {
		t.Errorf("after a conflicting CreateProject, Project(web) = %+v, want repo %q", got, full.Repo)
	}
}

func TestProjectsByRepo(t *testing.T) {
	db, _ := openTest(t)
	mustCreateProject(t, db, "app", "https://github.com/Acme/App.git")
	mustCreateProject(t, db, "app-staging", "git@github.com:acme/app.git")
	mustCreateProject(t, db, "other", "https://github.com/acme/other")
	mustCreateProject(t, db, "local", "file:///srv/git/local/")

	tests := []struct {
		name string
		urls []string
		want []string
	}{
		{"https clone URL", []string{"https://github.com/acme/app.git"}, []string{"app", "app-staging"}},
		{"html URL", []string{"https://github.com/acme/app"}, []string{"app", "app-staging"}},
		{"html URL with slash", []string{"https://github.com/acme/app/"}, []string{"app", "app-staging"}},
		{"ssh scp-like URL", []string{"git@github.com:acme/app.git"}, []string{"app", "app-staging"}},
		{"ssh scp-like without .git", []string{"git@github.com:Acme/App"}, []string{"app", "app-staging"}},
		{"ssh URL", []string{"ssh://git@github.com/acme/app.git"}, []string{"app", "app-staging"}},
		{"git URL", []string{"git://github.com/acme/app.git"}, []string{"app", "app-staging"}},
		{"all of a push payload's URLs", []string{
			"https://github.com/acme/app.git", "https://github.com/acme/app",
			"git@github.com:acme/app.git", "git://github.com/acme/app.git",
		}, []string{"app", "app-staging"}},
		{"two repositories", []string{"https://github.com/acme/other.git", "git@github.com:acme/app.git"}, []string{"app", "app-staging", "other"}},
		{"other only", []string{"git@github.com:acme/other.git"}, []string{"other"}},
		{"file URL", []string{"file:///srv/git/local"}, []string{"local"}},
		{"other owner", []string{"https://github.com/someone/app"}, nil},
		{"other host", []string{"https://gitlab.com/acme/app"}, nil},
		{"prefix is not a match", []string{"https://github.com/acme/ap"}, nil},
		{"no URLs", nil, nil},
		{"blank URL", []string{""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := db.ProjectsByRepo(t.Context(), tt.urls)
			if err != nil {
				t.Fatalf("ProjectsByRepo(%q): %v", tt.urls, err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ProjectsByRepo(%q) = %q, want %q", tt.urls, got, tt.want)
			}
		})
	}
}

func TestDeploymentLifecycle(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "app", "https://github.com/acme/app")

	d := &slipway.Deployment{
		Project: "app", Ref: "refs/heads/main", Commit: "0123456789abcdef0123456789abcdef01234567",
		Trigger: slipway.TriggerManual, Status: slipway.StatusSucceeded, // ignored: new deployments are queued
	}
	before := time.Now()
	got, created, err := db.CreateDeployment(ctx, d)
	if err != nil || !created {
		t.Fatalf("CreateDeployment = created %v, err %v", created, err)
	}
	if got.ID == "" || got.Status != slipway.StatusQueued || got.CreatedAt.Before(before.Add(-time.Second)) || got.StartedAt != nil {
		t.Fatalf("CreateDeployment returned %+v; want an ID, status queued, CreatedAt now, no StartedAt", got)
	}
	if d.ID != got.ID || d.Status != slipway.StatusQueued {
		t.Errorf("CreateDeployment did not update its argument: %+v", d)
	}
	if stored := mustDeployment(t, db, d.ID); !reflect.DeepEqual(stored, got) {
		t.Errorf("Deployment(%q) = %+v, want %+v", d.ID, stored, got)
	}

	started := time.Date(2025, 6, 1, 12, 0, 0, 5_000_000, time.UTC)
	if err := db.MarkBuilding(ctx, d.ID, started); err != nil {
		t.Fatalf("MarkBuilding: %v", err)
	}
	// Again, later: idempotent, StartedAt stays the first one.
	if err := db.MarkBuilding(ctx, d.ID, started.Add(time.Minute)); err != nil {
		t.Fatalf("MarkBuilding again: %v", err)
	}
	b := mustDeployment(t, db, d.ID)
	if b.Status != slipway.StatusBuilding || b.StartedAt == nil || !b.StartedAt.Equal(started) {
		t.Fatalf("after MarkBuilding: status %q, StartedAt %v; want building, %v", b.Status, b.StartedAt, started)
	}

	finished := started.Add(90 * time.Second)
	result := slipway.DeploymentResult{
		Status: slipway.StatusSucceeded, Image: "localhost:5000/app:0123456", Digest: "sha256:abc",
		Timings: map[string]int64{"queue": 12, "build": 8000, "total": 9000},
		Steps: []slipway.BuildStep{
			{N: 1, Instruction: "STEP 1/2: FROM base", Cached: false, DurationMs: 3},
			{N: 2, Instruction: "STEP 2/2: RUN npm ci", Cached: true, DurationMs: 120},
		},
		LogComplete: new(true), LogCompleteAt: finished.Add(-time.Second), LogLines: 42,
	}
	if err := db.FinishDeployment(ctx, d.ID, result, finished); err != nil {
		t.Fatalf("FinishDeployment: %v", err)
	}
	// A second, different result is dropped without error.
	if err := db.FinishDeployment(ctx, d.ID, slipway.DeploymentResult{Status: slipway.StatusFailed, Error: "late"}, finished.Add(time.Hour)); err != nil {
		t.Fatalf("FinishDeployment again: %v", err)
	}
	want := *got
	want.Status, want.Image, want.Digest, want.Timings, want.Steps = result.Status, result.Image, result.Digest, result.Timings, result.Steps
	want.StartedAt, want.FinishedAt = &started, &finished
	want.LogComplete, want.LogCompleteAt, want.LogLines = new(true), new(finished.Add(-time.Second)), 42
	if f := mustDeployment(t, db, d.ID); !reflect.DeepEqual(f, &want) {
		t.Errorf("after FinishDeployment twice: %+v\nwant %+v", f, &want)
	}

	errTests := []struct {
		name      string
		err       error
		code, msg string
	}{
		{"MarkBuilding after finish", db.MarkBuilding(ctx, d.ID, finished), slipway.ECONFLICT, fmt.Sprintf("deployment %q is already succeeded", d.ID)},
		{"MarkBuilding unknown", db.MarkBuilding(ctx, "d-nope", started), slipway.ENOTFOUND, `deployment "d-nope" not found`},
		{"FinishDeployment unknown", db.FinishDeployment(ctx, "d-nope", result, finished), slipway.ENOTFOUND, `deployment "d-nope" not found`},
		{"FinishDeployment non-terminal", db.FinishDeployment(ctx, d.ID, slipway.DeploymentResult{Status: slipway.StatusBuilding}, finished), slipway.EINVALID, ""},
		{"FinishDeployment empty status", db.FinishDeployment(ctx, d.ID, slipway.DeploymentResult{}, finished), slipway.EINVALID, ""},
		{"Deployment unknown", func() error { _, err := db.Deployment(ctx, "d-nope"); return err }(), slipway.ENOTFOUND, `deployment "d-nope" not found`},
		{"CreateDeployment unknown project", func() error {
			_, _, err := db.CreateDeployment(ctx, &slipway.Deployment{Project: "nope"})
			return err
		}(), slipway.ENOTFOUND, `project "nope" not found`},
		{"CreateDeployment no project", func() error { _, _, err := db.CreateDeployment(ctx, &slipway.Deployment{}); return err }(), slipway.EINVALID, ""},
		{"CreateDeployment taken ID", func() error {
			_, _, err := db.CreateDeployment(ctx, &slipway.Deployment{ID: d.ID, Project: "app"})
			return err
		}(), slipway.ECONFLICT, fmt.Sprintf("deployment %q already exists", d.ID)},
	}
	for _, tt := range errTests {
		wantCode(t, tt.name, tt.err, tt.code, tt.msg)
	}
}

func TestFinishQueuedDeployment(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "app", "https://github.com/acme/app")
	d := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r := slipway.DeploymentResult{Status: slipway.StatusCancelled, Error: "cancelled by user", FailedStep: "queue"}
	if err := db.FinishDeployment(ctx, d.ID, r, at); err != nil {
		t.Fatalf("FinishDeployment of a queued deployment: %v", err)
	}
	got := mustDeployment(t, db, d.ID)
	if got.Status != r.Status || got.Error != r.Error || got.FailedStep != r.FailedStep ||
		got.StartedAt != nil || got.FinishedAt == nil || !got.FinishedAt.Equal(at) || got.Timings != nil {
		t.Errorf("after finishing a queued deployment: %+v", got)
	}
	// It never reached a builder: its (empty) log is complete.
	if got.LogComplete == nil || !*got.LogComplete || got.LogCompleteAt == nil || !got.LogCompleteAt.Equal(at) || got.LogLines != 0 {
		t.Errorf("log of a deployment finished in the queue: complete %v at %v, %d lines; want complete at %v, 0 lines",
			got.LogComplete, got.LogCompleteAt, got.LogLines, at)
	}
}

// TestFinishRecordsLogCompleteness: a deployment that started building
// records what its result says about its log, and nothing (unknown) when
// the result does not say.
func TestFinishRecordsLogCompleteness(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "app", "https://github.com/acme/app")
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		complete *bool
		lines    int64
	}{{"unknown", nil, 0}, {"incomplete", new(false), 7}, {"complete", new(true), 9}} {
		d := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
		if err := db.MarkBuilding(ctx, d.ID, at); err != nil {
			t.Fatal(err)
		}
		r := slipway.DeploymentResult{Status: slipway.StatusFailed, LogComplete: tc.complete, LogLines: tc.lines}
		if err := db.FinishDeployment(ctx, d.ID, r, at.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got := mustDeployment(t, db, d.ID)
		switch {
		case tc.complete == nil && (got.LogComplete != nil || got.LogCompleteAt != nil):
			t.Errorf("%s: log complete %v at %v, want unknown", tc.name, *got.LogComplete, got.LogCompleteAt)
		case tc.complete != nil && (got.LogComplete == nil || *got.LogComplete != *tc.complete ||
			got.LogCompleteAt == nil || !got.LogCompleteAt.Equal(at.Add(time.Minute))):
			t.Errorf("%s: log complete %v at %v, want %v at the finish time", tc.name, got.LogComplete, got.LogCompleteAt, *tc.complete)
		case got.LogLines != tc.lines:
			t.Errorf("%s: %d log lines, want %d", tc.name, got.LogLines, tc.lines)
		}
	}
}

func TestDeploymentListsAndOrder(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "app", "https://github.com/acme/app")
	mustCreateProject(t, db, "other", "https://github.com/acme/other")
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// Created out of order; two share a millisecond but not a nanosecond.
	at := map[string]time.Time{
		"d-3": t0.Add(2 * time.Hour), "d-1": t0, "d-2": t0.Add(time.Nanosecond), "d-4": t0.Add(3 * time.Hour),
	}
	for _, id := range []string{"d-3", "d-1", "d-2", "d-4"} {
		mustCreateDeployment(t, db, &slipway.Deployment{ID: id, Project: "app", CreatedAt: at[id]})
	}
	mustCreateDeployment(t, db, &slipway.Deployment{ID: "o-1", Project: "other", CreatedAt: t0.Add(time.Minute)})
	if err := db.MarkBuilding(ctx, "d-4", t0); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishDeployment(ctx, "d-2", slipway.DeploymentResult{Status: slipway.StatusFailed}, t0); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		project string
		limit   int
		want    []string
	}{
		{"all", "app", 0, []string{"d-4", "d-3", "d-2", "d-1"}},
		{"negative limit", "app", -1, []string{"d-4", "d-3", "d-2", "d-1"}},
		{"limit", "app", 2, []string{"d-4", "d-3"}},
		{"other project", "other", 0, []string{"o-1"}},
		{"unknown project", "nope", 0, nil},
	}
	for _, tt := range tests {
		ds, err := db.Deployments(ctx, tt.project, tt.limit)
		if err != nil {
			t.Fatalf("Deployments(%q, %d): %v", tt.project, tt.limit, err)
		}
		if got := ids(ds); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Deployments(%q, %d) = %q, want %q", tt.name, tt.project, tt.limit, got, tt.want)
		}
	}

	un, err := db.UnfinishedDeployments(ctx)
	if err != nil {
		t.Fatalf("UnfinishedDeployments: %v", err)
	}
	if got, want := ids(un), []string{"d-1", "o-1", "d-3", "d-4"}; !slices.Equal(got, want) {
		t.Errorf("UnfinishedDeployments() = %q, want %q (oldest first, no finished ones)", got, want)
	}
}

func TestDeploymentOfCommit(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "app", "https://github.com/acme/app")
	mustCreateProject(t, db, "other", "https://github.com/acme/other")
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, d := range []slipway.Deployment{
		{ID: "old-a", Project: "app", Ref: "refs/heads/main", Commit: a},
		{ID: "new-a", Project: "app", Ref: "main", Commit: a},
		{ID: "dev-a", Project: "app", Ref: "refs/heads/dev", Commit: a},
		{ID: "main-b", Project: "app", Ref: "refs/heads/main", Commit: b},
		{ID: "other-a", Project: "other", Ref: "refs/heads/main", Commit: a},
		{ID: "tag-a", Project: "app", Ref: "refs/tags/main", Commit: a},
	} {
		d.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
		if d.ID == "tag-a" {
			d.CreatedAt = t0.Add(-time.Hour)
		}
		mustCreateDeployment(t, db, &d)
	}
	for _, tt := range []struct{ project, branch, commit, want string }{
		{"app", "main", a, "new-a"}, // the newest, whichever way the ref is spelled
		{"app", "main", strings.ToUpper(a), "new-a"},
		{"app", "dev", a, "dev-a"},
		{"app", "main", b, "main-b"},
		{"other", "main", a, "other-a"},
		{"app", "dev", b, ""},
		{"app", "feature", a, ""},
		{"nope", "main", a, ""},
	} {
		d, err := db.DeploymentOfCommit(ctx, tt.project, tt.branch, tt.commit)
		switch {
		case tt.want == "":
			wantCode(t, fmt.Sprintf("DeploymentOfCommit(%q, %q, %.8s)", tt.project, tt.branch, tt.commit), err, slipway.ENOTFOUND, "")
		case err != nil || d.ID != tt.want:
			t.Errorf("DeploymentOfCommit(%q, %q, %.8s) = %v, %v; want %s", tt.project, tt.branch, tt.commit, d, err, tt.want)
		}
	}

	// The lookup reads the project's deployments of that commit through
	// the index, not the project's whole history.
	rows, err := db.read.QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT id`+deploymentOfCommit, "app", a, "main", "main")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if p := strings.Join(plan, "; "); !strings.Contains(p, "deployments_project_commit (project=? AND commit_sha=?)") {
		t.Errorf("query plan %q does not use deployments_project_commit on both columns", p)
	}
}

func TestNewDeploymentID(t *testing.T) {
	re := regexp.MustCompile(`^d-[0-9a-v]{26}$`)
	var prev string
	for i := range 2000 {
		id, err := newDeploymentID()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(id) {
			t.Fatalf("newDeploymentID() = %q, want it to match %s", id, re)
		}
		if id <= prev {
			t.Fatalf("ID %d %q does not sort after the previous one %q", i, id, prev)
		}
		prev = id
	}
}

func TestDeliveryDedup(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "app", "https://github.com/acme/app")

	first := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app", Commit: "aaa", DeliveryID: "delivery-1"})
	again := &slipway.Deployment{Project: "app", Commit: "bbb", DeliveryID: "delivery-1"}
	got, created, err := db.CreateDeployment(ctx, again)
	if err != nil || created {
		t.Fatalf("CreateDeployment with a seen delivery = created %v, err %v; want not created", created, err)
	}
	if got.ID != first.ID || got.Commit != "aaa" {
		t.Errorf("CreateDeployment with a seen delivery returned %+v, want the first deployment %+v", got, first)
	}
	if again.ID != "" || again.Status != "" {
		t.Errorf("CreateDeployment changed its argument though nothing was stored: %+v", again)
	}
	// Other deliveries, and deployments without one, are all stored.
	mustCreateDeployment(t, db, &slipway.Deployment{Project: "app", DeliveryID: "delivery-2"})
	mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	ds, err := db.Deployments(ctx, "app", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 4 {
		t.Errorf("Deployments = %d rows (%q), want 4", len(ds), ids(ds))
	}
}

func TestDeliveryDedupConcurrent(t *testing.T) {
	const n = 100
	tests := []struct {
		name    string
		handles int // DBs on the same file, as if several processes shared it
	}{
		{"one handle", 1},
		{"two handles", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path := openTest(t)
			mustCreateProject(t, db, "app", "https://github.com/acme/app")
			handles := []*DB{db}
			for range tt.handles - 1 {
				other, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { other.Close() })
				handles = append(handles, other)
			}

			type result struct {
				id      string
				created bool
				err     error
			}
			results := make([]result, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					d, created, err := handles[i%len(handles)].CreateDeployment(t.Context(),
						&slipway.Deployment{Project: "app", Trigger: slipway.TriggerWebhook, DeliveryID: "same-delivery"})
					results[i].created, results[i].err = created, err
					if d != nil {
						results[i].id = d.ID
					}
				})
			}
			close(start)
			wg.Wait()

			createdCount := 0
			for i, r := range results {
				if r.err != nil {
					t.Fatalf("call %d: %v", i, r.err)
				}
				if r.created {
					createdCount++
				}
				if r.id != results[0].id {
					t.Errorf("call %d returned deployment %q, call 0 returned %q", i, r.id, results[0].id)
				}
			}
			if createdCount != 1 {
				t.Errorf("%d calls created a deployment, want exactly 1", createdCount)
			}
			ds, err := db.Deployments(t.Context(), "app", 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != 1 {
				t.Errorf("stored %d deployments, want 1", len(ds))
			}
		})
	}
}

func TestConcurrentWritesAndReads(t *testing.T) {
	db, _ := openTest(t)
	mustCreateProject(t, db, "app", "https://github.com/acme/app")
	const n = 100
	errs := make(chan error, 3*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d, _, err := db.CreateDeployment(t.Context(), &slipway.Deployment{Project: "app", DeliveryID: fmt.Sprint("delivery-", i)})
			if err != nil {
				errs <- err
				return
			}
			if err := db.MarkBuilding(t.Context(), d.ID, time.Time{}); err != nil {
				errs <- err
			}
			if err := db.AppendLogLines(t.Context(), []slipway.LogLine{{Deployment: d.ID, N: 1, Text: "x"}}); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			if _, err := db.Deployments(t.Context(), "app", 10); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call failed: %v", err)
	}
	ds, err := db.UnfinishedDeployments(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != n {
		t.Errorf("UnfinishedDeployments = %d, want %d", len(ds), n)
	}
}

func TestLogLines(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "app", "https://github.com/acme/app")
	d := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	other := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	t0 := time.Date(2025, 2, 3, 4, 5, 6, 789_000_000, time.UTC)
	line := func(n int64, text string) slipway.LogLine {
		return slipway.LogLine{Deployment: d.ID, N: n, Time: t0.Add(time.Duration(n) * time.Millisecond), Stream: "stdout", Step: "STEP 1/3", Text: text}
	}

	// Out of order, in two batches that overlap; the redelivered line 2
	// carries other text, which must be ignored.
	if err := db.AppendLogLines(ctx, []slipway.LogLine{line(3, "three"), line(1, "one")}); err != nil {
		t.Fatalf("AppendLogLines: %v", err)
	}
	if err := db.AppendLogLines(ctx, []slipway.LogLine{line(2, "two"), line(1, "one again"), line(4, "four")}); err != nil {
		t.Fatalf("AppendLogLines with a redelivered line: %v", err)
	}
	if err := db.AppendLogLines(ctx, []slipway.LogLine{{Deployment: other.ID, N: 1, Time: t0, Text: "other"}}); err != nil {
		t.Fatalf("AppendLogLines for another deployment: %v", err)
	}
	if err := db.AppendLogLines(ctx, nil); err != nil {
		t.Fatalf("AppendLogLines(nil): %v", err)
	}

	all := []slipway.LogLine{line(1, "one"), line(2, "two"), line(3, "three"), line(4, "four")}
	tests := []struct {
		name  string
		from  int64
		limit int
		want  []slipway.LogLine
	}{
		{"all", 0, 0, all},
		{"from 2", 2, 0, all[1:]},
		{"from 2 limit 2", 2, 2, all[1:3]},
		{"limit 1", 0, 1, all[:1]},
		{"past the end", 5, 0, []slipway.LogLine{}},
	}
	for _, tt := range tests {
		got, err := db.LogLines(ctx, d.ID, tt.from, tt.limit)
		if err != nil {
			t.Fatalf("LogLines(%d, %d): %v", tt.from, tt.limit, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: LogLines(%d, %d) = %+v\nwant %+v", tt.name, tt.from, tt.limit, got, tt.want)
		}
	}

	// A batch with a line of an unknown deployment is refused whole.
	err := db.AppendLogLines(ctx, []slipway.LogLine{line(5, "five"), {Deployment: "d-nope", N: 1, Text: "x"}})
	wantCode(t, "AppendLogLines unknown deployment", err, slipway.ENOTFOUND, `deployment "d-nope" not found`)
	if got, _ := db.LogLines(ctx, d.ID, 5, 0); len(got) != 0 {
		t.Errorf("a failed batch stored %+v; want nothing", got)
	}

	// A long batch: lines 3..300 with 3 and 4 already stored (they are
	// kept); then one with an unknown deployment's line in the middle.
	var long []slipway.LogLine
	for n := int64(3); n <= 300; n++ {
		long = append(long, line(n, fmt.Sprint("line ", n)))
	}
	if err := db.AppendLogLines(ctx, long); err != nil {
		t.Fatalf("AppendLogLines of %d lines: %v", len(long), err)
	}
	got, err := db.LogLines(ctx, d.ID, 0, 0)
	if err != nil || len(got) != 300 || got[2].Text != "three" || got[3].Text != "four" || got[4].Text != "line 5" || got[299].Text != "line 300" {
		t.Fatalf("after a long batch: %d lines (error %v), want 1..300 with 3 and 4 as first stored", len(got), err)
	}
	bad := []slipway.LogLine{}
	for n := int64(301); n <= 400; n++ {
		bad = append(bad, line(n, "x"))
	}
	bad[69].Deployment = "d-gone"
	err = db.AppendLogLines(ctx, bad)
	wantCode(t, "AppendLogLines long batch with an unknown deployment", err, slipway.ENOTFOUND, `deployment "d-gone" not found`)
	if got, _ := db.LogLines(ctx, d.ID, 301, 0); len(got) != 0 {
		t.Errorf("a failed long batch stored %d lines; want none", len(got))
	}
}

func TestTimesRoundTrip(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	tests := []struct {
		name string
		t    time.Time
	}{
		{"nanoseconds", time.Date(2025, 12, 31, 23, 59, 59, 999_999_999, time.UTC)},
		{"whole second", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"millisecond", time.Date(2025, 1, 1, 0, 0, 0, 1_000_000, time.UTC)},
		{"other zone", time.Date(2025, 7, 1, 2, 3, 4, 5, time.FixedZone("X", -7*3600-1800))},
		{"local now", time.Now()},
	}
	for i, tt := range tests {
		name := fmt.Sprint("p", i)
		if err := db.CreateProject(ctx, &slipway.Project{Name: name, Repo: "r", CreatedAt: tt.t}); err != nil {
			t.Fatal(err)
		}
		p, err := db.Project(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if !p.CreatedAt.Equal(tt.t) || p.CreatedAt.Location() != time.UTC {
			t.Errorf("%s: stored %v, read back %v (%v); want equal, in UTC", tt.name, tt.t, p.CreatedAt, p.CreatedAt.Location())
		}
	}
}

func TestReopenKeepsData(t *testing.T) {
	db, path := openTest(t)
	ctx := t.Context()
	mustCreateProject(t, db, "app", "https://github.com/acme/app")
	d := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app", DeliveryID: "delivery-1"})
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := db.MarkBuilding(ctx, d.ID, at); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishDeployment(ctx, d.ID, slipway.DeploymentResult{Status: slipway.StatusSucceeded, Image: "img", Timings: map[string]int64{"total": 1}}, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendLogLines(ctx, []slipway.LogLine{{Deployment: d.ID, N: 1, Time: at, Text: "hello"}}); err != nil {
		t.Fatal(err)
	}
	wantProject, _ := db.Project(ctx, "app")
	wantDeployment := mustDeployment(t, db, d.ID)
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db2, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db2.Close()
	if p, err := db2.Project(ctx, "app"); err != nil || !reflect.DeepEqual(p, wantProject) {
		t.Errorf("after reopen Project(app) = %+v, %v; want %+v", p, err, wantProject)
	}
	if got := mustDeployment(t, db2, d.ID); !reflect.DeepEqual(got, wantDeployment) {
		t.Errorf("after reopen Deployment = %+v\nwant %+v", got, wantDeployment)
	}
	if lines, err := db2.LogLines(ctx, d.ID, 0, 0); err != nil || len(lines) != 1 || lines[0].Text != "hello" {
		t.Errorf("after reopen LogLines = %+v, %v", lines, err)
	}
	// The delivery is still known.
	if _, created, err := db2.CreateDeployment(ctx, &slipway.Deployment{Project: "app", DeliveryID: "delivery-1"}); err != nil || created {
		t.Errorf("after reopen, a seen delivery: created %v, err %v; want not created", created, err)
	}
	var count int
	if err := db2.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&count); err != nil || count != len(migrations) {
		t.Errorf("schema_migrations has %d rows (%v), want %d: reopening must not re-run migrations", count, err, len(migrations))
	}
}

func TestMigrations(t *testing.T) {
	t.Run("newer schema is refused", func(t *testing.T) {
		db, path := openTest(t)
		if _, err := db.write.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (?, '')`, len(migrations)+1); err != nil {
			t.Fatal(err)
		}
		db.Close()
		db2, err := Open(path)
		if err == nil {
			db2.Close()
			t.Fatalf("Open of a database with schema version %d succeeded; want ErrNewerSchema", len(migrations)+1)
		}
		if !errors.Is(err, ErrNewerSchema) {
			t.Errorf("Open error = %v, want ErrNewerSchema", err)
		}
	})

	t.Run("applies pending in order and records versions", func(t *testing.T) {
		db, _ := openTest(t)
		ctx := t.Context()
		steps := append(slices.Clone(migrations),
			`CREATE TABLE extra (a TEXT); INSERT INTO extra VALUES ('x');`,
			`ALTER TABLE extra ADD COLUMN b TEXT NOT NULL DEFAULT 'y';`)
		if err := migrate(ctx, db.write, steps, nil); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		if err := migrate(ctx, db.write, steps, nil); err != nil { // nothing left to do
			t.Fatalf("migrate again: %v", err)
		}
		var a, b string
		if err := db.write.QueryRowContext(ctx, `SELECT a, b FROM extra`).Scan(&a, &b); err != nil || a != "x" || b != "y" {
			t.Errorf("extra = %q, %q, %v; want x, y", a, b, err)
		}
		if v, err := schemaVersion(ctx, db.write); err != nil || v != len(steps) {
			t.Errorf("schema version = %d, %v; want %d", v, err, len(steps))
		}
	})

	t.Run("failed migration changes nothing", func(t *testing.T) {
		db, _ := openTest(t)
		ctx := t.Context()
		steps := append(slices.Clone(migrations), `CREATE TABLE half (a TEXT); SELECT * FROM no_such_table;`)
		if err := migrate(ctx, db.write, steps, nil); err == nil {
			t.Fatal("migrate with a broken migration succeeded")
		}
		if v, err := schemaVersion(ctx, db.write); err != nil || v != len(migrations) {
			t.Errorf("schema version = %d, %v; want %d", v, err, len(migrations))
		}
		var n int
		if err := db.write.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("table of the failed migration exists (%d, %v); want it rolled back", n, err)
		}
	})
}
