package sqlite

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

func TestAppSettings(t *testing.T) {
	db, path := openTest(t)
	ctx := t.Context()
	want := slipway.AppSettings{MemoryBytes: 64 << 20, CPUs: 0.5, HealthPath: "/healthz", IdleTimeout: 90 * time.Second, StopAfter: 2 * time.Hour, Port: 8000}
	if err := db.CreateProject(ctx, &slipway.Project{Name: "app", Repo: "file:///r", Branch: "main", App: want}); err != nil {
		t.Fatal(err)
	}
	if p, err := db.Project(ctx, "app"); err != nil || p.App != want {
		t.Fatalf("created: %+v, %v; want %+v", p.App, err, want)
	}
	want = slipway.AppSettings{CPUs: 1.5, IdleTimeout: time.Minute}
	if p, err := db.SetAppSettings(ctx, "app", want); err != nil || p.App != want {
		t.Fatalf("SetAppSettings = %+v, %v; want %+v", p.App, err, want)
	}
	db.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if p, err := db.Project(ctx, "app"); err != nil || p.App != want {
		t.Errorf("after reopening: %+v, %v; want %+v", p.App, err, want)
	}
	if _, err := db.SetAppSettings(ctx, "app", slipway.AppSettings{IdleTimeout: 3 * time.Hour}); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("idle timeout past the default stop-after: %v, want invalid", err)
	}
	if _, err := db.SetAppSettings(ctx, "nope", slipway.AppSettings{}); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("unknown project: %v, want not_found", err)
	}
	if err := db.CreateProject(ctx, &slipway.Project{Name: "bad", Repo: "file:///r", Branch: "main", App: slipway.AppSettings{Port: 70000}}); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("creating with port 70000: %v, want invalid", err)
	}
}

func TestEnv(t *testing.T) {
	db, path := openTest(t)
	ctx := t.Context()
	for _, name := range []string{"app", "other"} {
		if err := db.CreateProject(ctx, &slipway.Project{Name: name, Repo: "file:///r", Branch: "main"}); err != nil {
			t.Fatal(err)
		}
	}
	const value = "postgres://u:plain-env-value-7d1e@db/x"
	if _, err := db.SetEnv(ctx, "app", "DATABASE_URL", []byte(value)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetEnv(ctx, "app", "EMPTY", nil); err != nil {
		t.Fatal(err)
	}
	// A build secret of the same name is another thing.
	if _, err := db.SetSecret(ctx, "app", "DATABASE_URL", []byte("build-only")); err != nil {
		t.Fatal(err)
	}
	list, err := db.Env(ctx, "app")
	if err != nil || len(list) != 2 || list[0].Name != "DATABASE_URL" || list[1].Name != "EMPTY" || list[0].UpdatedAt.IsZero() {
		t.Fatalf("Env = %+v, %v", list, err)
	}
	vals, err := db.EnvValues(ctx, "app")
	if err != nil || len(vals) != 2 || string(vals[0].Value) != value || len(vals[1].Value) != 0 {
		t.Fatalf("EnvValues = %+v, %v", vals, err)
	}
	if vals, err := db.EnvValues(ctx, "other"); err != nil || len(vals) != 0 {
		t.Errorf("EnvValues(other) = %+v, %v", vals, err)
	}

	// The raw column holds no value in clear; neither do the files.
	var sealed []byte
	if err := db.read.QueryRowContext(ctx, `SELECT sealed FROM project_env WHERE project = 'app' AND name = 'DATABASE_URL'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) < len(value) || bytes.Contains(sealed, []byte("plain-env-value")) {
		t.Errorf("sealed column %q holds the value in clear", sealed)
	}
	// A sealed value moved to another project does not open.
	if _, err := db.write.ExecContext(ctx, `INSERT INTO project_env (project, name, sealed, updated_at) VALUES ('other', 'DATABASE_URL', ?, '2026-01-01T00:00:00Z')`, sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := db.EnvValues(ctx, "other"); slipway.ErrorCode(err) != slipway.EINTERNAL || !strings.Contains(slipway.ErrorMessage(err), "DATABASE_URL") {
		t.Errorf("a moved value: %v, want internal naming it", err)
	}
	// Nor does a build secret's sealed value of the same project and name
	// put in its place: each kind has its own key.
	if _, err := db.write.ExecContext(ctx, `UPDATE project_env SET sealed = (SELECT sealed FROM project_secrets WHERE project = 'app' AND name = 'DATABASE_URL')
	WHERE project = 'app' AND name = 'DATABASE_URL'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.EnvValues(ctx, "app"); slipway.ErrorCode(err) != slipway.EINTERNAL || !strings.Contains(slipway.ErrorMessage(err), "DATABASE_URL") {
		t.Errorf("a build secret's sealed value as a variable: %v, want internal naming it", err)
	}
	if _, err := db.write.ExecContext(ctx, `UPDATE project_env SET sealed = ? WHERE project = 'app' AND name = 'DATABASE_URL'`, sealed); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, f := range []string{path, path + "-wal"} {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("plain-env-value")) {
			t.Errorf("%s holds an environment value in clear", f)
		}
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if vals, err := db.EnvValues(ctx, "app"); err != nil || len(vals) != 2 || string(vals[0].Value) != value {
		t.Errorf("after reopening: %+v, %v", vals, err)
	}

	if v, err := db.DeleteEnv(ctx, "app", "EMPTY"); err != nil || v.Name != "EMPTY" {
		t.Errorf("DeleteEnv = %v, %v", v, err)
	}
	if _, err := db.DeleteEnv(ctx, "app", "EMPTY"); slipway.ErrorCode(err) != slipway.ENOTFOUND || !strings.Contains(err.Error(), "no environment variable") {
		t.Errorf("deleting a missing variable: %v, want not_found", err)
	}
	if _, err := db.DeleteEnv(ctx, "nope", "A"); slipway.ErrorCode(err) != slipway.ENOTFOUND || !strings.Contains(err.Error(), "project") {
		t.Errorf("deleting from an unknown project: %v, want not_found", err)
	}
	if _, err := db.SetEnv(ctx, "app", "PORT", []byte("1")); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("PORT: %v, want invalid", err)
	}
	if _, err := db.SetEnv(ctx, "nope", "A", []byte("1")); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("unknown project: %v, want not_found", err)
	}
	if _, err := db.Env(ctx, "nope"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("Env of an unknown project: %v, want not_found", err)
	}

	// The variables go with their project.
	if err := db.DeleteProject(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM project_env WHERE project = 'app'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("after deleting the project: %d variables left, %v", n, err)
	}
}

