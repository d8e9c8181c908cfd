package graphql_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// Build arguments through the API over a real store: given at addProject,
// shown in clear on Project, changed by setBuildArgs; bad ones get clear
// errors and change nothing.
func TestBuildArgs(t *testing.T) {
	e := newEnv(t, nil)
	type arg struct{ Name, Value string }
	args := func(raw json.RawMessage) []arg {
		t.Helper()
		var out struct{ BuildArgs []arg }
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
		return out.BuildArgs
	}
	str := func(as []arg) string { b, _ := json.Marshal(as); return string(b) }

	const add = `mutation($in: AddProjectInput!) { addProject(input: $in) { project { name buildArgs { name value } } } }`
	var added struct {
		AddProject struct{ Project json.RawMessage }
	}
	e.do(t, add, map[string]any{"in": map[string]any{"name": "web", "repo": "file:///r", "buildArgs": []map[string]string{
		{"name": "GREETING", "value": "hello"}, {"name": "BASE", "value": "127.0.0.1:8080/base/busybox:1"},
	}}}).ok(t, &added)
	want := `[{"Name":"BASE","Value":"127.0.0.1:8080/base/busybox:1"},{"Name":"GREETING","Value":"hello"}]`
	if got := str(args(added.AddProject.Project)); got != want {
		t.Errorf("addProject buildArgs = %s, want %s", got, want)
	}
	var q struct{ Project json.RawMessage }
	e.do(t, `{ project(name: "web") { buildArgs { name value } } }`, nil).ok(t, &q)
	if got := str(args(q.Project)); got != want {
		t.Errorf("project buildArgs = %s, want %s", got, want)
	}
	var list struct{ Projects []json.RawMessage }
	e.do(t, `{ projects { buildArgs { name value } } }`, nil).ok(t, &list)
	if len(list.Projects) != 1 || str(args(list.Projects[0])) != want {
		t.Errorf("projects = %s", list.Projects)
	}

	const set = `mutation($p: String!, $set: [BuildArgInput!], $unset: [String!]) {
  setBuildArgs(project: $p, set: $set, unset: $unset) { name buildArgs { name value } } }`
	var changed struct{ SetBuildArgs json.RawMessage }
	e.do(t, set, map[string]any{"p": "web", "set": []map[string]string{{"name": "GREETING", "value": "bye"}, {"name": "EXTRA", "value": ""}}, "unset": []string{"BASE"}}).ok(t, &changed)
	want = `[{"Name":"EXTRA","Value":""},{"Name":"GREETING","Value":"bye"}]`
	if got := str(args(changed.SetBuildArgs)); got != want {
		t.Errorf("setBuildArgs = %s, want %s", got, want)
	}

	for _, tt := range []struct {
		name, query string
		vars        map[string]any
		code, msg   string
	}{
		{"bad name", set, map[string]any{"p": "web", "set": []map[string]string{{"name": "1X", "value": "y"}}}, "invalid", `invalid build argument name "1X"`},
		{"NUL in a value", set, map[string]any{"p": "web", "set": []map[string]string{{"name": "X", "value": "a\x00b"}}}, "invalid", "build argument X contains a NUL byte"},
		{"too long", set, map[string]any{"p": "web", "set": []map[string]string{{"name": "X", "value": strings.Repeat("v", 5000)}}}, "too_large", "at most 4096 bytes"},
		{"unset a missing one", set, map[string]any{"p": "web", "unset": []string{"NOPE"}}, "not_found", `project web has no build argument "NOPE" to unset`},
		{"unknown project", set, map[string]any{"p": "nope", "unset": []string{"X"}}, "not_found", `project "nope" not found`},
		{"addProject with a bad one", add, map[string]any{"in": map[string]any{"name": "api", "repo": "file:///a", "buildArgs": []map[string]string{{"name": "A", "value": "1"}, {"name": "A", "value": "2"}}}}, "invalid", "build argument A is given twice"},
	} {
		code, msg := e.do(t, tt.query, tt.vars).code(t)
		if code != tt.code || !strings.Contains(msg, tt.msg) {
			t.Errorf("%s: %s %q; want %s with %q", tt.name, code, msg, tt.code, tt.msg)
		}
	}
	e.do(t, `{ project(name: "web") { buildArgs { name value } } }`, nil).ok(t, &q)
	if got := str(args(q.Project)); got != want {
		t.Errorf("after refused changes, buildArgs = %s, want %s", got, want)
	}
	if p, _ := e.store.Project(t.Context(), "api"); p != nil {
		t.Errorf("a project with bad build arguments was created: %+v", p)
	}
}
