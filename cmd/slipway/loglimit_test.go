package main

import (
	"strings"
	"testing"

	"github.com/slipway-ci/slipway"
)

// TestProjectLogLimit: --log-max-lines and --log-max-bytes on project add
// and project set reach the store, show in project show, and bad values
// are usage errors.
func TestProjectLogLimit(t *testing.T) {
	ts := newServer(t)
	ctx := t.Context()
	code, stdout, stderr := ts.slipwayCmd(t, "project", "add", "web", "--repo", "file:///r", "--log-max-lines", "5000")
	if code != 0 || !strings.Contains(stdout, "log limit:       5000 lines or 100 MiB per deployment") {
		t.Fatalf("project add --log-max-lines = exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
	code, stdout, stderr = ts.slipwayCmd(t, "project", "set", "web", "--log-max-bytes", "2MiB")
	if code != 0 || stdout != "Project web: log limit 5000 lines or 2.0 MiB per deployment.\n" {
		t.Errorf("project set --log-max-bytes = exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if p, err := ts.store.Project(ctx, "web"); err != nil || p.LogLimit != (slipway.LogLimit{MaxLines: 5000, MaxBytes: 2 << 20}) {
		t.Errorf("stored project = %+v, %v", p, err)
	}
	code, stdout, _ = ts.slipwayCmd(t, "project", "show", "web")
	if code != 0 || !strings.Contains(stdout, "5000 lines or 2.0 MiB per deployment") {
		t.Errorf("project show = exit %d:\n%s", code, stdout)
	}
	for _, args := range [][]string{
		{"project", "set", "web", "--log-max-lines", "3"},
		{"project", "set", "web", "--log-max-bytes", "lots"},
		{"project", "add", "api", "--repo", "file:///r", "--log-max-lines", "many"},
	} {
		code, stdout, stderr := ts.slipwayCmd(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "--log-max-") {
			t.Errorf("slipway %s = exit %d, stdout %q, stderr %q; want a usage error", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}
