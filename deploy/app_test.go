package deploy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/deploy"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

func TestProjectsAppSettings(t *testing.T) {
	store := sqlitetest.Open(t)
	s := deploy.NewProjects(deploy.ProjectsConfig{Store: store})
	ctx := t.Context()
	p, err := s.Create(ctx, deploy.NewProject{Name: "app", Repo: "file:///r", App: deploy.AppSettingsInput{Memory: ptr("64MiB"), Port: ptr("8000")}})
	if err != nil {
		t.Fatal(err)
	}
	if want := (slipway.AppSettings{MemoryBytes: 64 << 20, Port: 8000}); p.App != want {
		t.Fatalf("created with %+v, want %+v", p.App, want)
	}
	// A change keeps what it does not name.
	p, err = s.SetAppSettings(ctx, "app", deploy.AppSettingsInput{CPUs: ptr("0.5"), HealthPath: ptr("/healthz"), IdleTimeout: ptr("90s"), StopAfter: ptr("2h")})
	want := slipway.AppSettings{MemoryBytes: 64 << 20, CPUs: 0.5, HealthPath: "/healthz", IdleTimeout: 90 * time.Second, StopAfter: 2 * time.Hour, Port: 8000}
	if err != nil || p.App != want {
		t.Fatalf("SetAppSettings = %+v, %v; want %+v", p.App, err, want)
	}
	if stored, _ := store.Project(ctx, "app"); stored.App != want {
		t.Errorf("stored %+v, want %+v", stored.App, want)
	}
	// "default" restores a default.
	if p, err = s.SetAppSettings(ctx, "app", deploy.AppSettingsInput{Memory: ptr("default"), Port: ptr("default")}); err != nil || p.App.MemoryBytes != 0 || p.App.Port != 0 {
		t.Errorf("back to the defaults: %+v, %v", p.App, err)
	}

	for _, tc := range []struct {
		in   deploy.AppSettingsInput
		want string
	}{
		{deploy.AppSettingsInput{Memory: ptr("1MiB")}, "at least 6MiB"},
		{deploy.AppSettingsInput{CPUs: ptr("0")}, "above 0"},
		{deploy.AppSettingsInput{CPUs: ptr("100000")}, "this host's CPUs"},
		{deploy.AppSettingsInput{HealthPath: ptr("healthz")}, `starting with "/"`},
		{deploy.AppSettingsInput{IdleTimeout: ptr("soon")}, "invalid idle timeout"},
		// 2h kept above; an idle timeout past it is refused.
		{deploy.AppSettingsInput{IdleTimeout: ptr("3h")}, "shorter than the idle timeout"},
		{deploy.AppSettingsInput{StopAfter: ptr("1m")}, "shorter than the idle timeout"},
		{deploy.AppSettingsInput{Port: ptr("65536")}, "1-65535"},
	} {
		_, err := s.SetAppSettings(ctx, "app", tc.in)
		if slipway.ErrorCode(err) != slipway.EINVALID || !strings.Contains(slipway.ErrorMessage(err), tc.want) {
			t.Errorf("%+v: err = %v, want EINVALID saying %q", tc.in, err, tc.want)
		}
	}
	if stored, _ := store.Project(ctx, "app"); stored.App.IdleTimeout != 90*time.Second {
		t.Errorf("a refused change was stored: %+v", stored.App)
	}
	if _, err := s.Create(ctx, deploy.NewProject{Name: "app2", Repo: "file:///r", App: deploy.AppSettingsInput{IdleTimeout: ptr("2h")}}); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("creating with an idle timeout past the default stop-after: %v, want invalid", err)
	}
	if _, err := s.SetAppSettings(ctx, "nope", deploy.AppSettingsInput{Port: ptr("80")}); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("unknown project: %v, want not_found", err)
	}
}

func TestProjectsEnv(t *testing.T) {
	store := sqlitetest.Open(t)
	sqlitetest.AddProject(t, store, slipway.Project{Name: "app", Repo: "file:///r", Branch: "main"})
	s := deploy.NewProjects(deploy.ProjectsConfig{Store: store})
	ctx := t.Context()
	if _, err := s.SetEnv(ctx, "app", "GREETING", []byte("hello there")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetEnv(ctx, "app", "API_KEY", []byte("k=v=w")); err != nil {
		t.Fatal(err)
	}
	env, err := s.RuntimeEnv(ctx, "app")
	if err != nil || strings.Join(env, ";") != "API_KEY=k=v=w;GREETING=hello there" {
		t.Errorf("RuntimeEnv = %q, %v", env, err)
	}
	list, err := s.Env(ctx, "app")
	if err != nil || len(list) != 2 || list[0].Name != "API_KEY" {
		t.Errorf("Env = %+v, %v", list, err)
	}
	if _, err := s.SetEnv(ctx, "app", "PORT", []byte("80")); slipway.ErrorCode(err) != slipway.EINVALID {
		t.Errorf("PORT: %v, want invalid", err)
	}
	if _, err := s.SetEnv(ctx, "app", "TWO", []byte("line one\nsecret-line-two")); slipway.ErrorCode(err) != slipway.EINVALID || strings.Contains(err.Error(), "secret-line-two") {
		t.Errorf("a value with a line break: %v, want invalid without the value", err)
	}
	if v, err := s.DeleteEnv(ctx, "app", "GREETING"); err != nil || v.Name != "GREETING" {
		t.Errorf("DeleteEnv = %+v, %v", v, err)
	}
	if env, _ := s.RuntimeEnv(ctx, "app"); len(env) != 1 {
		t.Errorf("after DeleteEnv: %q", env)
	}
	if _, err := s.DeleteEnv(ctx, "app", "GREETING"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("deleting twice: %v, want not_found", err)
	}
}