func TestEnvCountLimit(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	if err := db.CreateProject(ctx, &slipway.Project{Name: "app", Repo: "file:///r", Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	for i := range slipway.MaxEnvVars {
		if _, err := db.SetEnv(ctx, "app", "V"+strings.Repeat("X", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SetEnv(ctx, "app", "ONE_TOO_MANY", []byte("v")); slipway.ErrorCode(err) != slipway.ETOOLARGE {
		t.Errorf("past the limit: %v, want too_large", err)
	}
	if _, err := db.SetEnv(ctx, "app", "V", []byte("replaced")); err != nil {
		t.Errorf("replacing one at the limit: %v", err)
	}
}

func TestEnvSizeLimit(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	if err := db.CreateProject(ctx, &slipway.Project{Name: "app", Repo: "file:///r", Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	big := []byte(strings.Repeat("v", slipway.MaxEnvValueBytes))
	// Three full values and their names fit in 256 KiB, a fourth does not.
	for _, name := range []string{"A", "B", "C"} {
		if _, err := db.SetEnv(ctx, "app", name, big); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.SetEnv(ctx, "app", "D", big); slipway.ErrorCode(err) != slipway.ETOOLARGE || !strings.Contains(err.Error(), "256 KiB") {
		t.Errorf("past the size limit: %v, want too_large", err)
	}
	// Replacing one counts its new value only.
	if _, err := db.SetEnv(ctx, "app", "C", big); err != nil {
		t.Errorf("replacing one: %v", err)
	}
	left := slipway.MaxEnvBytes - 3*(2+slipway.MaxEnvValueBytes) - 2
	if _, err := db.SetEnv(ctx, "app", "D", big[:left]); err != nil {
		t.Errorf("filling up to the limit exactly: %v", err)
	}
	if _, err := db.SetEnv(ctx, "app", "E", nil); slipway.ErrorCode(err) != slipway.ETOOLARGE {
		t.Errorf("one byte past the limit: %v, want too_large", err)
	}
}

func TestSetRelease(t *testing.T) {
	db, _ := openTest(t)
	ctx := t.Context()
	for _, name := range []string{"app", "other"} {
		if err := db.CreateProject(ctx, &slipway.Project{Name: name, Repo: "file:///r", Branch: "main"}); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := db.Project(ctx, "app"); err != nil || p.Release != "" {
		t.Fatalf("a new project's release: %q, %v; want none", p.Release, err)
	}
	d := mustCreateDeployment(t, db, &slipway.Deployment{Project: "app"})
	if err := db.SetRelease(ctx, "app", d.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := db.Project(ctx, "app"); err != nil || p.Release != d.ID {
		t.Errorf("release after SetRelease: %q, %v; want %s", p.Release, err, d.ID)
	}
	if err := db.SetRelease(ctx, "other", d.ID); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("another project's deployment: %v, want invalid", err)
	}
	if err := db.SetRelease(ctx, "app", "nope"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("unknown deployment: %v, want not_found", err)
	}
	if p, _ := db.Project(ctx, "other"); p.Release != "" {
		t.Errorf("other project's release: %q, want none", p.Release)
	}
}
