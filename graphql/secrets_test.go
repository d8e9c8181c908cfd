package graphql_test

import (
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
)

// Build secrets through the API: set, list, replace, delete; the value is
// write-only, bad names and sizes get clear errors.
func TestSecrets(t *testing.T) {
	e := newEnvWith(t, func(c *graphqlConfig) { c.Secrets = c.Store.(slipway.SecretStore) })
	e.do(t, addProject, map[string]any{"in": map[string]any{"name": "web", "repo": "file:///r"}}).ok(t, &addProjectData{})

	const value = "write-only-value-4711"
	const set = `mutation($p: String!, $n: String!, $v: String!) { setSecret(project: $p, name: $n, value: $v) { name updatedAt } }`
	r := e.do(t, set, map[string]any{"p": "web", "n": "npm_token", "v": value})
	var got struct {
		SetSecret struct{ Name, UpdatedAt string }
	}
	r.ok(t, &got)
	if got.SetSecret.Name != "npm_token" || got.SetSecret.UpdatedAt == "" || strings.Contains(r.raw, value) {
		t.Errorf("setSecret = %s", r.raw)
	}
	e.do(t, set, map[string]any{"p": "web", "n": "npm_token", "v": value + "-2"}).ok(t, &got)
	e.do(t, set, map[string]any{"p": "web", "n": "other", "v": "another value"}).ok(t, &got)

	r = e.do(t, `{ project(name: "web") { secrets { name updatedAt } } }`, nil)
	var list struct {
		Project struct {
			Secrets []struct{ Name, UpdatedAt string }
		}
	}
	r.ok(t, &list)
	if len(list.Project.Secrets) != 2 || list.Project.Secrets[0].Name != "npm_token" && list.Project.Secrets[1].Name != "npm_token" {
		t.Errorf("secrets = %s", r.raw)
	}
	if strings.Contains(r.raw, value) || strings.Contains(r.raw, "another value") {
		t.Errorf("a listing shows a value: %s", r.raw)
	}
	// No field of the schema can return the value.
	r = e.do(t, `{ __type(name: "Secret") { fields { name } } }`, nil)
	if !strings.Contains(r.raw, `[{"name":"name"},{"name":"updatedAt"}]`) {
		t.Errorf("Secret's fields = %s, want name and updatedAt only", r.raw)
	}
	if r := e.do(t, `{ project(name: "web") { secrets { name value } } }`, nil); len(r.Errors) == 0 {
		t.Errorf("a query for a secret's value was answered: %s", r.raw)
	}

	const del = `mutation($p: String!, $n: String!) { deleteSecret(project: $p, name: $n) { name } }`
	e.do(t, del, map[string]any{"p": "web", "n": "other"}).ok(t, &struct{}{})
	if code, msg := e.do(t, del, map[string]any{"p": "web", "n": "other"}).code(t); code != "not_found" || !strings.Contains(msg, `has no secret "other"`) {
		t.Errorf("deleting twice = %s %q", code, msg)
	}

	for _, tc := range []struct{ project, name, value, code, msg string }{
		{"web", "a,b", value, "invalid", "invalid secret name"},
		{"web", "a/b", value, "invalid", "invalid secret name"},
		{"web", "id=x", value, "invalid", "invalid secret name"},
		{"web", "", value, "invalid", "invalid secret name"},
		{"web", "short", "abc", "invalid", "at least 4 bytes"},
		{"web", "big", strings.Repeat("x", 70000), "", "the limit is 65536 bytes"},
		{"nope", "x", value, "not_found", `project "nope" not found`},
	} {
		code, msg := e.do(t, set, map[string]any{"p": tc.project, "n": tc.name, "v": tc.value}).code(t)
		if (tc.code != "" && code != tc.code) || !strings.Contains(msg, tc.msg) {
			t.Errorf("setSecret(%q, %q) = %s %q; want %s with %q", tc.project, tc.name, code, msg, tc.code, tc.msg)
		}
	}
}
