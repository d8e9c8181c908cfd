package sqlite

import (
	"database/sql"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/slipway-ci/slipway"
)

var hookIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestProjectByHookID: every new project gets its own random webhook URL
// id, found by ProjectByHookID; an unknown or empty id is ENOTFOUND.
func TestProjectByHookID(t *testing.T) {
	db, _ := openTest(t)
	a := mustCreateProject(t, db, "a", "https://github.com/acme/app")
	b := mustCreateProject(t, db, "b", "https://github.com/acme/app")
	for _, p := range []*slipway.Project{a, b} {
		if !hookIDPattern.MatchString(p.HookID) {
			t.Errorf("project %s: HookID = %q, want 32 hex digits", p.Name, p.HookID)
		}
	}
	if a.HookID == b.HookID {
		t.Errorf("projects a and b share HookID %q", a.HookID)
	}
	for _, p := range []*slipway.Project{a, b} {
		got, err := db.ProjectByHookID(t.Context(), p.HookID)
		if err != nil || got.Name != p.Name || got.HookID != p.HookID {
			t.Errorf("ProjectByHookID(%q) = %+v, %v; want project %s", p.HookID, got, err, p.Name)
		}
	}
	if got, err := db.Project(t.Context(), "a"); err != nil || got.HookID != a.HookID {
		t.Errorf("Project(a).HookID = %v, %v; want %q", got, err, a.HookID)
	}
	for _, id := range []string{"", "0123456789abcdef0123456789abcdef", a.HookID[:31]} {
		if _, err := db.ProjectByHookID(t.Context(), id); slipway.ErrorCode(err) != slipway.ENOTFOUND {
			t.Errorf("ProjectByHookID(%q) = %v, want ENOTFOUND", id, err)
		}
	}
}

// TestHookIDBackfill: projects stored before migration 13 get distinct
// random hook ids when the file is upgraded.
func TestHookIDBackfill(t *testing.T) {
	ctx := t.Context()
	old, path := openAtVersion(t, 12)
	for _, name := range []string{"web", "api"} {
		if _, err := old.ExecContext(ctx, `INSERT INTO projects (name, repo, repo_key, created_at) VALUES (?, 'file:///r', 'file:///r', '2025-01-01T00:00:00.000000000Z')`, name); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open of a version 12 file: %v", err)
	}
	defer db.Close()
	ids := map[string]string{}
	for _, name := range []string{"web", "api"} {
		p, err := db.Project(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if !hookIDPattern.MatchString(p.HookID) {
			t.Errorf("project %s after upgrade: HookID = %q, want 32 hex digits", name, p.HookID)
		}
		if other, dup := ids[p.HookID]; dup {
			t.Errorf("projects %s and %s share HookID %q", name, other, p.HookID)
		}
		ids[p.HookID] = name
		if got, err := db.ProjectByHookID(ctx, p.HookID); err != nil || got.Name != name {
			t.Errorf("ProjectByHookID(%q) = %v, %v; want project %s", p.HookID, got, err, name)
		}
	}
}

// openAtVersion creates a database file at schema version n, as an older
// Slipway left it, and returns it open without the later migrations, with
// its path.
func openAtVersion(t *testing.T, n int) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slipway.db")
	old, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), old, migrations[:n], nil); err != nil {
		t.Fatalf("migrate to version %d: %v", n, err)
	}
	return old, path
}
