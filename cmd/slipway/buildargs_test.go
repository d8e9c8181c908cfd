package main

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway-ci/slipway"
)

// --build-arg on project add and project set, --unset-build-arg, and
// the listings, against the real API and SQLite store; bad values are
// usage errors that write nothing.
func TestProjectBuildArgs(t *testing.T) {
	ts := newServer(t)
	db := ts.store
	ctx := t.Context()
	stored := func() []slipway.BuildArg {
		t.Helper()
		p, err := db.Project(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		return p.BuildArgs
	}

	code, stdout, stderr := ts.slipwayCmd(t, "project", "add", "web", "--repo", "file:///r",
		"--build-arg", "GREETING=hello there", "--build-arg", "BASE=127.0.0.1:8080/base/busybox:1", "--build-arg", "OPTS=a=1,b=2", "--build-arg", "EMPTY=")
	want := []slipway.BuildArg{{Name: "BASE", Value: "127.0.0.1:8080/base/busybox:1"}, {Name: "EMPTY"}, {Name: "GREETING", Value: "hello there"}, {Name: "OPTS", Value: "a=1,b=2"}}
	if code != 0 || !regexp.MustCompile(`\n  build args: +BASE=127.0.0.1:8080/base/busybox:1\n +EMPTY=\n +GREETING="hello there"\n +OPTS=a=1,b=2\n  webhook URL:`).MatchString(stdout) {
		t.Fatalf("project add --build-arg = exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	if got := stored(); !reflect.DeepEqual(got, want) {
		t.Errorf("stored build arguments = %+v, want %+v", got, want)
	}

	code, stdout, _ = ts.slipwayCmd(t, "projects", "--json")
	var ps []struct {
		Name      string
		BuildArgs []slipway.BuildArg
	}
	if err := json.Unmarshal([]byte(stdout), &ps); code != 0 || err != nil || len(ps) != 1 || !reflect.DeepEqual(ps[0].BuildArgs, want) {
		t.Errorf("projects --json = exit %d, %v:\n%s", code, err, stdout)
	}
	if !strings.Contains(stdout, `"name": "GREETING",`+"\n"+`        "value": "hello there"`) {
		t.Errorf("projects --json does not spell a build argument as {name, value}:\n%s", stdout)
	}
	code, stdout, _ = ts.slipwayCmd(t, "project", "show", "web")
	if code != 0 || !strings.HasPrefix(stdout, "Project web\n  repo:") || !strings.Contains(stdout, "  build args:     BASE=127.0.0.1:8080/base/busybox:1\n") ||
		!strings.Contains(stdout, `GREETING="hello there"`) {
		t.Errorf("project show = exit %d:\n%s", code, stdout)
	}

	code, stdout, stderr = ts.slipwayCmd(t, "project", "set", "web", "--build-arg", "GREETING=bye", "--unset-build-arg", "BASE", "--unset-build-arg", "OPTS")
	if code != 0 || stdout != "Project web: build arguments EMPTY= GREETING=bye.\n" {
		t.Errorf("project set --build-arg = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	want = []slipway.BuildArg{{Name: "EMPTY"}, {Name: "GREETING", Value: "bye"}}
	if got := stored(); !reflect.DeepEqual(got, want) {
		t.Errorf("after project set: %+v, want %+v", got, want)
	}
	code, stdout, _ = ts.slipwayCmd(t, "project", "set", "web", "--unset-build-arg", "EMPTY", "--log-retention", "2w", "--json")
	var p slipway.Project
	if err := json.Unmarshal([]byte(stdout), &p); code != 0 || err != nil || p.LogRetention.MaxAge != 14*24*time.Hour || len(p.BuildArgs) != 1 {
		t.Errorf("project set with both kinds of flag --json = exit %d, %v:\n%s", code, err, stdout)
	}
	want = want[1:]

	// Bad flags are usage errors (exit 2) that say what to write; nothing
	// is written.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"project", "add", "api", "--repo", "file:///a", "--build-arg", "novalue"}, `error: --build-arg: invalid build argument "novalue": use NAME=VALUE (NAME= for an empty value)`},
		{[]string{"project", "add", "api", "--repo", "file:///a", "--build-arg", "1X=y"}, `error: --build-arg: invalid build argument name "1X": use 1-128 letters, digits and '_', not starting with a digit (the NAME of the Dockerfile's ARG NAME)`},
		{[]string{"project", "add", "api", "--repo", "file:///a", "--build-arg", "A=1", "--build-arg", "A=2"}, `error: --build-arg: build argument A is given twice`},
		{[]string{"project", "set", "web", "--build-arg", "novalue"}, `invalid build argument "novalue"`},
		{[]string{"project", "set", "web", "--build-arg", "1X=y", "--log-retention", "1d"}, `invalid build argument name "1X"`},
		{[]string{"project", "set", "web", "--build-arg", "BIG=" + strings.Repeat("x", slipway.MaxBuildArgValueBytes+1)}, `a value may have at most 4096 bytes`},
		{[]string{"project", "set", "web", "--unset-build-arg", "NO-SUCH"}, `error: --unset-build-arg: invalid build argument name "NO-SUCH"`},
	} {
		code, stdout, stderr := ts.slipwayCmd(t, tt.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("slipway %.120s = exit %d, stdout %q, stderr %q; want exit 2 and %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
	// What only the server can tell: exit 1.
	code, _, stderr = ts.slipwayCmd(t, "project", "set", "web", "--unset-build-arg", "NOPE", "--log-retention", "1d")
	if code != 1 || stderr != "error: project web has no build argument \"NOPE\" to unset (not_found)\n" {
		t.Errorf("unsetting a missing build argument = exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = ts.slipwayCmd(t, "project", "set", "web", "--build-arg", "X=1", "--unset-build-arg", "X")
	if code != 1 || !strings.Contains(stderr, "build argument X is both set and unset") {
		t.Errorf("set and unset of one name = exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = ts.slipwayCmd(t, "project", "show", "nope")
	if code != 1 || stderr != "error: project \"nope\" not found (not_found)\n" {
		t.Errorf("project show of an unknown project = exit %d, stderr %q", code, stderr)
	}
	if _, err := db.Project(ctx, "api"); slipway.ErrorCode(err) != slipway.ENOTFOUND {
		t.Errorf("a project add with a bad build argument stored the project: %v", err)
	}
	p2, _ := db.Project(ctx, "web")
	if !reflect.DeepEqual(p2.BuildArgs, want) || p2.LogRetention.MaxAge != 14*24*time.Hour {
		t.Errorf("refused changes changed the project: %+v, want build arguments %+v and retention 2w", p2, want)
	}
}
