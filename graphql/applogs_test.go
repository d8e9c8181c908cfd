package graphql_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
	"github.com/slipway-ci/slipway/sqlite/sqlitetest"
)

// TestAppLogsQuery: appLogs reads a project's stored app output (the
// last tail lines, after a line, of one release); an unknown project is
// not_found, a negative tail invalid; appStatus says "none" on a server
// without apps.
func TestAppLogsQuery(t *testing.T) {
	e := newEnvWith(t, func(c *graphqlConfig) { c.AppLogs = c.Store.(slipway.AppLogStore) })
	sqlitetest.AddProject(t, e.store, slipway.Project{Name: "web"})
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	var lines []slipway.AppLogLine
	for n := int64(1); n <= 6; n++ {
		lines = append(lines, slipway.AppLogLine{Project: "web", N: n, Release: []string{"d-1", "d-2"}[(n-1)/3], Time: at,
			Stream: []string{"stdout", "stderr"}[n%2], Text: fmt.Sprintf("line %d", n)})
	}
	if err := e.store.AppendAppLogLines(t.Context(), lines); err != nil {
		t.Fatal(err)
	}
	const q = `query($p: String!, $tail: Int, $after: Int, $release: ID) {
	appLogs(project: $p, tail: $tail, after: $after, release: $release) { n release stream text } }`
	for _, c := range []struct {
		vars map[string]any
		want string
	}{
		{map[string]any{"p": "web"}, "1 2 3 4 5 6"},
		{map[string]any{"p": "web", "tail": 2}, "5 6"},
		{map[string]any{"p": "web", "release": "d-1", "tail": 2}, "2 3"},
		{map[string]any{"p": "web", "after": 4}, "5 6"},
	} {
		var out struct {
			AppLogs []struct {
				N                     int64
				Release, Stream, Text string
			}
		}
		e.do(t, q, c.vars).ok(t, &out)
		got := ""
		for i, l := range out.AppLogs {
			if i > 0 {
				got += " "
			}
			got += fmt.Sprint(l.N)
			if want := lines[l.N-1]; l.Release != want.Release || l.Stream != want.Stream || l.Text != want.Text {
				t.Errorf("line %d = %+v, want %+v", l.N, l, want)
			}
		}
		if got != c.want {
			t.Errorf("appLogs(%v) = lines %s, want %s", c.vars, got, c.want)
		}
	}
	if code, _ := e.do(t, q, map[string]any{"p": "nope"}).code(t); code != slipway.ENOTFOUND {
		t.Errorf("appLogs of an unknown project = %s, want not_found", code)
	}
	if code, _ := e.do(t, q, map[string]any{"p": "web", "tail": -1}).code(t); code != slipway.EINVALID {
		t.Errorf("appLogs with a negative tail = %s, want invalid", code)
	}
	var st struct {
		Project struct {
			AppStatus struct {
				State string
				URL   *string
			}
		}
	}
	e.do(t, `{ project(name: "web") { appStatus { state url } } }`, nil).ok(t, &st)
	if st.Project.AppStatus.State != "none" || st.Project.AppStatus.URL != nil {
		t.Errorf("appStatus without apps = %+v, want none and no URL", st.Project.AppStatus)
	}
}
