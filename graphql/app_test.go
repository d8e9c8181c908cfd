package graphql_test

import (
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
)

// TestAppSettings: a project's app settings are set at addProject and by
// setAppSettings, shown with the defaults filled in; bad values and a
// stop-after below the idle timeout are refused as invalid.
func TestAppSettings(t *testing.T) {
	e := newEnv(t, nil)
	type app struct {
		MemoryBytes                          int64
		CPUs                                 float64
		HealthPath, IdleTimeout, StopAfter   string
		IdleTimeoutSeconds, StopAfterSeconds int
		Port                                 *int
		Summary                              string
	}
	const fields = `app { memoryBytes cpus healthPath idleTimeout idleTimeoutSeconds stopAfter stopAfterSeconds port summary }`
	var added struct {
		AddProject struct{ Project struct{ App app } }
	}
	e.do(t, `mutation($in: AddProjectInput!) { addProject(input: $in) { project { `+fields+` } } }`,
		map[string]any{"in": map[string]any{"name": "web", "repo": "file:///r", "memory": "64MiB"}}).ok(t, &added)
	got := added.AddProject.Project.App
	if got.MemoryBytes != 64<<20 || got.CPUs != 1 || got.HealthPath != "/" || got.IdleTimeout != "5m" || got.IdleTimeoutSeconds != 300 ||
		got.StopAfter != "1h" || got.StopAfterSeconds != 3600 || got.Port != nil || !strings.HasPrefix(got.Summary, "64 MiB, 1 CPUs") {
		t.Errorf("added project's app = %+v", got)
	}
	const mutation = `mutation($p: String!, $m: String, $c: String, $h: String, $i: String, $s: String, $port: String) {
	setAppSettings(project: $p, memory: $m, cpus: $c, healthPath: $h, idleTimeout: $i, stopAfter: $s, port: $port) { ` + fields + ` } }`
	var set struct{ SetAppSettings struct{ App app } }
	e.do(t, mutation, map[string]any{"p": "web", "c": "0.5", "h": "/healthz", "i": "90s", "s": "2h", "port": "8000"}).ok(t, &set)
	got = set.SetAppSettings.App
	if got.MemoryBytes != 64<<20 || got.CPUs != 0.5 || got.HealthPath != "/healthz" || got.IdleTimeout != "1m30s" || got.StopAfterSeconds != 7200 || got.Port == nil || *got.Port != 8000 {
		t.Errorf("after setAppSettings: %+v", got)
	}
	if stored, err := e.store.Project(t.Context(), "web"); err != nil || stored.App.Port != 8000 || stored.App.MemoryBytes != 64<<20 {
		t.Errorf("stored app settings = %+v, %v", stored.App, err)
	}
	for _, vars := range []map[string]any{
		{"p": "web", "m": "1MiB"}, {"p": "web", "c": "-1"}, {"p": "web", "h": "healthz"},
		{"p": "web", "i": "3h"}, {"p": "web", "s": "10s"}, {"p": "web", "port": "0"}, {"p": "web", "i": "5 minutes"},
	} {
		if code, _ := e.do(t, mutation, vars).code(t); code != slipway.EINVALID {
			t.Errorf("setAppSettings(%v) = %s, want invalid", vars, code)
		}
	}
	if code, _ := e.do(t, mutation, map[string]any{"p": "nope", "port": "80"}).code(t); code != slipway.ENOTFOUND {
		t.Errorf("setAppSettings of an unknown project = %s, want not_found", code)
	}
}

// TestEnv: a project's runtime environment through the API: set, list,
// delete; values are write-only and reach no answer and no log.
func TestEnv(t *testing.T) {
	e := newEnv(t, nil)
	e.do(t, addProject, map[string]any{"in": map[string]any{"name": "web", "repo": "file:///r"}}).ok(t, &addProjectData{})
	const value = "env-value-never-shown-5150"
	const set = `mutation($p: String!, $n: String!, $v: String!) { setEnv(project: $p, name: $n, value: $v) { name updatedAt } }`
	var got struct {
		SetEnv struct{ Name, UpdatedAt string }
	}
	r := e.do(t, set, map[string]any{"p": "web", "n": "DATABASE_URL", "v": value})
	r.ok(t, &got)
	if got.SetEnv.Name != "DATABASE_URL" || got.SetEnv.UpdatedAt == "" || strings.Contains(r.raw, value) {
		t.Errorf("setEnv = %s", r.raw)
	}
	e.do(t, set, map[string]any{"p": "web", "n": "A", "v": ""}).ok(t, &got)
	r = e.do(t, `{ project(name: "web") { env { name updatedAt } } }`, nil)
	var list struct {
		Project struct {
			Env []struct{ Name, UpdatedAt string }
		}
	}
	r.ok(t, &list)
	if len(list.Project.Env) != 2 || list.Project.Env[0].Name != "A" || list.Project.Env[1].Name != "DATABASE_URL" || strings.Contains(r.raw, value) {
		t.Errorf("env = %s", r.raw)
	}
	r = e.do(t, `{ __type(name: "EnvVar") { fields { name } } }`, nil)
	if !strings.Contains(r.raw, `[{"name":"name"},{"name":"updatedAt"}]`) {
		t.Errorf("EnvVar's fields = %s, want name and updatedAt only", r.raw)
	}
	vals, err := e.store.EnvValues(t.Context(), "web")
	if err != nil || len(vals) != 2 || string(vals[1].Value) != value {
		t.Errorf("stored = %+v, %v", vals, err)
	}
	for _, tc := range []struct{ name, value, code, msg string }{
		{"PORT", "80", slipway.EINVALID, "PORT is set by Slipway"},
		{"1X", "v", slipway.EINVALID, "invalid environment variable name"},
		{"MULTI", value + "\nline two", slipway.EINVALID, "line break"},
	} {
		code, msg := e.do(t, set, map[string]any{"p": "web", "n": tc.name, "v": tc.value}).code(t)
		if code != tc.code || !strings.Contains(msg, tc.msg) || strings.Contains(msg, value) {
			t.Errorf("setEnv(%s) = %s %q, want %s saying %q", tc.name, code, msg, tc.code, tc.msg)
		}
	}
	const del = `mutation($p: String!, $n: String!) { deleteEnv(project: $p, name: $n) { name } }`
	e.do(t, del, map[string]any{"p": "web", "n": "A"}).ok(t, &struct{}{})
	if code, msg := e.do(t, del, map[string]any{"p": "web", "n": "A"}).code(t); code != slipway.ENOTFOUND || !strings.Contains(msg, `no environment variable "A"`) {
		t.Errorf("deleting twice = %s %q", code, msg)
	}
	if strings.Contains(e.logs.String(), value) {
		t.Errorf("the server's log holds a value: %s", e.logs)
	}
}
