package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// TestProjectAppSettings: the app flags on project add and project set
// reach the store, show in project show, and bad values are usage errors.
func TestProjectAppSettings(t *testing.T) {
	ts := newServer(t)
	code, stdout, stderr := ts.slipwayCmd(t, "project", "add", "web", "--repo", "file:///r", "--memory", "64MiB", "--port", "8000")
	if words := strings.Join(strings.Fields(stdout), " "); code != 0 || !strings.Contains(words, "app memory: 64 MiB app cpus: 1 health path: / idle timeout: 5m (then frozen) stop after: 1h idle port: 8000 (PORT)") {
		t.Fatalf("project add --memory --port = exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	code, stdout, stderr = ts.slipwayCmd(t, "project", "set", "web", "--cpus", "0.5", "--health-path", "/healthz", "--idle-timeout", "90s", "--stop-after", "2h")
	if want := "Project web: app 64 MiB, 0.5 CPUs, health /healthz, freeze after 1m30s, stop after 2h, port 8000.\n"; code != 0 || stdout != want {
		t.Errorf("project set = exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, want)
	}
	want := slipway.AppSettings{MemoryBytes: 64 << 20, CPUs: 0.5, HealthPath: "/healthz", IdleTimeout: 90 * time.Second, StopAfter: 2 * time.Hour, Port: 8000}
	if p, err := ts.store.Project(t.Context(), "web"); err != nil || p.App != want {
		t.Errorf("stored app = %+v, %v; want %+v", p.App, err, want)
	}
	code, stdout, _ = ts.slipwayCmd(t, "project", "show", "web")
	for _, line := range []string{"app cpus: 0.5", "health path: /healthz", "idle timeout: 1m30s (then frozen)", "stop after: 2h idle"} {
		if code != 0 || !strings.Contains(strings.Join(strings.Fields(stdout), " "), line) {
			t.Errorf("project show lacks %q: exit %d:\n%s", line, code, stdout)
		}
	}
	code, stdout, _ = ts.slipwayCmd(t, "project", "show", "web", "--json")
	var shown struct{ App slipway.AppSettings }
	if err := json.Unmarshal([]byte(stdout), &shown); code != 0 || err != nil || shown.App != want {
		t.Errorf("project show --json app = %+v, %v:\n%s", shown.App, err, stdout)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"project", "set", "web", "--memory", "1MiB"}, "--memory: invalid memory limit"},
		{[]string{"project", "set", "web", "--cpus", "0"}, "--cpus: invalid CPU limit"},
		{[]string{"project", "set", "web", "--health-path", "healthz"}, "--health-path: invalid health path"},
		{[]string{"project", "set", "web", "--idle-timeout", "5"}, "--idle-timeout: invalid idle timeout"},
		{[]string{"project", "set", "web", "--port", "99999"}, "--port: invalid port"},
		{[]string{"project", "set", "web", "--idle-timeout", "2h", "--stop-after", "1h"}, "shorter than the idle timeout"},
		{[]string{"project", "add", "api", "--repo", "file:///r", "--stop-after", "soon"}, "--stop-after: invalid stop-after"},
	} {
		code, stdout, stderr := ts.slipwayCmd(t, tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("slipway %s = exit %d, stdout %q, stderr %q; want a usage error saying %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
		}
	}
	// The server checks stop-after against the idle timeout it keeps.
	code, _, stderr = ts.slipwayCmd(t, "project", "set", "web", "--idle-timeout", "3h")
	if code == 0 || !strings.Contains(stderr, "shorter than the idle timeout") {
		t.Errorf("an idle timeout past the kept stop-after = exit %d, stderr %q", code, stderr)
	}
}

// TestEnvCommands: env set from stdin or a file (never an argument), env
// lists names only, env rm; values reach no output.
func TestEnvCommands(t *testing.T) {
	ts := newServer(t)
	ts.addProject(t, "web")
	if code, out, errOut := ts.slipwayIn(t, "postgres://from-stdin-value\n", "env", "set", "web", "DATABASE_URL"); code != 0 || !strings.Contains(out, "DATABASE_URL of web set") || strings.Contains(out+errOut, "from-stdin") {
		t.Fatalf("env set from stdin = %d %q %q", code, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "v")
	if err := os.WriteFile(file, []byte("from-file-value\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := ts.slipwayIn(t, "", "env", "set", "web", "API_KEY", "--value-file", file); code != 0 {
		t.Fatalf("env set --value-file = %d %q %q", code, out, errOut)
	}
	vals, err := ts.store.EnvValues(t.Context(), "web")
	if err != nil || len(vals) != 2 || string(vals[0].Value) != "from-file-value" || string(vals[1].Value) != "postgres://from-stdin-value" {
		t.Fatalf("stored: %q, %v", vals, err)
	}
	code, out, _ := ts.slipwayCmd(t, "env", "web")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "API_KEY") || strings.Contains(out, "value") {
		t.Errorf("env = %d:\n%s", code, out)
	}
	code, out, _ = ts.slipwayCmd(t, "env", "web", "--json")
	var list []slipway.EnvVar
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 2 || list[0].Name != "API_KEY" || list[0].UpdatedAt.IsZero() || strings.Contains(out, "value") {
		t.Errorf("env --json = %d %v:\n%s", code, err, out)
	}
	if code, out, _ := ts.slipwayCmd(t, "env", "rm", "web", "API_KEY"); code != 0 || !strings.Contains(out, "API_KEY of web removed") {
		t.Errorf("env rm = %d %q", code, out)
	}
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"x", []string{"env", "set", "web", "PORT"}, "PORT is set by Slipway"},
		{"x", []string{"env", "set", "web", "1X"}, "invalid environment variable name"},
		{"x", []string{"env", "set", "web", "A", "--value", "from-argv"}, "unknown flag: --value"},
		{"two\nlines\n", []string{"env", "set", "web", "A"}, "line break"},
		{"x", []string{"env", "set", "nope", "A"}, `project "nope" not found`},
		{"", []string{"env", "rm", "web", "API_KEY"}, `no environment variable "API_KEY"`},
		{"", []string{"env", "nope"}, `project "nope" not found`},
	} {
		code, out, errOut := ts.slipwayIn(t, tc.stdin, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Contains(out+errOut, "from-argv") && tc.want != "unknown flag: --value" {
			t.Errorf("slipway %s = %d %q %q, want an error saying %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
	if code, out, _ := ts.slipwayCmd(t, "env", "web"); code != 0 || !strings.Contains(out, "DATABASE_URL") || strings.Contains(out, "API_KEY") {
		t.Errorf("env after the errors = %d:\n%s", code, out)
	}
}
