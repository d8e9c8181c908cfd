package graphql_test

import (
	"testing"

	"github.com/slipway-ci/slipway"
)

// TestLogLimit: a project's log limit is set at addProject and by
// setLogLimit, shown with the defaults filled in, and bad values are
// refused as invalid.
func TestLogLimit(t *testing.T) {
	e := newEnv(t, nil)
	type limit struct {
		MaxLines, MaxBytes int64
		Summary            string
	}
	var added struct {
		AddProject struct{ Project struct{ LogLimit limit } }
	}
	e.do(t, `mutation($in: AddProjectInput!) { addProject(input: $in) { project { logLimit { maxLines maxBytes summary } } } }`,
		map[string]any{"in": map[string]any{"name": "web", "repo": "file:///r", "logMaxLines": "500"}}).ok(t, &added)
	if got := added.AddProject.Project.LogLimit; got != (limit{500, slipway.DefaultLogMaxBytes, "500 lines or 100 MiB"}) {
		t.Errorf("added project's logLimit = %+v", got)
	}
	var set struct{ SetLogLimit struct{ LogLimit limit } }
	const mutation = `mutation($p: String!, $l: String, $b: String) { setLogLimit(project: $p, maxLines: $l, maxBytes: $b) { logLimit { maxLines maxBytes summary } } }`
	e.do(t, mutation, map[string]any{"p": "web", "b": "2MiB"}).ok(t, &set)
	if got := set.SetLogLimit.LogLimit; got != (limit{500, 2 << 20, "500 lines or 2.0 MiB"}) {
		t.Errorf("after setLogLimit(maxBytes 2MiB): %+v", got)
	}
	e.do(t, mutation, map[string]any{"p": "web", "l": "default"}).ok(t, &set)
	if got := set.SetLogLimit.LogLimit; got.MaxLines != slipway.DefaultLogMaxLines || got.MaxBytes != 2<<20 {
		t.Errorf("after setLogLimit(maxLines default): %+v", got)
	}
	stored, err := e.store.Project(t.Context(), "web")
	if err != nil || stored.LogLimit != (slipway.LogLimit{MaxBytes: 2 << 20}) {
		t.Errorf("stored log limit = %+v, %v", stored, err)
	}
	for _, vars := range []map[string]any{{"p": "web", "l": "5"}, {"p": "web", "b": "lots"}} {
		if code, _ := e.do(t, mutation, vars).code(t); code != slipway.EINVALID {
			t.Errorf("setLogLimit(%v) = %s, want invalid", vars, code)
		}
	}
	if code, _ := e.do(t, mutation, map[string]any{"p": "nope", "l": "100"}).code(t); code != slipway.ENOTFOUND {
		t.Errorf("setLogLimit of an unknown project = %s, want not_found", code)
	}
}
